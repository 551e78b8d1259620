import Events
import Foundation

/// The runner child process: interprets one instance's flows and writes `RunnerMessage` lines to
/// stdout. It leads its own process group (set at spawn), so a stop kills it and all it started;
/// when the executor goes away (stdin closes) it takes its whole group down with it.
enum Runner {
    static func main(requestPath: String) -> Int32 {
        // The executor says "go" (one byte on stdin) once this process is in the instance's
        // control groups, so nothing the flow starts can be born outside them.
        var go: UInt8 = 0
        while true {
            let n = read(0, &go, 1)
            if n == 1 { break }
            if n < 0 && errno == EINTR { continue }
            return 1
        }
        watchParent()
        let output = FileHandle.standardOutput
        let encoder = EventCodec.makeEncoder()
        func send(_ message: RunnerMessage) {
            guard var data = try? encoder.encode(message) else { return }
            data.append(0x0A)
            output.write(data)
        }
        // Steps go out in batches (by count or age, checked as steps complete): a long flow of
        // trivial steps costs a few messages, not one per step.
        var steps: [StepRecord] = []
        var lastFlush = ContinuousClock.now
        func flushSteps() {
            guard !steps.isEmpty else { return }
            send(.steps(steps))
            steps.removeAll(keepingCapacity: true)
            lastFlush = .now
        }
        // Every step is out before the result: the outcome is the last thing an executor reads.
        func fail(_ reason: String, log lines: [String]) {
            flushSteps()
            for line in lines { send(.log(LogLine(at: .now(), level: .error, text: line))) }
            send(.result(RunnerResult(error: reason, out: [:])))
        }

        guard let data = FileManager.default.contents(atPath: requestPath),
            let request = try? JSONDecoder().decode(RunnerRequest.self, from: data)
        else {
            fail(
                "the runner could not read its request",
                log: ["the runner could not read its request at \(requestPath)"])
            return 1
        }

        let loader: PayloadLoader
        do {
            loader = try PayloadLoader(workDir: request.workDir)
        } catch {
            fail("\(error)", log: ["flow definition error: \(error)"])
            return 0
        }
        request.limits?.applyRlimits()
        let entry = request.entryPoint ?? loader.entryPoint ?? "default"
        let interpreter = Interpreter(flows: loader.flows, variables: [:], workDir: request.workDir) { line in
            // Cut here already, so no message on the pipe to the executor is unbounded.
            var line = line
            if line.text.utf8.count > LogBudget.defaultMaxLineBytes {
                line.text = LogBudget.cut(line.text)
            }
            send(.log(line))
        }
        interpreter.onStep = { record in
            steps.append(record)
            if steps.count >= 512 || lastFlush.duration(to: .now) > .milliseconds(100) { flushSteps() }
        }
        do {
            try prepareVariables(request, loader, interpreter)
            try interpreter.run(entry: entry)
        } catch let failure as FlowFailure {
            var where_ = ""
            if let location = failure.location { where_ = "\(location): " }
            let step = failure.step.map { "step '\($0)' failed: " } ?? ""
            fail(failure.message, log: ["\(where_)\(step)\(failure.message)"])
            return 0
        } catch {
            fail("\(error)", log: ["\(error)"])
            return 0
        }
        var out: [String: JSONValue] = [:]
        for path in request.out { out[path] = interpreter.lookup(path)?.json ?? .null }
        flushSteps()
        send(.result(RunnerResult(error: nil, out: out)))
        return 0
    }

    /// Arguments (request over `concord.yml`, merged deeply), `${...}` argument values evaluated
    /// against the other arguments, then the built-in variables.
    private static func prepareVariables(_ request: RunnerRequest, _ loader: PayloadLoader, _ interpreter: Interpreter)
        throws
    {
        var requested = OrderedMap()
        for key in request.arguments.keys.sorted() { requested[key] = Value(json: request.arguments[key]!) }
        let merged = PayloadLoader.merge(loader.defaultArguments, .map(requested))
        guard case .map(let arguments) = merged else { return }
        for key in arguments.keys { interpreter.scope.values[key] = arguments[key] }
        let id = Value.string(request.instanceID.description)
        interpreter.scope.values["txId"] = id
        interpreter.scope.values["instanceId"] = id
        interpreter.scope.values["workDir"] = .string(request.workDir)
        interpreter.scope.values["__attr_localPath"] = .string(request.workDir)
        for key in arguments.keys {
            guard case .string(let text) = arguments[key]!, Template.hasExpression(text) else { continue }
            do {
                interpreter.scope.values[key] = try interpreter.resolve(.string(text))
            } catch {
                throw FlowFailure(message: "argument '\(key)': \(error)", step: "arguments")
            }
        }
    }

    /// The executor holds our stdin open; when it dies, stdin reaches EOF and the runner kills its
    /// whole process group, so no orphan outlives its executor.
    private static func watchParent() {
        let thread = Thread {
            var byte: UInt8 = 0
            while read(0, &byte, 1) > 0 {}
            kill(0, SIGKILL)
        }
        thread.start()
    }
}
