import Foundation
import TestSupport
import Testing

/// The real binaries over real sockets. Serialized: each test owns a whole deployment, and the
/// machine has two cores.
@Suite(.serialized) struct DeploymentTests {
    @Test func helloWorldRunsEndToEnd() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(helloZip())
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FINISHED")
            #expect(try await deployment.log(id).contains("[INFO ] Hello, world"))

            let (_, eventsBody) = try await deployment.request("GET", "/api/v1/process/\(id)/events")
            let types = (try JSONSerialization.jsonObject(with: eventsBody) as? [[String: Any]] ?? []).compactMap {
                $0["type"] as? String
            }
            #expect(types.first == "InstanceCreated" && types.last == "InstanceFinished", "\(types)")
            #expect(types.contains("StepsRecorded"), "\(types)")

            let (status, body) = try await deployment.request("GET", "/metrics")
            let metrics = String(decoding: body, as: UTF8.self)
            #expect(status == 200)
            #expect(metrics.contains(#"accord_instances_count{status="FINISHED"} 1"#), "\(metrics.prefix(2000))")
            #expect(metrics.contains("accord_scheduler_up 1"))
            #expect(metrics.contains(#"http_route="/api/v1/process""#))
        }
    }

    /// A client's next read sees what its command did, on the same gateway, every time.
    @Test func readsSeeTheClientsOwnWrites() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            for n in 0..<40 {
                let id = try await deployment.startInstance(
                    ZipBuilder.payload("main:\n- ${sleep.ms(20000)}\n"), idempotencyKey: n % 2 == 0 ? "ryw-\(n)" : nil)
                let (status, _) = try await deployment.request("GET", "/api/v1/process/\(id)")
                #expect(status == 200, "status right after the start answered \(status)")
                if n % 10 == 0 {
                    let (deleted, _) = try await deployment.request("DELETE", "/api/v1/process/\(id)")
                    #expect(deleted == 204)
                    #expect(try await deployment.status(id)["status"] as? String == "CANCELLED")
                }
            }
        }
    }

    /// SIGKILL the Scheduler while starts are being acknowledged, restart it: every acknowledged
    /// start reaches a terminal status, and no idempotency key yields two instances.
    @Test(arguments: [1, 2])
    func schedulerKilledWhileAcknowledgingLosesNothing(round: Int) async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let keys = (0..<60).map { "round\(round)-start\($0)" }
            let acknowledged = AckLog()

            try await withThrowingTaskGroup(of: Void.self) { group in
                for key in keys {
                    group.addTask {
                        let deadline = ContinuousClock.now + .seconds(90)
                        var lastError = ""
                        while ContinuousClock.now < deadline {
                            do {
                                acknowledged.record(
                                    key, try await deployment.startInstance(helloZip(key), idempotencyKey: key))
                                return
                            } catch {
                                lastError = "\(error)"
                            }
                            try await Task.sleep(for: .milliseconds(100))
                        }
                        throw TestFailure(
                            "\(key) was never acknowledged; last answer: \(lastError)\n\(deployment.logTails())")
                    }
                }
                group.addTask {
                    while acknowledged.count < 15 { try await Task.sleep(for: .milliseconds(5)) }
                    await deployment.kill("scheduler")
                    try await Task.sleep(for: .milliseconds(500))
                    try deployment.start("scheduler")
                }
                try await group.waitForAll()
            }

            // Retried keys must have answered the same id every time.
            for key in keys { #expect(acknowledged.ids(key).count == 1, "\(key) got \(acknowledged.ids(key))") }
            let ids = Set(keys.flatMap { acknowledged.ids($0) })
            #expect(ids.count == keys.count)
            for id in ids {
                let final = try await deployment.waitTerminal(id)
                #expect(final["status"] as? String == "FINISHED", "\(id): \(final)")
            }
            let (_, listing) = try await deployment.request("GET", "/api/v2/process?limit=1000")
            let listed = (try JSONSerialization.jsonObject(with: listing) as? [[String: Any]] ?? []).compactMap {
                $0["instanceId"] as? String
            }
            #expect(Set(listed) == ids, "the listing must hold exactly one instance per key")
        }
    }

    @Test func gatewayRestartCatchesUpFromTheLog() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(helloZip("before restart"))
            _ = try await deployment.waitTerminal(id)
            await deployment.kill("gateway")
            try deployment.start("gateway")
            try await deployment.waitUntilReady()
            #expect(try await deployment.status(id)["status"] as? String == "FINISHED")
            #expect(try await deployment.log(id).contains("Hello, before restart"))
        }
    }

    /// A Gateway stopped with SIGTERM writes its read models; started again it goes on from
    /// their head (it folds nothing twice) and answers the same.
    @Test func aRestartedGatewayGoesOnFromItsStore() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            var ids: [String] = []
            for n in 0..<5 { ids.append(try await deployment.startInstance(helloZip("run \(n)"))) }
            for id in ids { _ = try await deployment.waitTerminal(id) }
            let before = try await deployment.status(ids[0])
            await deployment.kill("gateway", signal: SIGTERM)
            try deployment.start("gateway")
            try await deployment.waitUntilReady()
            let log = (try? String(contentsOfFile: deployment.logPath("gateway"), encoding: .utf8)) ?? ""
            #expect(log.contains("read models loaded"), "\(deployment.logTails())")
            #expect(NSDictionary(dictionary: try await deployment.status(ids[0])) == NSDictionary(dictionary: before))
            for (n, id) in ids.enumerated() { #expect(try await deployment.log(id).contains("Hello, run \(n)")) }
            let (_, events) = try await deployment.request("GET", "/api/v1/process/\(ids[1])/events")
            let types = (try JSONSerialization.jsonObject(with: events) as? [[String: Any]] ?? []).compactMap {
                $0["type"] as? String
            }
            #expect(types.first == "InstanceCreated" && types.last == "InstanceFinished", "\(types)")
        }
    }

    /// Read models folded from another log (the events folder replaced) are dropped, not served.
    @Test func aGatewayOnAnotherLogForgetsWhatItHad() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let old = try await deployment.startInstance(helloZip("old log"))
            _ = try await deployment.waitTerminal(old)
            await deployment.kill("gateway", signal: SIGTERM)
            await deployment.kill("scheduler", signal: SIGTERM)
            for folder in ["events", "snapshots"] {
                try? FileManager.default.removeItem(atPath: deployment.data + "/" + folder)
            }
            try deployment.start("scheduler")
            try deployment.start("gateway")
            try await deployment.waitUntilReady()
            let fresh = try await deployment.startInstance(helloZip("new log"))
            #expect(try await deployment.waitTerminal(fresh)["status"] as? String == "FINISHED")
            #expect(try await deployment.request("GET", "/api/v1/process/\(old)").0 == 404)
            let log = (try? String(contentsOfFile: deployment.logPath("gateway"), encoding: .utf8)) ?? ""
            #expect(log.contains("folded from another event log"), "\(deployment.logTails())")
        }
    }

    @Test func aLostExecutorFailsItsRunningInstance() async throws {
        try await withDeployment { deployment in
            deployment.schedulerArguments = ["--executor-loss-timeout", "2"]
            try await deployment.startAll()
            let id = try await deployment.startInstance(ZipBuilder.payload("main:\n- ${sleep.ms(60000)}\n"))
            try await deployment.waitForStatus(id, "RUNNING")
            await deployment.kill("executor")
            let final = try await deployment.waitTerminal(id, timeout: .seconds(20))
            #expect(final["status"] as? String == "FAILED")
            #expect((final["error"] as? String)?.contains("executor lost") == true)
            #expect(try await deployment.log(id).contains("executor lost"))
        }
    }

    /// An executor frozen past the loss timeout comes back to find its instance FAILED, and kills
    /// what it still ran for it: the script's later side effect never happens.
    @Test func anExecutorBackFromTheDeadKillsWhatItStillRuns() async throws {
        try await withDeployment { deployment in
            deployment.schedulerArguments = ["--executor-loss-timeout", "2"]
            try await deployment.startAll()
            let marker = deployment.data + "/should-never-exist"
            let id = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- script: sh\n  body: sleep 8; touch \(marker)\n"))
            try await deployment.waitForStatus(id, "RUNNING")
            let started = ContinuousClock.now
            deployment.signal("executor", SIGSTOP)
            let final = try await deployment.waitTerminal(id, timeout: .seconds(20))
            #expect(final["status"] as? String == "FAILED")
            #expect((final["error"] as? String)?.contains("executor lost") == true)
            deployment.signal("executor", SIGCONT)
            try await Task.sleep(until: started + .seconds(11), clock: .continuous)
            #expect(!FileManager.default.fileExists(atPath: marker), "the lost executor's script ran on")
            #expect(try await deployment.status(id)["status"] as? String == "FAILED")
        }
    }

    /// With no Scheduler to talk to, the Gateway answers 503 with a JSON error in bounded time.
    @Test func withoutASchedulerTheGatewayAnswers503() async throws {
        try await withDeployment { deployment in
            try deployment.start("gateway")
            var ping = 0
            for _ in 0..<200 where ping != 200 {
                ping = (try? await deployment.request("GET", "/api/v1/server/ping"))?.0 ?? 0
                try await Task.sleep(for: .milliseconds(50))
            }
            let began = ContinuousClock.now
            let (status, body) = try await deployment.request("POST", "/api/v1/process", body: helloZip(), timeout: 20)
            #expect(status == 503)
            #expect(deployment.json(body)["ok"] as? Bool == false)
            let (listing, _) = try await deployment.request("GET", "/api/v2/process", timeout: 20)
            #expect(listing == 503)
            #expect(began.duration(to: .now) < .seconds(12))
        }
    }

    /// Every component stops on SIGTERM, even while the Scheduler it talks to is gone.
    @Test func componentsStopOnSigtermWithoutAScheduler() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            await deployment.kill("scheduler")
            try await Task.sleep(for: .milliseconds(300))
            await deployment.kill("executor", signal: SIGTERM)
            await deployment.kill("gateway", signal: SIGTERM)
        }
    }

    /// `_main.json`'s timeout, counted from RUNNING, ends the instance TIMED_OUT and kills it.
    @Test func aTimeoutEndsTheInstanceTimedOut() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let zip = ZipBuilder.payload(
                "main:\n- log: started\n- ${sleep.ms(60000)}\n- log: never\n",
                main: #"{"entryPoint": "main", "timeout": "PT1S"}"#)
            let started = ContinuousClock.now
            let id = try await deployment.startInstance(zip)
            let final = try await deployment.waitTerminal(id, timeout: .seconds(45))
            #expect(final["status"] as? String == "TIMED_OUT")
            #expect((final["error"] as? String)?.contains("timeout") == true)
            // Well before the flow's own 60 s: the timeout ended it (a liveness bound, not a speed claim).
            #expect(started.duration(to: .now) < .seconds(30))
            let log = try await deployment.log(id)
            #expect(log.contains("started") && !log.contains("never"))
        }
    }

    /// A timeout kills every OS process the instance started too.
    @Test func aTimeoutKillsEverythingTheInstanceStarted() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            // Found from the host by its command line: the sandbox has its own PIDs and no way to
            // write anywhere the test could read.
            let sleeper = "sleep 300.\(Int.random(in: 1000...9999))"
            let flow = "main:\n- script: sh\n  body: |\n    \(sleeper) &\n    wait\n"
            let id = try await deployment.startInstance(
                ZipBuilder.payload(flow, main: #"{"entryPoint": "main", "timeout": 2}"#))
            var pid: Int32 = 0
            for _ in 0..<200 where pid == 0 {
                pid = HostProcesses.pids(commandLine: sleeper).first ?? 0
                try await Task.sleep(for: .milliseconds(25))
            }
            #expect(pid > 0)
            #expect(try await deployment.waitTerminal(id, timeout: .seconds(20))["status"] as? String == "TIMED_OUT")
            var alive = true
            for _ in 0..<100 where alive {
                alive = Foundation.kill(pid, 0) == 0 && !isZombie(pid)
                if alive { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(!alive, "process \(pid) started by the instance survived its timeout")
        }
    }

    /// A stop kills every OS process the instance started, not only its runner.
    @Test func stopKillsEverythingTheInstanceStarted() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let sleeper = "sleep 300.\(Int.random(in: 1000...9999))"
            let flow = "main:\n- script: sh\n  body: |\n    \(sleeper) &\n    wait\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            try await deployment.waitForStatus(id, "RUNNING")
            var pid: Int32 = 0
            for _ in 0..<100 where pid == 0 {
                pid = HostProcesses.pids(commandLine: sleeper).first ?? 0
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(pid > 0)
            #expect(Foundation.kill(pid, 0) == 0, "the script's child should be running")
            let (status, _) = try await deployment.request("DELETE", "/api/v1/process/\(id)")
            #expect(status == 204)
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "CANCELLED")
            var alive = true
            for _ in 0..<100 where alive {
                alive = Foundation.kill(pid, 0) == 0 && !isZombie(pid)
                if alive { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(!alive, "process \(pid) started by the instance survived the stop")
        }
    }

    private func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
    }
}

/// Which ids each idempotency key was answered with.
final class AckLog: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var byKey: [String: Set<String>] = [:]

    func record(_ key: String, _ id: String) { _ = lock.withLock { byKey[key, default: []].insert(id) } }
    func ids(_ key: String) -> Set<String> { lock.withLock { byKey[key] ?? [] } }
    var count: Int { lock.withLock { byKey.count } }
}
