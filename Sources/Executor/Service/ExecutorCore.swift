// Past 400 lines on purpose: one actor owns an executor's runs and its waiting runners, and what it
// does at a dispatch, a cancel and a runner's end depends on the same few tables; the runner process,
// the reporter, limits and the sandbox are in files of their own.

import Archive
import Foundation
import Logging
import Model
import ProcessSupport
import Transport
import Wire

/// What a runner produced, in order.
enum RunnerEvent: Sendable {
    case started
    case log([LogLine])
    case steps([StepRecord])
    case handlers([String])
    case attachments([UInt8])
    case state([UInt8])
    case startChild(ChildStart)
    case end(RunnerOutcome)
}

/// Runs instances: takes dispatches and cancels from the Scheduler, hands each instance (request
/// and payload archive) to a runner started ahead of need (or starts one), and reports what
/// happens; the runner writes the instance's working folder only if a step needs files. A runner whose instance started no process takes the next one; any other runner
/// exits with its instance, and everything it started dies with it.
actor ExecutorCore {
    let id: ExecutorID
    let config: ExecutorConfig
    let logger: Logger
    let reporter: Reporter
    /// The runner's executable and the arguments before `runner --instances N`.
    private let runnerCommand: [String]
    /// Where runners run (see `Sandbox`).
    let sandbox: Sandbox
    /// Per-instance control groups, when the system lets this executor make them.
    private let groups: InstanceGroups?
    private var running: [InstanceID: RunnerProcess] = [:]
    /// Which run of each instance in `running` it is (its own, or a handler's), and its attempt.
    private var runs: [InstanceID: (run: InstanceRun, attempt: Int)] = [:]
    /// Runners waiting for an instance, the most recently used last (taken first).
    private var idle: [(runner: RunnerProcess, since: ContinuousClock.Instant)] = []
    /// Whether a trim of runners idle beyond `warmRunners` is scheduled.
    private var trimScheduled = false
    /// How long a runner beyond `warmRunners` may wait for an instance before it is ended.
    static let idleRunnerLifetime: Duration = .seconds(10)
    private var cancelled: Set<InstanceID> = []
    /// Dispatches that arrived while an earlier run of the same instance was being killed: started
    /// once that run has ended.
    private var relaunch: [InstanceID: (Dispatch, [UInt8])] = [:]

    /// `runnerCommand` (an executable and its first arguments) defaults to the configured one, and
    /// that to `accord-runner` next to this binary.
    /// `accord-runner` in the folder this executor's binary is in (a build folder, `/usr/bin`).
    static func installedRunner() throws -> String {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let runner = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent(
            "accord-runner"
        )
        .path
        guard FileManager.default.isExecutableFile(atPath: runner) else {
            throw SpawnError("no runner at \(runner): install accord-runner next to accord-executor, or pass --runner")
        }
        return runner
    }

    init(
        id: ExecutorID, config: ExecutorConfig, schedulerSocket: LeaderLink, logger: Logger,
        runnerCommand: [String]? = nil
    ) throws {
        self.id = id
        self.config = config
        self.logger = logger
        self.runnerCommand = try runnerCommand ?? config.runnerCommand ?? [Self.installedRunner()]
        self.sandbox = Sandbox.make(config.sandbox, runner: self.runnerCommand[0], bubblewrap: config.bubblewrap)
        self.reporter = Reporter(executorID: id, socket: schedulerSocket, logger: logger)
        if config.useControlGroups {
            let (groups, detail) = InstanceGroups.detect(executorName: config.name, scope: config.workRoot)
            self.groups = groups
            logger.limitsReport(groups, detail, config.limits)
        } else {
            self.groups = nil
            logger.limitsReport(nil, "--no-control-groups", config.limits)
        }
    }

    /// What this executor tells the Scheduler when it (re)registers.
    func registration() async -> ExecutorRegistration {
        ExecutorRegistration(
            executorID: id, address: config.listenURL, capacity: config.capacity, running: await knownInstances())
    }

    /// Running, and anything with unacknowledged reports.
    func knownInstances() async -> [InstanceID] {
        let unacknowledged = await reporter.unacknowledgedInstances
        return Array(Set(running.keys).union(unacknowledged))
    }

    func handle(_ command: ExecutorCommand, payload: [UInt8]) -> ExecutorCommandReply {
        switch command {
        case .dispatch(let dispatch):
            let id = dispatch.instanceID
            if let current = running[id] {
                // Another run of the instance than the one here (its handler, after it ended; a
                // later attempt, after this executor ran a dispatch meant for its previous boot on
                // the same address): the Scheduler has moved on, so this one is killed (its own stop
                // may still be on its way) and the new run starts once it has ended. The same run
                // again is a repeat; an earlier attempt, stale.
                let run = InstanceRun(handler: dispatch.handler)
                if let here = runs[id], here.run == run, !cancelled.contains(id) {
                    guard dispatch.attempt > here.attempt else { return .accepted }
                }
                if cancelled.insert(id).inserted { current.kill(id) }
                relaunch[id] = (dispatch, payload)
                return .accepted
            }
            // Count as the Scheduler does: a cancelled instance frees its slot at once, even while
            // its runner is still being killed; otherwise a refusal here and a retry there could spin.
            let busy = running.keys.filter { !cancelled.contains($0) }.count
            guard busy < config.capacity else {
                return .refused(reason: "at capacity (\(config.capacity))")
            }
            // A new dispatch supersedes an earlier cancel of the same instance: left in place, that
            // cancel would drop this run silently and leave the instance STARTING forever.
            cancelled.remove(id)
            // Handed to a runner before answering: nothing is left for later that a cancel could
            // race with.
            launch(dispatch, payload: payload)
            return .accepted
        case .cancel(let id, let only, let upTo):
            // Only what this executor has can be cancelled; remembering anything else would
            // swallow a later dispatch of that instance. A stop for a run that has ended since
            // leaves the run that followed it alone, started or waiting to start.
            func targets(_ run: InstanceRun, _ attempt: Int) -> Bool {
                (only == nil || only == run) && (upTo.map { attempt <= $0 } ?? true)
            }
            if let (waiting, _) = relaunch[id], targets(InstanceRun(handler: waiting.handler), waiting.attempt) {
                relaunch[id] = nil
            }
            guard running[id] != nil, let here = runs[id], targets(here.run, here.attempt) else { return .accepted }
            cancelled.insert(id)
            if let runner = running[id] {
                runner.kill(id)
                logger.info("instance killed", metadata: ["instance.id": "\(id)"])
            }
            return .accepted
        }
    }

    /// The run of `id` under way here, if any.
    func currentRun(_ id: InstanceID) -> InstanceRun? { runs[id]?.run }

    /// Starts runners until `warmRunners` are waiting (at start, and whenever runners have exited).
    /// A runner that cannot start is logged and not retried here: the next dispatch starts one of
    /// its own and reports the reason.
    func warmUp() {
        while idle.count < min(config.warmRunners, config.capacity) {
            do {
                idle.append((try startRunner(), .now))
            } catch {
                logger.error("a runner could not start ahead of need", metadata: ["error": "\(error)"])
                return
            }
        }
    }

    /// Runners started so far (ahead of need or on demand).
    private(set) var runnersStarted = 0

    private func startRunner() throws -> RunnerProcess {
        runnersStarted += 1
        let name = "runner-" + UUID().uuidString.lowercased()
        let home = config.workRoot + "/" + name
        try sandbox.makeHome(home)
        return try RunnerProcess(
            command: runnerCommand, instances: config.runnerInstances, home: home,
            sandbox: sandbox, group: groups?.create(name, limits: config.limits),
            onIdleExit: { [weak self] runner in Task { await self?.forget(runner) } })
    }

    /// A waiting runner exited. It is replaced only if it had run instances: one that dies before
    /// its first (a broken binary, say) is not restarted in a loop; the next dispatch starts one of
    /// its own and reports why it failed.
    private func forget(_ runner: RunnerProcess) {
        idle.removeAll { $0.runner === runner }
        if runner.hasRun { warmUp() }
    }

    /// Keeps a runner whose instance ended for the next one. Runners pile up to the load's
    /// concurrency; those beyond `warmRunners` that wait longer than `idleRunnerLifetime` are ended.
    private func keep(_ runner: RunnerProcess) {
        idle.append((runner, .now))
        guard idle.count > config.warmRunners, !trimScheduled else { return }
        trimScheduled = true
        Task {
            try? await Task.sleep(for: Self.idleRunnerLifetime)
            self.trim()
        }
    }

    private func trim() {
        trimScheduled = false
        let now = ContinuousClock.now
        while idle.count > config.warmRunners, let oldest = idle.first,
            oldest.since.duration(to: now) >= Self.idleRunnerLifetime
        {
            idle.removeFirst().runner.retire()
        }
        if idle.count > config.warmRunners, let oldest = idle.first {
            trimScheduled = true
            let due = oldest.since.advanced(by: Self.idleRunnerLifetime)
            Task {
                try? await Task.sleep(until: due)
                self.trim()
            }
        }
    }

    private func launch(_ dispatch: Dispatch, payload: [UInt8]) {
        run(dispatch, payload: payload, fresh: false)
    }

    /// What `runner` is sent for `dispatch`: its working folder is made in the runner's home.
    private func request(_ dispatch: Dispatch, on runner: RunnerProcess) -> RunnerRequest {
        RunnerRequest(
            instanceID: dispatch.instanceID, entryPoint: dispatch.entryPoint, arguments: dispatch.arguments,
            out: dispatch.out, workDir: instanceDir(dispatch.instanceID, on: runner) + "/work", limits: config.limits,
            maxEntries: config.zipLimits.maxEntries, maxUnpackedBytes: config.zipLimits.maxUnpackedBytes,
            handler: dispatch.handler, maxAttachmentBytes: config.maxLogBytes, resume: dispatch.resume)
    }

    private func instanceDir(_ id: InstanceID, on runner: RunnerProcess?) -> String {
        (runner?.home ?? config.workRoot) + "/" + id.description
    }

    /// Hands `request` to a waiting runner (unless `fresh`) or a new one. One ordered stream per
    /// run, drained by one task: `started`, the log lines and step records in the order the runner
    /// wrote them, then the outcome. (A task per callback would race: a line reported after the
    /// outcome would be dropped as late, and an outcome reported before `started` would skip
    /// RUNNING.)
    private func run(_ dispatch: Dispatch, payload: [UInt8], fresh: Bool) {
        let id = dispatch.instanceID
        let (events, sink) = AsyncStream.makeStream(of: RunnerEvent.self)
        if !fresh { sink.yield(.started) }
        let assignment = RunnerProcess.Assignment(
            id: id, onLog: { sink.yield(.log($0)) }, onSteps: { sink.yield(.steps($0)) },
            onEnd: {
                sink.yield(.end($0))
                sink.finish()
            }, onHandlers: { sink.yield(.handlers($0)) }, onAttachments: { sink.yield(.attachments($0)) },
            onState: { sink.yield(.state($0)) }, onStartChild: { sink.yield(.startChild($0)) })
        var runner: RunnerProcess?
        var warm = false
        if !fresh {
            while runner == nil, let (waiting, _) = idle.popLast() {
                if waiting.assign(request(dispatch, on: waiting), payload: payload, assignment) {
                    runner = waiting
                    warm = true
                }
            }
        }
        if runner == nil {
            var failure: String?
            do {
                let started = try startRunner()
                if started.assign(request(dispatch, on: started), payload: payload, assignment) {
                    runner = started
                } else {
                    // It died before it could be given anything: the run must still end, or the
                    // instance would stay RUNNING with nothing left to report on it.
                    failure = "the runner exited as soon as it started"
                }
            } catch {
                failure = "the runner could not start: \(error)"
            }
            if let failure {
                logger.error("no runner for an instance", metadata: ["instance.id": "\(id)", "error": "\(failure)"])
                sink.yield(.log([LogLine(at: .now(), level: .error, text: failure)]))
                // Not begun: no waiting runner was involved (so no retry), and nothing suggests
                // that starting more runners ahead of need would go better.
                sink.yield(.end(.exited(RunnerResult(error: failure, out: [:]), status: -1, began: false)))
                sink.finish()
            }
        }
        if let runner {
            running[id] = runner
            runs[id] = (InstanceRun(handler: dispatch.handler), dispatch.attempt)
        }
        let (chosen, isWarm) = (runner, warm)
        let reporter = self.reporter
        let maxLogBytes = config.maxLogBytes
        let (handler, attempt) = (dispatch.handler, dispatch.attempt)
        Task {
            var budget = LogBudget(maxBytes: maxLogBytes)
            var attachments: [UInt8]?
            var suspendedState: [UInt8]?
            for await event in events {
                switch event {
                case .started: await reporter.report(id, .started, handler: handler, attempt: attempt)
                case .log(let lines):
                    let kept = budget.admit(lines)
                    if !kept.isEmpty {
                        await reporter.report(id, .log(lines: kept), handler: handler, attempt: attempt)
                    }
                case .steps(let records):
                    await reporter.report(id, .steps(records: records), handler: handler, attempt: attempt)
                case .handlers(let flows):
                    await reporter.report(id, .handlers(flows: flows), handler: handler, attempt: attempt)
                case .attachments(let bytes): attachments = bytes
                case .state(let bytes): suspendedState = bytes
                case .startChild(let start):
                    // In order: the lines the flow wrote before it are reported first.
                    let reply =
                        handler == nil
                        ? await reporter.startChild(start, parent: id, attempt: attempt)
                        : .childRefused("a handler flow cannot start child processes")
                    chosen?.reply(reply)
                case .end(let outcome):
                    await self.ended(
                        dispatch, payload, outcome, runner: chosen, warm: isWarm, attachments: attachments,
                        state: suspendedState)
                }
            }
        }
    }

    private func ended(
        _ dispatch: Dispatch, _ payload: [UInt8], _ outcome: RunnerOutcome, runner: RunnerProcess?, warm: Bool,
        attachments: [UInt8]? = nil, state: [UInt8]? = nil
    ) async {
        let id = dispatch.instanceID
        let instanceDir = instanceDir(id, on: runner)
        running.removeValue(forKey: id)
        runs.removeValue(forKey: id)
        let result: RunnerResult?
        let status: Int32
        switch outcome {
        case .handedBack(let last):
            if let runner { keep(runner) }
            (result, status) = (last, 0)
        case .exited(_, _, began: false) where warm && !cancelled.contains(id):
            // A runner that died while it waited (killed from outside) ran nothing: a new one runs it.
            logger.warning("a waiting runner had exited; starting another", metadata: ["instance.id": "\(id)"])
            run(dispatch, payload: payload, fresh: true)
            return
        case .exited(let last, let exitStatus, let began):
            (result, status) = (last, exitStatus)
            // Replaced only when it had got going; otherwise the next dispatch finds out afresh.
            if began { warmUp() }
        }
        if cancelled.remove(id) != nil {
            cleanUp(id, instanceDir)
            if let (dispatch, payload) = relaunch.removeValue(forKey: id) {
                launch(dispatch, payload: payload)
            }
            return
        }
        defer { cleanUp(id, instanceDir) }
        let (handler, attempt) = (dispatch.handler, dispatch.attempt)
        if result != nil, handler == nil, let attachments { await store(attachments, of: id, attempt: attempt) }
        if let result, let event = result.suspended {
            // Where the flow stands, kept with the payloads before the Scheduler hears of it.
            if let state, let ref = await reporter.storeBlob(state) {
                await reporter.report(id, .suspended(event: event, state: ref), attempt: attempt)
            } else {
                let reason = "the flow suspended, but its state could not be kept"
                await reporter.report(
                    id, .log(lines: [LogLine(at: .now(), level: .error, text: reason)]), attempt: attempt)
                await reporter.report(id, .failed(error: reason, out: [:]), attempt: attempt)
            }
        } else if let result {
            if let error = result.error {
                await reporter.report(
                    id, .failed(error: error, out: result.out, variables: result.variables), handler: handler,
                    attempt: attempt)
            } else {
                await reporter.report(id, .finished(out: result.out), handler: handler, attempt: attempt)
            }
        } else {
            let reason = "the runner ended without a result (\(RunnerProcess.describe(status: status)))"
            await reporter.report(
                id, .log(lines: [LogLine(at: .now(), level: .error, text: reason)]), handler: handler, attempt: attempt)
            await reporter.report(id, .failed(error: reason, out: [:]), handler: handler, attempt: attempt)
        }
    }

    /// Stores the archive of the files a run left under `_attachments/` and reports it, before the
    /// run's end. The runner wrote it (user code ran there): it is read with the limits of a
    /// payload, and one that does not open is dropped, with a line in the log.
    private func store(_ archive: [UInt8], of id: InstanceID, attempt: Int) async {
        let files: [AttachmentFile]
        do {
            let zip = try ZipArchive(
                bytes: archive,
                limits: ZipLimits(maxEntries: config.zipLimits.maxEntries, maxUnpackedBytes: config.maxLogBytes))
            try zip.verifyAll()
            files = zip.entries.map { AttachmentFile(name: $0.path, size: Int($0.declaredSize)) }
        } catch {
            let line = "attachments: the runner's archive was refused (\(error)); none were kept"
            await reporter.report(id, .log(lines: [LogLine(at: .now(), level: .warn, text: line)]), attempt: attempt)
            return
        }
        guard let ref = await reporter.storeBlob(archive) else {
            let line = "attachments: the Scheduler could not store them; none were kept"
            logger.error("attachments not stored", metadata: ["instance.id": "\(id)"])
            await reporter.report(id, .log(lines: [LogLine(at: .now(), level: .warn, text: line)]), attempt: attempt)
            return
        }
        await reporter.report(id, .attachments(archive: ref, files: files), attempt: attempt)
    }

    private func cleanUp(_ id: InstanceID, _ instanceDir: String) {
        try? FileManager.default.removeItem(atPath: instanceDir)
    }

    /// Kills every runner (shutdown).
    func killAll() {
        for (id, runner) in running { runner.kill(id) }
        for (runner, _) in idle { runner.retire() }
        idle.removeAll()
    }
}
