import Archive
import Events
import Foundation
import Logging
import Transport

/// What a runner produced, in order.
enum RunnerEvent: Sendable {
    case started
    case log([LogLine])
    case steps([StepRecord])
    case end(RunnerResult?, Int32)
}

/// Runs instances: takes dispatches and cancels from the Scheduler, unpacks each payload into a
/// private working folder, starts a runner per instance, and reports what happens.
actor ExecutorCore {
    let id: ExecutorID
    let config: ExecutorConfig
    let logger: Logger
    let reporter: Reporter
    private let executable: String
    /// Per-instance control groups, when the system lets this executor make them.
    private let groups: InstanceGroups?
    private var running: [InstanceID: RunnerProcess] = [:]
    /// Instances accepted but whose runner is not started yet (unpacking).
    private var preparing: Set<InstanceID> = []
    private var cancelled: Set<InstanceID> = []
    /// Dispatches that arrived while an earlier run of the same instance was being killed: started
    /// once that run has ended.
    private var relaunch: [InstanceID: (Dispatch, [UInt8])] = [:]

    /// `runnerExecutable` defaults to this very binary (which has the `runner` subcommand).
    init(
        id: ExecutorID, config: ExecutorConfig, schedulerSocket: NNGSocket, logger: Logger,
        runnerExecutable: String? = nil
    ) throws {
        self.id = id
        self.config = config
        self.logger = logger
        self.executable =
            try runnerExecutable ?? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
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

    /// Running, preparing, and anything with unacknowledged reports.
    func knownInstances() async -> [InstanceID] {
        let unacknowledged = await reporter.unacknowledgedInstances
        return Array(Set(running.keys).union(preparing).union(unacknowledged))
    }

    func handle(_ command: ExecutorCommand, payload: [UInt8]) -> ExecutorCommandReply {
        switch command {
        case .dispatch(let dispatch):
            let id = dispatch.instanceID
            if running[id] != nil, cancelled.contains(id) {
                relaunch[id] = (dispatch, payload)
                return .accepted
            }
            if preparing.contains(id) {
                // Still unpacking: this dispatch wants that very run, even if a cancel came between.
                cancelled.remove(id)
                return .accepted
            }
            if running[id] != nil { return .accepted }
            // Count as the Scheduler does: a cancelled instance frees its slot at once, even while
            // its runner is still being killed; otherwise a refusal here and a retry there could spin.
            let busy = running.keys.filter { !cancelled.contains($0) }.count + preparing.count
            guard busy < config.capacity else {
                return .refused(reason: "at capacity (\(config.capacity))")
            }
            // A new dispatch supersedes an earlier cancel of the same instance: left in place, that
            // cancel would drop this run silently and leave the instance STARTING forever.
            cancelled.remove(id)
            preparing.insert(id)
            Task { await self.launch(dispatch, payload: payload) }
            return .accepted
        case .cancel(let id):
            // Only what this executor has can be cancelled; remembering anything else would
            // swallow a later dispatch of that instance.
            guard running[id] != nil || preparing.contains(id) else { return .accepted }
            cancelled.insert(id)
            if let runner = running[id] {
                runner.kill()
                logger.info("instance killed", metadata: ["instance.id": "\(id)"])
            }
            return .accepted
        }
    }

    private func launch(_ dispatch: Dispatch, payload: [UInt8]) async {
        let id = dispatch.instanceID
        let instanceDir = config.workRoot + "/" + id.description
        let workDir = instanceDir + "/work"
        do {
            try? FileManager.default.removeItem(atPath: instanceDir)
            try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
            try ZipArchive(bytes: payload, limits: config.zipLimits).extract(to: workDir)
            let request = RunnerRequest(
                instanceID: id, entryPoint: dispatch.entryPoint, arguments: dispatch.arguments, out: dispatch.out,
                workDir: workDir, limits: config.limits)
            let requestPath = instanceDir + "/request.json"
            try JSONEncoder().encode(request).write(to: URL(fileURLWithPath: requestPath))
            guard cancelled.remove(id) == nil else {
                preparing.remove(id)
                cleanUp(id, instanceDir)
                return
            }
            // One ordered stream per runner, drained by one task: `started`, the log lines and step
            // records in the order the runner wrote them, then the outcome. (A task per callback
            // would race: a line reported after the outcome is dropped as late, and an outcome
            // reported before `started` skips RUNNING.)
            let (events, sink) = AsyncStream.makeStream(of: RunnerEvent.self)
            sink.yield(.started)
            let reporter = self.reporter
            let maxLogBytes = config.maxLogBytes
            Task {
                var budget = LogBudget(maxBytes: maxLogBytes)
                for await event in events {
                    switch event {
                    case .started: await reporter.report(id, .started)
                    case .log(let lines):
                        let kept = budget.admit(lines)
                        if !kept.isEmpty { await reporter.report(id, .log(lines: kept)) }
                    case .steps(let records): await reporter.report(id, .steps(records: records))
                    case .end(let result, let status): await self.ended(id, instanceDir, result, status)
                    }
                }
            }
            do {
                let runner = try RunnerProcess(
                    executable: executable, requestPath: requestPath, group: groups?.create(id, limits: config.limits),
                    onLog: { sink.yield(.log($0)) },
                    onSteps: { sink.yield(.steps($0)) },
                    onEnd: { result, status in
                        sink.yield(.end(result, status))
                        sink.finish()
                    })
                preparing.remove(id)
                running[id] = runner
            } catch {
                preparing.remove(id)
                logger.error("the runner could not start", metadata: ["instance.id": "\(id)", "error": "\(error)"])
                let reason = "the runner could not start: \(error)"
                sink.yield(.log([LogLine(at: .now(), level: .error, text: reason)]))
                sink.yield(.end(RunnerResult(error: reason, out: [:]), -1))
                sink.finish()
            }
        } catch {
            preparing.remove(id)
            logger.error("instance could not start", metadata: ["instance.id": "\(id)", "error": "\(error)"])
            await reporter.report(id, .started)
            await reporter.report(
                id, .log(lines: [LogLine(at: .now(), level: .error, text: "the instance could not start: \(error)")]))
            await reporter.report(id, .failed(error: "the instance could not start: \(error)", out: [:]))
            cleanUp(id, instanceDir)
        }
    }

    private func ended(_ id: InstanceID, _ instanceDir: String, _ result: RunnerResult?, _ status: Int32) async {
        running.removeValue(forKey: id)
        if cancelled.remove(id) != nil {
            cleanUp(id, instanceDir)
            if let (dispatch, payload) = relaunch.removeValue(forKey: id) {
                preparing.insert(id)
                await launch(dispatch, payload: payload)
            }
            return
        }
        defer { cleanUp(id, instanceDir) }
        if let result {
            if let error = result.error {
                await reporter.report(id, .failed(error: error, out: result.out))
            } else {
                await reporter.report(id, .finished(out: result.out))
            }
        } else {
            let reason = "the runner ended without a result (exit status \(status))"
            await reporter.report(id, .log(lines: [LogLine(at: .now(), level: .error, text: reason)]))
            await reporter.report(id, .failed(error: reason, out: [:]))
        }
    }

    private func cleanUp(_ id: InstanceID, _ instanceDir: String) {
        try? FileManager.default.removeItem(atPath: instanceDir)
    }

    /// Kills every runner (shutdown).
    func killAll() {
        for runner in running.values { runner.kill() }
    }
}
