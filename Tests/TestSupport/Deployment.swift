import Foundation

// The release build (`make run`, static Swift runtime) compiles this target too, and has no
// swift-testing there.
#if canImport(Testing)
    import Testing
#endif

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A throwaway deployment of the real binaries (Scheduler, Executor, Gateway) on a temporary data
/// folder and a free port, over real ipc sockets and real HTTP. Components can be killed and
/// restarted one by one.
package final class Deployment: @unchecked Sendable {
    // @unchecked: `processes` is touched only under `lock`.
    package let data: String
    package let port: Int
    package let key = "integration-key-" + UUID().uuidString
    package let bin: String
    package var schedulerArguments: [String] = []
    package var gatewayArguments: [String] = ["--scheduler-timeout", "2"]
    package var executorArguments: [String] = []
    private var processes: [String: Child] = [:]
    /// Gateways besides `gateway` (on `port`): their names and ports.
    private var extraGateways: [String: Int] = [:]
    private var extraSchedulers: [String: [String]] = [:]
    private let lock = NSLock()

    package init() throws {
        data = NSTemporaryDirectory() + "accord-it-" + String(UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: data + "/logs", withIntermediateDirectories: true)
        try ("\(key)\n").write(toFile: data + "/keys", atomically: true, encoding: .utf8)
        port = Deployment.freePort()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        bin = ProcessInfo.processInfo.environment["ACCORD_BIN"] ?? root.appendingPathComponent(".build/debug").path
    }

    package var url: String { "http://127.0.0.1:\(port)" }

    /// Another Gateway on the same Scheduler, started by `start(name)`; its port.
    package func addGateway(_ name: String) -> Int {
        let port = Deployment.freePort()
        lock.withLock { extraGateways[name] = port }
        return port
    }

    /// Another Scheduler (a standby on the same database), started by `start(name)` with the
    /// deployment's Scheduler arguments followed by `arguments` (which may name its own --data).
    package func addScheduler(_ name: String, arguments: [String] = []) {
        lock.withLock { extraSchedulers[name] = arguments }
    }

    private var components: [String] {
        ["scheduler"] + lock.withLock { extraSchedulers.keys.sorted() } + ["executor", "gateway"]
            + lock.withLock { extraGateways.keys.sorted() }
    }

    package func startAll() async throws {
        try start("scheduler")
        try start("executor")
        try start("gateway")
        try await waitUntilReady()
    }

    package func start(_ component: String) throws {
        var arguments: [String]
        switch component {
        case let name where name.hasPrefix("scheduler"):
            arguments = ["--data", data] + schedulerArguments + (lock.withLock { extraSchedulers[name] } ?? [])
        case "executor":
            // The sandbox needs root; run by anyone else, the executor would refuse to start.
            arguments =
                ["serve", "--data", data, "--capacity", "8"] + (getuid() == 0 ? [] : ["--unsandboxed"])
                + executorArguments
        default:
            let port = lock.withLock { extraGateways[component] } ?? port
            arguments = ["--data", data, "--port", "\(port)"] + gatewayArguments
        }
        let program = ["gateway", "scheduler"].first { component.hasPrefix($0) } ?? component
        let child = try Child("\(bin)/accord-\(program)", arguments, output: logPath(component))
        lock.withLock { processes[component] = child }
    }

    /// Sends `signal` without waiting for anything (SIGSTOP / SIGCONT).
    package func signal(_ component: String, _ signal: Int32) {
        lock.withLock { processes[component] }?.signal(signal)
    }

    /// How a component ended, once it has (nil while it runs or was never started).
    package func exitStatus(_ component: String) -> Int32? {
        lock.withLock { processes[component] }?.exitStatus
    }

    /// The process id of a running component.
    package func pid(_ component: String) -> Int32? {
        lock.withLock { processes[component]?.pid }
    }

    package func logPath(_ component: String) -> String { "\(data)/logs/\(component).log" }

    /// The last lines of each component's log, for a failure message.
    package func logTails(lines: Int = 15) -> String {
        components.map { component in
            let text = (try? String(contentsOfFile: logPath(component), encoding: .utf8)) ?? ""
            return "--- \(component) ---\n" + text.split(separator: "\n").suffix(lines).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Sends `signal` (and SIGCONT, for a component a test stopped) and waits for the exit. A
    /// component that ignores SIGTERM for 10 s is a bug: it is recorded as a test issue and killed.
    package func kill(_ component: String, signal: Int32 = SIGKILL) async {
        guard let child = lock.withLock({ processes.removeValue(forKey: component) }) else { return }
        child.signal(signal)
        child.signal(SIGCONT)
        if await child.exit(within: .seconds(10)) == nil {
            #if canImport(Testing)
                Issue.record("accord-\(component) did not stop within 10 s of signal \(signal)")
            #endif
            child.signal(SIGKILL)
            _ = await child.exit()
        }
    }

    /// Stops every component cleanly and keeps the data folder (for the tooling to read).
    package func stopProcesses() async {
        for component in components.reversed() { await kill(component, signal: SIGTERM) }
    }

    /// Stops every component and removes the data folder (kept when ACCORD_KEEP_TEST_DATA is set).
    package func stop() async {
        await stopProcesses()
        if ProcessInfo.processInfo.environment["ACCORD_KEEP_TEST_DATA"] == nil {
            try? FileManager.default.removeItem(atPath: data)
        }
    }

    /// Waits until ping answers and a status read is served (the gateway has caught up).
    package func waitUntilReady(timeout: Duration = .seconds(30), port: Int? = nil) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let (status, _) = try? await request("GET", "/api/v2/process?limit=1", port: port), status == 200 {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("the deployment did not become ready; logs in \(data)/logs")
    }

    // MARK: - HTTP

    /// `key` (default: the configured admin key) and `port` (default: the first Gateway's) choose
    /// who asks and where.
    package func request(
        _ method: String, _ path: String, body: [UInt8]? = nil, headers: [String: String] = [:],
        timeout: TimeInterval = 30, key: String? = nil, port: Int? = nil
    ) async throws -> (Int, Data) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port ?? self.port)" + path)!)
        request.httpMethod = method
        request.timeoutInterval = timeout
        request.setValue(key ?? self.key, forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = Data(body)
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, data)
    }

    package func json(_ data: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    /// Starts an instance; returns its id (throws on anything but 200).
    package func startInstance(_ zip: [UInt8], idempotencyKey: String? = nil) async throws -> String {
        let headers = idempotencyKey.map { ["Idempotency-Key": $0] } ?? [:]
        let (status, data) = try await request("POST", "/api/v1/process", body: zip, headers: headers)
        guard status == 200, let id = json(data)["instanceId"] as? String else {
            throw TestFailure("start answered \(status): \(String(decoding: data, as: UTF8.self))")
        }
        return id
    }

    /// Waits for a terminal status through /wait; returns the status body.
    package func waitTerminal(_ id: String, timeout: Duration = .seconds(60)) async throws -> [String: Any] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let (status, data) = try? await request("GET", "/api/v1/process/\(id)/wait?timeout=5000", timeout: 15),
                status == 200
            {
                return json(data)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let status = (try? await request("GET", "/api/v1/process/\(id)", timeout: 5)).map {
            String(decoding: $0.1, as: UTF8.self)
        }
        let history = (try? await request("GET", "/api/v1/process/\(id)/history", timeout: 5)).map {
            String(decoding: $0.1, as: UTF8.self)
        }
        throw TestFailure(
            "\(id) did not end within \(timeout); status: \(status ?? "?"); history: \(history ?? "?"); logs in \(data)/logs"
        )
    }

    package func status(_ id: String) async throws -> [String: Any] {
        let (_, data) = try await request("GET", "/api/v1/process/\(id)")
        return json(data)
    }

    package func waitForStatus(_ id: String, _ wanted: String, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await status(id))?["status"] as? String == wanted { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("\(id) never reached \(wanted)")
    }

    package func log(_ id: String) async throws -> String {
        let (_, data) = try await request("GET", "/api/v1/process/\(id)/log")
        return String(decoding: data, as: UTF8.self)
    }

    package static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

package struct TestFailure: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}

package let helloFlow = "main:\n- log: \"Hello, ${name}\"\n"
package func helloZip(_ name: String = "world") -> [UInt8] {
    ZipBuilder.payload(helloFlow, main: #"{"entryPoint": "main", "arguments": {"name": "\#(name)"}}"#)
}

/// Runs `body` with a new deployment (nothing started yet) and stops it afterwards, whether `body`
/// returned or threw. (A `defer` cannot wait for the components to exit without holding a thread.)
package func withDeployment<T>(_ body: (Deployment) async throws -> T) async throws -> T {
    let deployment = try Deployment()
    let result: T
    do {
        result = try await body(deployment)
    } catch {
        await deployment.stop()
        throw error
    }
    await deployment.stop()
    return result
}
