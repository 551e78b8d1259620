import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// The single writer: decides each command against `SchedulerState`, appends the events, applies
/// them, and performs the decision's actions once the events are durable.
///
/// Decided events are applied to the state as soon as the log has numbered them (before the fsync),
/// so that a command arriving during the fsync sees them (two starts with one idempotency key
/// cannot both win). If the log then fails (disk full, I/O error), nothing it refused is
/// acknowledged: commands are answered "unavailable" (the Gateway's 503) while the log refuses
/// appends, and once a probe shows it can take writes again the state is rebuilt from the log, so
/// the events it refused leave no trace.
actor SchedulerCore {
    let log: FileEventLog
    let payloads: PayloadStore
    let config: SchedulerConfig
    let logger: Logger
    private(set) var state = SchedulerState()
    private var executors: [ExecutorID: ExecutorSession] = [:]
    private var timeouts: [InstanceID: Task<Void, Never>] = [:]
    private var startingDeadlines: [InstanceID: Task<Void, Never>] = [:]
    /// A recovery from a failed log write is under way.
    private var recovering = false
    /// Queued instances already reported as waiting too long.
    private var overdue: Set<InstanceID> = []

    let snapshots: SnapshotStore?
    /// The sequence number of the last snapshot taken (or loaded).
    private var snapshotSeq: UInt64 = 0
    private var snapshotting = false
    /// How the state was rebuilt at start, for the log line `resume` writes.
    private var rebuiltFrom: (snapshot: UInt64, replayed: Int, duration: Duration) = (0, 0, .zero)

    init(
        log: FileEventLog, payloads: PayloadStore, snapshots: SnapshotStore? = nil, config: SchedulerConfig,
        logger: Logger
    ) throws {
        self.log = log
        self.payloads = payloads
        self.snapshots = snapshots
        self.config = config
        self.logger = logger
        let started = ContinuousClock.now
        let rebuilt = try Self.rebuild(log, snapshots, logger)
        state = rebuilt.state
        snapshotSeq = rebuilt.snapshot
        rebuiltFrom = (rebuilt.snapshot, rebuilt.replayed, started.duration(to: .now))
    }

    /// The state the durable log stands for: the newest usable snapshot, then the events after it.
    private static func rebuild(_ log: FileEventLog, _ snapshots: SnapshotStore?, _ logger: Logger) throws -> (
        state: SchedulerState, snapshot: UInt64, replayed: Int
    ) {
        var state = SchedulerState()
        var from: UInt64 = 0
        if let snapshot = snapshots?.latest(atMost: log.durableHead, logger: logger) {
            state = snapshot.state
            from = snapshot.seq
        }
        var replayed = 0
        try log.scan(from: from + 1) {
            state.apply($0)
            replayed += 1
        }
        return (state, from, replayed)
    }

    /// After a restart: timers for running instances, and loss deadlines for every executor that
    /// still owns instances (it must register again within the loss timeout).
    func resume() {
        let now = Timestamp.now()
        for (id, tracked) in state.instances {
            if tracked.status == .running { armTimeout(id, tracked, now: now) }
            if tracked.status == .starting { armStartingDeadline(id, attempt: tracked.attempt) }
        }
        for id in state.queue.waiting { armEnqueuedWarning(id) }
        for (executor, ids) in state.assigned where !ids.isEmpty && executors[executor] == nil {
            let session = ExecutorSession(id: executor, address: nil, capacity: 0, socket: nil)
            executors[executor] = session
            watch(session)
        }
        logger.info(
            "state rebuilt from the log",
            metadata: [
                "events": "\(state.head)", "instances": "\(state.instances.count)", "queued": "\(state.queue.count)",
                "snapshot": "\(rebuiltFrom.snapshot)", "replayed": "\(rebuiltFrom.replayed)",
                "duration": "\(rebuiltFrom.duration)",
            ])
    }

    // MARK: - Gateway commands

    func start(_ start: StartInstance, payload: [UInt8]) async -> SchedulerReply {
        if let failure = log.failed { return Self.logUnavailable(failure) }
        if let existing = existingInstance(for: start) { return await answerExisting(existing) }
        let ref: PayloadRef
        do {
            ref = try await payloads.put(payload)
        } catch {
            logger.error("could not store a payload", metadata: ["error": "\(error)"])
            return .unavailable(message: "the server could not store the archive; try again later")
        }
        let decision = Decide.decide(.start(start, payload: ref, newID: InstanceID()), state: state, now: .now())
        let ticket = stage(decision)
        pumpDispatch()
        guard await durable(ticket) else { return .unavailable(message: "the event log could not record the start") }
        for action in decision.actions {
            guard case .replyStarted(let id, let created) = action else { continue }
            // Decided against an instance another request is creating: answer once that is durable.
            if !created { return await answerExisting(id) }
            return .started(instanceID: id, created: true, seq: ticket.envelopes.first?.seq ?? 0)
        }
        return .unavailable(message: "the start was not decided")
    }

    /// An idempotent repeat is acknowledged only once the instance it names is durable: the first
    /// request's fsync may still be in flight.
    private func answerExisting(_ id: InstanceID) async -> SchedulerReply {
        let seq = state.eventSeqs[id]?.first ?? 0
        do {
            try await log.waitDurable(seq)
        } catch {
            return .unavailable(message: "the event log could not record the start")
        }
        return .started(instanceID: id, created: false, seq: seq)
    }

    func cancel(_ id: InstanceID, request: RequestID) async -> SchedulerReply {
        if let failure = log.failed { return Self.logUnavailable(failure) }
        let decision = Decide.decide(.cancel(id, request), state: state, now: .now())
        guard await commit(decision) else { return .unavailable(message: "the event log could not record the stop") }
        // The terminal event a repeat sees may itself still be on its way to disk.
        let seq = state.eventSeqs[id]?.last ?? 0
        do { try await log.waitDurable(seq) } catch {
            return .unavailable(message: "the event log could not record the stop")
        }
        var outcome = CancelOutcome.unknown
        for action in decision.actions {
            switch action {
            case .replyCancelled(let result): outcome = result
            default: perform(action)
            }
        }
        if outcome == .cancelled {
            timeouts.removeValue(forKey: id)?.cancel()
            startingDeadlines.removeValue(forKey: id)?.cancel()
            pumpDispatch()
        }
        return .cancelled(outcome, seq: seq)
    }

    func eventSeqs(of id: InstanceID) -> [UInt64]? { state.eventSeqs[id] }

    /// Queue depth, registered executors and instances waiting too long, for `/metrics`.
    func load() -> (queued: Int, executors: Int, overdue: Int) {
        overdue = overdue.filter { state.queue.contains($0) }
        return (state.queue.count, executors.values.filter { $0.address != nil }.count, overdue.count)
    }

    // MARK: - Waiting for an executor

    /// Every instance that enters the queue gets a deadline; one still waiting when it passes is
    /// reported once in the log and counted in `/metrics` until an executor takes it.
    private func armEnqueuedWarning(_ id: InstanceID) {
        let after = config.enqueuedWarning
        Task {
            try? await Task.sleep(for: after)
            self.enqueuedTooLong(id, after: after)
        }
    }

    private func enqueuedTooLong(_ id: InstanceID, after: Duration) {
        guard state.queue.contains(id), overdue.insert(id).inserted else { return }
        let live = executors.values.filter { $0.address != nil }
        logger.warning(
            "an instance has waited for an executor too long",
            metadata: [
                "instance.id": "\(id)", "waited": "\(after)", "queued": "\(state.queue.count)",
                "executors": "\(live.count)", "capacity": "\(live.reduce(0) { $0 + $1.capacity })",
            ])
    }

    /// Puts an instance back in the queue (its executor went away before it ran).
    private func requeue(_ id: InstanceID) {
        state.requeue(id)
        if state.queue.contains(id) { armEnqueuedWarning(id) }
    }

    private func existingInstance(for start: StartInstance) -> InstanceID? {
        if let id = state.requests[start.requestID] { return id }
        guard let key = start.idempotencyKey else { return nil }
        return state.idempotency[SchedulerState.idempotencyKey(principal: start.principal, key: key)]
    }

    // MARK: - Executor link

    func executorRequest(_ request: ExecutorRequest) async -> ExecutorReply {
        switch request {
        case .register(let registration):
            register(registration)
            return .ack(upTo: state.reportsApplied[registration.executorID] ?? 0)
        case .heartbeat(let executorID):
            guard let session = executors[executorID], session.address != nil else { return .unknownExecutor }
            session.lastSeen = .now
            return .ack(upTo: state.reportsApplied[executorID] ?? 0)
        case .reports(let executorID, let reports):
            // While the log is failed the state holds events it refused: a repeat of a report
            // applied there but never recorded would be acknowledged as a duplicate, and lost.
            if let failure = log.failed { return .unavailable(message: "the event log cannot be written: \(failure)") }
            guard !recovering else { return .unavailable(message: "the event log is being recovered") }
            guard let session = executors[executorID], session.address != nil else { return .unknownExecutor }
            session.lastSeen = .now
            var upTo: UInt64 = 0
            var tickets: [AppendTicket] = []
            var actions: [SchedulerAction] = []
            for report in reports {
                let decision = Decide.decide(.report(executorID, report), state: state, now: .now())
                tickets.append(stage(decision))
                actions += decision.actions
                upTo = max(upTo, report.seq)
            }
            for ticket in tickets {
                guard await durable(ticket) else {
                    return .unavailable(message: "the event log could not record reports")
                }
            }
            actions.forEach(perform)
            for report in reports {
                switch report.kind {
                case .started:
                    if let tracked = state.instances[report.instanceID], tracked.status == .running {
                        startingDeadlines.removeValue(forKey: report.instanceID)?.cancel()
                        armTimeout(report.instanceID, tracked, now: .now())
                    }
                case .finished, .failed:
                    timeouts.removeValue(forKey: report.instanceID)?.cancel()
                    startingDeadlines.removeValue(forKey: report.instanceID)?.cancel()
                case .log, .steps: break
                }
            }
            pumpDispatch()
            return .ack(upTo: upTo)
        }
    }

    private func register(_ registration: ExecutorRegistration) {
        let id = registration.executorID
        let name = id.rawValue.split(separator: "/").first.map(String.init) ?? id.rawValue
        // An executor that restarted comes back as a new boot: whatever the old boot had is lost.
        for other in Array(executors.keys) where other != id && other.rawValue.hasPrefix(name + "/") {
            declareLost(other, reason: "it restarted")
        }
        // The same boot registering again (after a Scheduler restart, or twice at once) keeps its
        // link: closing a socket right after it dialled hangs up during the handshake, and
        // dispatches in flight on it would fail for nothing.
        let socket: NNGSocket?
        if let previous = executors[id], previous.address == registration.address, let kept = previous.socket {
            socket = kept
        } else {
            executors[id]?.close()
            do {
                let s = try NNGSocket(.req, maxMessageBytes: 1 << 20)
                try s.dial(registration.address)
                socket = s
            } catch {
                logger.error("cannot reach executor", metadata: ["executor.id": "\(id)", "error": "\(error)"])
                socket = nil
            }
        }
        let session = ExecutorSession(
            id: id, address: registration.address, capacity: registration.capacity, socket: socket)
        executors[id] = session
        watch(session)
        logger.info("executor registered", metadata: ["executor.id": "\(id)", "capacity": "\(registration.capacity)"])

        let running = Set(registration.running)
        for instance in state.assigned[id] ?? [] where !running.contains(instance) {
            guard let tracked = state.instances[instance] else { continue }
            if tracked.status == .starting {
                requeue(instance)
            } else if tracked.status == .running {
                let decision = Decide.decide(
                    .executorLost(instance, id, reason: "the executor no longer runs it"), state: state, now: .now())
                Task { await self.commit(decision) }
            }
        }
        for instance in running
        where state.instances[instance]?.executor != id || state.instances[instance]?.status.isTerminal == true {
            perform(.killOnExecutor(instance, id))
        }
        pumpDispatch()
    }

    /// Re-arms a deadline for the executor after each heartbeat; silence past the loss timeout
    /// declares it lost. This is a deadline, not a poll: nothing is read until it expires.
    private func watch(_ session: ExecutorSession) {
        let timeout = config.executorLossTimeout
        Task { [weak session] in
            while let current = session {
                let deadline = current.lastSeen + timeout
                if ContinuousClock.now >= deadline {
                    self.declareLostIfCurrent(current)
                    return
                }
                try? await Task.sleep(until: deadline, clock: .continuous)
            }
        }
    }

    private func declareLostIfCurrent(_ session: ExecutorSession) {
        guard executors[session.id] === session else { return }
        declareLost(session.id, reason: "no heartbeat for \(config.executorLossTimeout)")
    }

    private func declareLost(_ executor: ExecutorID, reason: String) {
        executors.removeValue(forKey: executor)?.close()
        logger.warning("executor lost", metadata: ["executor.id": "\(executor)", "reason": "\(reason)"])
        for id in state.assigned[executor] ?? [] {
            guard let tracked = state.instances[id] else { continue }
            if tracked.status == .starting {
                requeue(id)
            } else {
                let decision = Decide.decide(.executorLost(id, executor, reason: reason), state: state, now: .now())
                Task { await self.commit(decision) }
            }
        }
        pumpDispatch()
    }

    // MARK: - Dispatch

    /// Gives waiting instances to executors with free capacity, least loaded first.
    private func pumpDispatch() {
        guard log.failed == nil else { return }
        while state.queue.count > 0 {
            let candidates = executors.values.filter { $0.socket != nil && load(of: $0.id) < $0.capacity }
            guard let executor = candidates.min(by: { load(of: $0.id) < load(of: $1.id) }) else { return }
            guard let id = state.queue.pop() else { return }
            let decision = Decide.decide(.assign(id, executor.id), state: state, now: .now())
            guard !decision.events.isEmpty else { continue }
            let ticket = stage(decision)
            Task {
                guard await self.durable(ticket) else { return }
                self.performAll(decision.actions)
            }
        }
    }

    private func load(of executor: ExecutorID) -> Int { state.assigned[executor]?.count ?? 0 }

    private func performAll(_ actions: [SchedulerAction]) { actions.forEach(perform) }

    private func perform(_ action: SchedulerAction) {
        switch action {
        case .replyStarted, .replyCancelled:
            break
        case .requeue(let id):
            requeue(id)
            pumpDispatch()
        case .dispatch(let id, let executor, let attempt):
            armStartingDeadline(id, attempt: attempt)
            guard let created = state.instances[id]?.created, let session = executors[executor],
                let socket = session.socket
            else {
                return
            }
            let command = ExecutorCommand.dispatch(
                Dispatch(
                    instanceID: id, attempt: attempt, entryPoint: created.entryPoint, arguments: created.arguments,
                    out: created.out))
            let timeout = config.executorRequestTimeout
            Task {
                do {
                    let payload = try await self.payloads.get(created.payload)
                    let reply = try await socket.request(
                        try WireFrame.encode(command, attachment: payload), timeout: timeout)
                    let (answer, _) = try WireFrame.decode(ExecutorCommandReply.self, from: reply)
                    if case .refused(let reason) = answer { self.dispatchRefused(id, executor, reason: reason) }
                } catch {
                    self.dispatchRefused(id, executor, reason: "\(error)")
                }
            }
        case .killOnExecutor(let id, let executor):
            guard let socket = executors[executor]?.socket else { return }
            let timeout = config.executorRequestTimeout
            let logger = logger
            Task {
                do {
                    _ = try await socket.request(
                        try WireFrame.encode(ExecutorCommand.cancel(instanceID: id)), timeout: timeout)
                } catch {
                    logger.warning(
                        "could not tell an executor to stop an instance",
                        metadata: ["instance.id": "\(id)", "executor.id": "\(executor)", "error": "\(error)"])
                }
            }
        }
    }

    private func dispatchRefused(_ id: InstanceID, _ executor: ExecutorID, reason: String) {
        guard let tracked = state.instances[id], tracked.executor == executor, tracked.status == .starting else {
            return
        }
        logger.warning(
            "dispatch failed; the instance waits for another executor",
            metadata: ["instance.id": "\(id)", "executor.id": "\(executor)", "reason": "\(reason)"])
        requeue(id)
        pumpDispatch()
    }

    // MARK: - Timeouts

    /// Every STARTING instance has a deadline: dispatched again when it passes, failed after the
    /// last attempt. Disarmed by the attempt moving on (checked when it fires).
    private func armStartingDeadline(_ id: InstanceID, attempt: Int) {
        startingDeadlines[id]?.cancel()
        let timeout = config.startingTimeout
        startingDeadlines[id] = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            await self.startingExpired(id, attempt: attempt)
        }
    }

    private func startingExpired(_ id: InstanceID, attempt: Int) async {
        startingDeadlines[id] = nil
        let decision = Decide.decide(
            .startingExpired(id, attempt: attempt, maxAttempts: config.maxDispatchAttempts), state: state, now: .now())
        if !decision.actions.isEmpty || !decision.events.isEmpty {
            logger.warning(
                "an instance did not start in time", metadata: ["instance.id": "\(id)", "attempt": "\(attempt)"])
        }
        guard await commit(decision) else { return }
        decision.actions.forEach(perform)
        pumpDispatch()
    }

    private func armTimeout(_ id: InstanceID, _ tracked: TrackedInstance, now: Timestamp) {
        guard let limit = tracked.created?.timeoutMillis, timeouts[id] == nil else { return }
        let since = tracked.runningSince ?? now
        let remaining = max(0, since.millis + limit - now.millis)
        timeouts[id] = Task {
            try? await Task.sleep(for: .milliseconds(remaining))
            guard !Task.isCancelled else { return }
            await self.fireTimeout(id)
        }
    }

    private func fireTimeout(_ id: InstanceID) async {
        timeouts[id] = nil
        let decision = Decide.decide(.timeOut(id), state: state, now: .now())
        guard await commit(decision) else { return }
        decision.actions.forEach(perform)
        pumpDispatch()
    }

    // MARK: - Appending

    /// Appends and applies a decision's events now; durability is awaited separately.
    private func stage(_ decision: Decision) -> AppendTicket {
        let ticket = log.append(decision.events)
        for envelope in ticket.envelopes {
            state.apply(envelope)
            if case .instanceCreated = envelope.event { armEnqueuedWarning(envelope.instanceID) }
        }
        if state.head >= snapshotSeq + config.snapshotEvery { takeSnapshot() }
        return ticket
    }

    // MARK: - Snapshots

    /// Writes the state as it is now once its last event is durable, off the actor. Skipped if the
    /// log fails in between (the state then held events the log refused).
    private func takeSnapshot() {
        guard let snapshots, !snapshotting, !recovering else { return }
        snapshotting = true
        let snapshot = SchedulerSnapshot(seq: state.head, state: state)
        snapshotSeq = state.head
        let log = log
        let failures = log.failures
        let logger = logger
        Task.detached(priority: .utility) {
            let started = ContinuousClock.now
            do {
                try await log.waitDurable(snapshot.seq)
                guard log.failures == failures else { throw EventLogError("the log failed meanwhile") }
                try snapshots.write(snapshot)
                logger.info(
                    "snapshot written",
                    metadata: ["seq": "\(snapshot.seq)", "duration": "\(started.duration(to: .now))"])
            } catch {
                logger.warning("no snapshot this time", metadata: ["seq": "\(snapshot.seq)", "error": "\(error)"])
            }
            await self.snapshotFinished()
        }
    }

    private func snapshotFinished() { snapshotting = false }

    /// At a clean stop: a snapshot of everything, so the next start replays nothing.
    func snapshotAtStop() async {
        guard let snapshots, !recovering, state.head > snapshotSeq, log.failed == nil else { return }
        let snapshot = SchedulerSnapshot(seq: state.head, state: state)
        do {
            try await log.waitDurable(snapshot.seq)
            try snapshots.write(snapshot)
            logger.info("snapshot written at stop", metadata: ["seq": "\(snapshot.seq)"])
        } catch {
            logger.warning("no snapshot at stop", metadata: ["error": "\(error)"])
        }
    }

    private func durable(_ ticket: AppendTicket) async -> Bool {
        do {
            try await ticket.durable()
            return true
        } catch {
            // The state already holds events the log refused: only a rebuild from the log is right.
            logFailed(error)
            return false
        }
    }

    static func logUnavailable(_ failure: EventLogError) -> SchedulerReply {
        .unavailable(message: "the server cannot record anything right now (\(failure)); try again shortly")
    }

    private func logFailed(_ error: any Error) {
        guard !recovering else { return }
        recovering = true
        logger.error(
            "the event log cannot be written: commands are refused until it can", metadata: ["error": "\(error)"])
        Task { await self.recoverLog() }
    }

    /// Probes the log once a second until it takes writes again, then rebuilds from it.
    private func recoverLog() async {
        var attempts = 0
        while true {
            try? await Task.sleep(for: .seconds(1))
            do {
                try log.recover()
                break
            } catch {
                attempts += 1
                if attempts % 30 == 0 {
                    logger.error("the event log still cannot be written", metadata: ["error": "\(error)"])
                }
            }
        }
        // No suspension from here on: nothing is staged between the probe and the rebuild.
        for task in timeouts.values { task.cancel() }
        for task in startingDeadlines.values { task.cancel() }
        timeouts = [:]
        startingDeadlines = [:]
        do {
            let rebuilt = try Self.rebuild(log, snapshots, logger)
            state = rebuilt.state
            snapshotSeq = rebuilt.snapshot
        } catch {
            logger.critical("the event log cannot be read back; exiting", metadata: ["error": "\(error)"])
            exit(75)
        }
        recovering = false
        logger.notice("the event log takes writes again")
        resume()
        pumpDispatch()
    }

    @discardableResult
    private func commit(_ decision: Decision) async -> Bool {
        guard !decision.events.isEmpty else { return true }
        return await durable(stage(decision))
    }
}

/// One registered executor: where to reach it and when it was last heard from.
final class ExecutorSession: @unchecked Sendable {
    // @unchecked: only the SchedulerCore actor reads and writes the mutable fields.
    let id: ExecutorID
    let address: String?
    let capacity: Int
    let socket: NNGSocket?
    var lastSeen: ContinuousClock.Instant = .now

    init(id: ExecutorID, address: String?, capacity: Int, socket: NNGSocket?) {
        self.id = id
        self.address = address
        self.capacity = capacity
        self.socket = socket
    }

    func close() { socket?.close() }
}
