import Archive
import FlowLanguage
import Foundation
import JSON
import Model
import Wire

/// The runner child process: interprets instances' flows, one after another, and writes
/// `RunnerMessage` lines to stdout. The executor starts runners ahead of need and hands each a
/// request (`RunnerFrame`) on stdin; the first one arrives only once the runner is in its control groups, so
/// nothing a flow starts can be born outside them. A runner leads its own process group (set at
/// spawn), so a stop kills it and all it started. It takes another instance only when the last one
/// started no process (nothing can be left behind) and it has served fewer than `maxInstances`;
/// otherwise it exits and the executor sweeps its groups. When the executor goes away (stdin
/// closes) it takes its whole group down with it.
enum Runner {
    static func serve(maxInstances: Int) -> Int32 {
        let requests = RequestFrames()
        let output = FileHandle.standardOutput
        let encoder = EventCodec.makeEncoder()
        let send: (RunnerMessage) -> Void = { message in
            if var bytes = message.fastEncoded {
                bytes.append(0x0A)
                output.write(Data(bytes))
                return
            }
            guard var data = try? encoder.encode(message) else { return }
            data.append(0x0A)
            output.write(data)
        }
        var served = 0
        // Flows compiled from recent payloads: given the same process again (the usual case: one
        // definition, many runs), a runner does not parse and compile its YAML again.
        var loaders = LoaderCache()
        while true {
            let (json, payload) = requests.next()
            served += 1
            guard let request = RunnerRequest.decode(json[...]) else {
                send(.log(LogLine(at: .now(), level: .error, text: "the runner could not read its request")))
                send(.result(RunnerResult(error: "the runner could not read its request", out: [:])))
                return 1
            }
            send(.begin(request.instanceID))
            // A resumed run's attachment is its payload, then its suspended state.
            let split = request.resume.map { min(max($0.payloadBytes, 0), payload.count) } ?? payload.count
            let (result, startedProcesses) = run(
                request, payload: Array(payload[..<split]),
                state: request.resume == nil ? nil : Array(payload[split...]),
                loaders: &loaders, send: send, reply: { requests.next().json })
            // What the instance's own run left for whoever started it, before its result (a flow
            // that suspended has not ended: its files stay in its state).
            if request.handler == nil, result.suspended == nil, let maxBytes = request.maxAttachmentBytes {
                switch Attachments.collect(workDir: request.workDir, maxBytes: maxBytes, maxFiles: request.maxEntries) {
                case .none: break
                case .archive(let bytes, _): send(.attachments(Data(bytes).base64EncodedString()))
                case .refused(let reason): send(.log(LogLine(at: .now(), level: .warn, text: "attachments: \(reason)")))
                }
            }
            var outcome = result
            outcome.reusable = !startedProcesses && served < maxInstances
            send(.result(outcome))
            if !outcome.reusable { return 0 }
        }
    }

    /// Runs one instance; says how it ended and whether any step started a process.
    static func run(
        _ request: RunnerRequest, payload: [UInt8], state: [UInt8]? = nil, loaders: inout LoaderCache,
        send: @escaping (RunnerMessage) -> Void, reply: (() -> [UInt8])? = nil
    ) -> (RunnerResult, Bool) {
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
        func fail(_ reason: String, log line: String) -> RunnerResult {
            flushSteps()
            send(.log(LogLine(at: .now(), level: .error, text: line)))
            return RunnerResult(error: reason, out: [:])
        }

        let archive: ZipArchive
        do {
            archive = try ZipArchive(
                bytes: payload,
                limits: ZipLimits(maxEntries: request.maxEntries, maxUnpackedBytes: request.maxUnpackedBytes))
        } catch {
            let reason = "the instance could not start: \(error)"
            return (fail(reason, log: reason), false)
        }
        let loader: PayloadLoader
        do {
            loader = try loaders.load(payload) { try PayloadLoader(archive: archive) }
        } catch let error as ZipError {
            let reason = "the instance could not start: \(error)"
            return (fail(reason, log: reason), false)
        } catch {
            return (fail("\(error)", log: "flow definition error: \(error)"), false)
        }
        request.limits?.applyRlimits()
        // The instance's own run says which handlers its payload has, before anything else of the
        // flow: the Scheduler must know them even if the run is then killed (cancelled, timed out).
        let handlers = request.handler == nil ? HandlerFlows.names.filter { loader.flows[$0] != nil }.sorted() : []
        if !handlers.isEmpty { send(.handlers(handlers)) }
        let entry = request.handler ?? request.entryPoint ?? loader.entryPoint ?? "default"
        let interpreter = Interpreter(flows: loader.flows, variables: [:], workDir: request.workDir) { line in
            // Cut here already, so no message on the pipe to the executor is unbounded.
            var line = line
            if line.text.utf8.count > LogBudget.defaultMaxLineBytes {
                line.text = LogBudget.cut(line.text)
            }
            send(.log(line))
        }
        interpreter.prepareWorkDir = {
            do {
                try FileManager.default.createDirectory(atPath: request.workDir, withIntermediateDirectories: true)
                try archive.extract(to: request.workDir)
            } catch {
                throw FlowFailure(message: "the payload could not be unpacked into the working folder: \(error)")
            }
        }
        let isHandler = request.handler != nil
        interpreter.suspendRefusal = {
            // A handler runs after its instance ended: there is nothing left to resume.
            isHandler ? "a handler flow runs after its instance ended and cannot wait" : Suspension.liveProcess()
        }
        if let reply, !isHandler {
            interpreter.startChild = { start in
                var start = start
                // A fork starts from the instance's own arguments, with the step's over them.
                if start.fork { start.arguments = request.arguments.merging(start.arguments) { $1 } }
                flushSteps()
                send(.startChild(start))
                switch RunnerReply.decode(reply()) {
                case .childStarted(let id)?: return id
                case .childRefused(let reason)?:
                    throw FlowFailure(message: "task 'concord': the child was not started: \(reason)")
                case nil: throw FlowFailure(message: "task 'concord': the executor's answer did not read")
                }
            }
        }
        interpreter.resumedChild = request.resume?.child
        var resuming: Continuation?
        var stateHadWork = false
        if let state {
            do {
                let limits = ZipLimits(maxEntries: request.maxEntries, maxUnpackedBytes: request.maxUnpackedBytes)
                let (continuation, work) = try Suspension.read(state, limits: limits)
                resuming = continuation
                if let work {
                    stateHadWork = true
                    // The working folder as it was when the flow suspended (it holds the payload's files).
                    interpreter.prepareWorkDir = {
                        do {
                            try FileManager.default.createDirectory(
                                atPath: request.workDir, withIntermediateDirectories: true)
                            try work.extract(to: request.workDir)
                        } catch {
                            throw FlowFailure(message: "the suspended working folder could not be restored: \(error)")
                        }
                    }
                }
            } catch {
                let reason = "the instance cannot be resumed: its suspended state does not read (\(error))"
                return (fail(reason, log: reason), false)
            }
        }
        interpreter.onStep = { record in
            steps.append(record)
            if steps.count >= 512 || lastFlush.duration(to: .now) > .milliseconds(100) { flushSteps() }
        }
        do {
            if let resuming {
                // The variables as they were, and what the resume set over them.
                let variables = resuming.variables.merging(request.resume?.variables ?? [:]) { $1 }
                interpreter.restoreVariables(variables, instanceID: request.instanceID, workDir: request.workDir)
                try interpreter.run(entry: entry, resuming: resuming)
            } else {
                if request.handler != nil {
                    interpreter.restoreVariables(
                        request.arguments, instanceID: request.instanceID, workDir: request.workDir)
                } else {
                    try interpreter.prepareVariables(
                        arguments: request.arguments, defaults: loader.defaultArguments,
                        instanceID: request.instanceID, workDir: request.workDir)
                }
                try interpreter.run(entry: entry)
            }
        } catch let failure as FlowFailure {
            var where_ = ""
            if let location = failure.location { where_ = "\(location): " }
            let step = failure.step.map { "step '\($0)' failed: " } ?? ""
            var result = fail(failure.message, log: "\(where_)\(step)\(failure.message)")
            if handlers.contains("onFailure") {
                result.variables = handlerVariables(interpreter, failure, send: send)
            }
            return (result, interpreter.startedProcesses)
        } catch Unwind.suspend(let continuation) {
            // Where it stands, and its working folder if it has one (restored first if it came
            // with the state and no step has needed it since): the state a resume starts from.
            do {
                if stateHadWork { try interpreter.ensureWorkDir() }
                let bytes = try Suspension.archive(
                    continuation, workDir: interpreter.prepareWorkDir == nil ? request.workDir : nil,
                    maxBytes: request.maxUnpackedBytes)
                flushSteps()
                send(.state(Data(bytes).base64EncodedString()))
                return (RunnerResult(error: nil, out: [:], suspended: continuation.event), interpreter.startedProcesses)
            } catch {
                let reason = "\(error)"
                return (fail(reason, log: reason), interpreter.startedProcesses)
            }
        } catch {
            return (fail("\(error)", log: "\(error)"), interpreter.startedProcesses)
        }
        var out: [String: JSONValue] = [:]
        for path in request.out { out[path] = interpreter.lookup(path)?.json ?? .null }
        flushSteps()
        return (RunnerResult(error: nil, out: out), interpreter.startedProcesses)
    }
}

/// What the `onFailure` handler starts with: every variable as the flow failed, `lastError` set;
/// nil (the handler then starts from the arguments) when they are too large to carry.
private func handlerVariables(
    _ interpreter: Interpreter, _ failure: FlowFailure, send: (RunnerMessage) -> Void
) -> [String: JSONValue]? {
    var variables = interpreter.variablesJSON
    variables["lastError"] = failure.lastErrorJSON
    let size = (try? EventCodec.makeEncoder().encode(variables).count) ?? Int.max
    guard size <= HandlerFlows.maxVariablesBytes else {
        send(
            .log(
                LogLine(
                    at: .now(), level: .warn,
                    text:
                        "the variables (\(size) bytes) are too large for onFailure, which starts from the arguments instead (at most \(HandlerFlows.maxVariablesBytes) bytes)"
                )))
        return nil
    }
    return variables
}

/// The runner's stdin: requests, read by a thread of their own so that the end of the stream (the
/// executor is gone) is noticed at once, even in the middle of a flow, and kills the runner's whole
/// process group.
private final class RequestFrames: @unchecked Sendable {
    // @unchecked: `frames` is guarded by `condition`.
    private let condition = NSCondition()
    private var frames: [(json: [UInt8], payload: [UInt8])] = []

    init() {
        let thread = Thread { [self] in
            var reader = RunnerFrame.Reader()
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                buffer.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                // Bytes that are not a frame: nothing after them can be trusted, as if the executor had gone.
                guard let frames = try? reader.frames() else { break }
                for frame in frames {
                    condition.lock()
                    self.frames.append((Array(frame.json), Array(frame.payload)))
                    condition.signal()
                    condition.unlock()
                }
            }
            kill(0, SIGKILL)
        }
        thread.start()
    }

    /// The next request, waiting for it.
    func next() -> (json: [UInt8], payload: [UInt8]) {
        condition.lock()
        defer { condition.unlock() }
        while frames.isEmpty { condition.wait() }
        return frames.removeFirst()
    }
}

/// The last few payloads' compiled flows, matched by the payload's exact bytes (a flow is
/// compiled only from them, and a hit compares every byte, so a hit is always right). A payload
/// that does not load is not kept: its error is reported each time.
struct LoaderCache {
    private var entries: [(payload: [UInt8], loader: PayloadLoader)] = []
    static let capacity = 8
    static let largestPayload = 1 << 20

    mutating func load(_ payload: [UInt8], _ make: () throws -> PayloadLoader) throws -> PayloadLoader {
        if let index = entries.firstIndex(where: { $0.payload == payload }) {
            let hit = entries.remove(at: index)
            entries.append(hit)
            return hit.loader
        }
        let loader = try make()
        if payload.count <= LoaderCache.largestPayload {
            if entries.count >= LoaderCache.capacity { entries.removeFirst() }
            entries.append((payload, loader))
        }
        return loader
    }
}
