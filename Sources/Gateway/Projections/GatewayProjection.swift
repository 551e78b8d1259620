import Model
import ReadModels
import Support
import Synchronization
import Wire

/// The Gateway's read side: the status and key projections folded from the Scheduler's event
/// stream, the log files, and the waiters that `/wait` parks until their instance's terminal event arrives.
final class GatewayProjection: Sendable {
    private struct State {
        var projection = StatusProjection()
        var keys = KeyProjection()
        var waiters: [InstanceID: [Int: CheckedContinuation<InstanceView?, Never>]] = [:]
        var headWaiters: [Int: (seq: UInt64, continuation: CheckedContinuation<Bool, Never>)] = [:]
        var nextToken = 0
    }

    private let state = Mutex(State())
    let logs: LogStore
    /// Rung when an instance's log grows or its status moves: what log followers wait on.
    let doorbells: Doorbells
    /// Fulfilled once the first catch-up reached the Scheduler's head: reads wait for it.
    let ready = Promise<Void>()

    init(logs: LogStore, heartbeat: Duration = .seconds(15)) {
        self.logs = logs
        self.doorbells = Doorbells(heartbeat: heartbeat)
    }

    var head: UInt64 { state.withLock { $0.projection.head } }

    /// Whether the first catch-up completes within `timeout` (at once when it has).
    func awaitReady(within timeout: Duration) async -> Bool {
        if ready.isFulfilled { return true }
        return await Self.first(within: timeout, otherwise: false) { (try? await self.ready.value()) != nil }
    }

    /// `work`'s answer, or `otherwise` once `timeout` (when there is one) passes first; the loser
    /// is cancelled.
    private static func first<T: Sendable>(
        within timeout: Duration?, otherwise: T, _ work: @escaping @Sendable () async -> T
    ) async -> T {
        await withTaskGroup(of: T.self) { group in
            group.addTask { await work() }
            if let timeout {
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return otherwise
                }
            }
            let first = await group.next() ?? otherwise
            group.cancelAll()
            return first
        }
    }

    /// Applies events that continue the sequence; returns false at a gap (the caller catches up).
    func apply(_ events: [EventEnvelope]) -> Bool {
        for envelope in events {
            let current = head
            if envelope.seq <= current { continue }
            guard envelope.seq == current + 1 else { return false }
            var logGrew = false
            if case .logAppended(let appended) = envelope.event {
                logs.append(envelope.instanceID, appended.lines)
                logGrew = true
            }
            let (change, woken) = state.withLock {
                state -> (ProjectionChange, (InstanceView, [CheckedContinuation<InstanceView?, Never>])?) in
                state.keys.apply(envelope)
                let change = state.projection.apply(envelope)
                guard case .terminal(let id) = change, let view = state.projection.instances[id] else {
                    return (change, nil)
                }
                return (change, (view, Array((state.waiters.removeValue(forKey: id) ?? [:]).values)))
            }
            if let (view, waiters) = woken { for waiter in waiters { waiter.resume(returning: view) } }
            // Followers hear of every line and every status change of their instance.
            if logGrew || change != .none { doorbells.ring(envelope.instanceID) }
            let reached = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
                guard !state.headWaiters.isEmpty else { return [] }
                let head = state.projection.head
                let done = state.headWaiters.filter { $0.value.seq <= head }
                for token in done.keys { state.headWaiters[token] = nil }
                return done.values.map(\.continuation)
            }
            for waiter in reached { waiter.resume(returning: true) }
        }
        return true
    }

    /// Waits until the projection has applied event `seq` (read your writes after a command), at
    /// most `timeout`; woken by `apply`, never by polling. Returns whether it got there.
    func waitForHead(_ seq: UInt64, timeout: Duration) async -> Bool {
        if head >= seq { return true }
        return await Self.first(within: timeout, otherwise: false) { await self.parkForHead(seq) }
    }

    private func parkForHead(_ seq: UInt64) async -> Bool {
        let token = state.withLock { state -> Int in
            state.nextToken += 1
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate = state.withLock { state -> Bool? in
                    if state.projection.head >= seq { return true }
                    if Task.isCancelled { return false }
                    state.headWaiters[token] = (seq, continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.headWaiters.removeValue(forKey: token) }
            waiter?.continuation.resume(returning: false)
        }
    }

    func view(_ id: InstanceID) -> InstanceView? { state.withLock { $0.projection.instances[id] } }

    /// The live recorded key whose secret hashes to `hash` (lower-case hex).
    func key(hash: String) -> KeyView? { state.withLock { $0.keys.live(hash: hash) } }

    /// The recorded key with this id.
    func key(id: KeyID) -> KeyView? { state.withLock { $0.keys.key(id) } }

    /// The live recorded keys, oldest first.
    func liveKeys() -> [KeyView] { state.withLock { $0.keys.live } }

    /// How many instances are in each status (for `/metrics`), without copying any view.
    func countsByStatus() -> [InstanceStatus: Int] {
        state.withLock { state in
            var counts: [InstanceStatus: Int] = [:]
            for view in state.projection.instances.values { counts[view.status, default: 0] += 1 }
            return counts
        }
    }

    func list(status: InstanceStatus?, tag: String?, visible: Visibility, limit: Int, offset: Int) -> [InstanceView] {
        state.withLock {
            $0.projection.list(status: status, tag: tag, visible: visible, limit: limit, offset: offset)
        }
    }

    /// The instance once terminal, or nil when `timeout` passes first (or the task is cancelled).
    /// Costs no thread while it waits: the terminal event resumes it.
    func waitTerminal(_ id: InstanceID, timeout: Duration?) async -> InstanceView? {
        await Self.first(within: timeout, otherwise: nil) { await self.park(id) }
    }

    private func park(_ id: InstanceID) async -> InstanceView? {
        let token = state.withLock { state -> Int in
            state.nextToken += 1
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<InstanceView?, Never>) in
                let immediate = state.withLock { state -> InstanceView?? in
                    if let view = state.projection.instances[id], view.status.isTerminal { return .some(view) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id, default: [:]][token] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<InstanceView?, Never>? in
                let removed = state.waiters[id]?.removeValue(forKey: token)
                if state.waiters[id]?.isEmpty == true { state.waiters[id] = nil }
                return removed
            }
            waiter?.resume(returning: nil)
        }
    }
}

/// Per-instance doorbells for whoever follows an instance as it runs: a ring says "look again",
/// and rings that come while nobody looks fold into one, so a slow follower costs one pending
/// ring, never a queue. Ringing an instance nobody follows is one dictionary lookup. While anyone
/// listens, every bell is also rung each `heartbeat`, so a follower that has nothing new can say
/// so to its client (and learn that the client has gone).
final class Doorbells: Sendable {
    private struct State {
        var bells: [InstanceID: [Int: AsyncStream<Void>.Continuation]] = [:]
        var nextToken = 0
        var ticker: Task<Void, Never>?
    }

    private let state = Mutex(State())
    let heartbeat: Duration

    init(heartbeat: Duration = .seconds(15)) { self.heartbeat = heartbeat }

    deinit { state.withLock { $0.ticker?.cancel() } }

    /// A bell for `id`, rung from now on until `stop` is called with its token.
    func listen(_ id: InstanceID) -> (token: Int, rings: AsyncStream<Void>) {
        let (rings, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let token = state.withLock { state in
            state.nextToken += 1
            state.bells[id, default: [:]][state.nextToken] = continuation
            if state.ticker == nil {
                let interval = heartbeat
                state.ticker = Task { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        guard let self else { return }
                        self.ringAll()
                    }
                }
            }
            return state.nextToken
        }
        return (token, rings)
    }

    /// Ends the bell: its follower's wait returns nil.
    func stop(_ id: InstanceID, _ token: Int) {
        let continuation = state.withLock { state -> AsyncStream<Void>.Continuation? in
            let removed = state.bells[id]?.removeValue(forKey: token)
            if state.bells[id]?.isEmpty == true { state.bells[id] = nil }
            return removed
        }
        continuation?.finish()
    }

    func ring(_ id: InstanceID) {
        state.withLock { state in
            guard let bells = state.bells[id] else { return }
            for continuation in bells.values { continuation.yield() }
        }
    }

    private func ringAll() {
        state.withLock { state in
            for bells in state.bells.values { for continuation in bells.values { continuation.yield() } }
        }
    }

    /// How many bells are listened to (for `/metrics`).
    var listening: Int { state.withLock { $0.bells.values.reduce(0) { $0 + $1.count } } }
}
