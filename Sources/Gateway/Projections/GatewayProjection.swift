import Foundation
import Logging
import Model
import ReadModels
import Support
import Synchronization
import Wire

// Past 400 lines on purpose: folding, batching to the store, eviction, retention and the waiters
// share one state and the order of two locks (`serial`, then `state`); the doorbells followers wait
// on are `Doorbells.swift`, the store `ReadStore.swift`, the log pieces `LogStore.swift`.

/// The Gateway's read side: the status and key projections folded from the Scheduler's event
/// stream, the logs, and the waiters that `/wait` parks until their instance's terminal event arrives.
///
/// Memory holds what is hot: the live instances, and those that ended since the last write to
/// the `ReadStore`. Every `flushEvery` the views that changed are written in one transaction with
/// the head they stand for; then the ended ones leave memory, and are read from the store. A
/// restart loads the store's live instances and goes on from its head.
final class GatewayProjection: Sendable {
    private struct State {
        var projection = StatusProjection(keepsOrder: false)
        var keys = KeyProjection()
        var waiters: [InstanceID: [Int: CheckedContinuation<InstanceView?, Never>]] = [:]
        var headWaiters: [Int: (seq: UInt64, continuation: CheckedContinuation<Bool, Never>)] = [:]
        var nextToken = 0
        /// Instances by status, kept as they move (for `/metrics`).
        var counts: [InstanceStatus: Int] = [:]
        /// Changed since the last batch was taken.
        var dirty: Set<InstanceID> = []
        var keyEvents: [EventEnvelope] = []
        /// The head of the last batch taken.
        var batchHead: UInt64 = 0
        /// The log's first event, `id@millis`: tells this log from another after a restart.
        var identity: String?
        var identityChanged = false
        /// Retention since the last batch: the newest cutoff, and the instances it took from memory
        /// (their rows, whatever they say, go too).
        var trimmedBefore: Timestamp?
        var trimmed: Set<InstanceID> = []
    }

    private let state = Mutex(State())
    /// Folding and taking a batch exclude each other: a batch's views and log pieces are then
    /// those of one head.
    private let serial = Mutex(())
    let logs: LogStore
    let store: ReadStore
    private let logger: Logger
    /// Rung when an instance's log grows or its status moves: what log followers wait on.
    let doorbells: Doorbells
    /// Fulfilled once the first catch-up reached the Scheduler's head: reads wait for it.
    let ready = Promise<Void>()
    private let flusher = Mutex<Task<Void, Never>?>(nil)
    /// Retention's reclaim of the store's free pages while one runs, and whether a trim came
    /// since it began.
    private let reclaiming = Mutex<(task: Task<Void, Never>?, again: Bool)>((nil, false))
    private let flushing = AsyncGate()

    /// The store and the log file in `directory`, as the last run left them.
    init(
        directory: String, heartbeat: Duration = .seconds(15), flushEvery: Duration = .milliseconds(50),
        logger: Logger = Logger(label: "accord-gateway")
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Where earlier versions kept a log cache rebuilt at every start.
        try? FileManager.default.removeItem(atPath: directory + "/logs")
        let store = try ReadStore(path: directory + "/read-models.sqlite")
        let loaded = try store.load()
        self.store = store
        self.logger = logger
        logs = try LogStore(path: directory + "/logs.dat") { [logger] id in
            do {
                return try store.instance(id)?.chunks
            } catch {
                logger.error("cannot read the read-model store", metadata: ["error": "\(error)"])
                return nil
            }
        }
        doorbells = Doorbells(heartbeat: heartbeat)
        state.withLock { state in
            state.projection = StatusProjection(restoring: loaded.live.map(\.view), head: loaded.head)
            for envelope in loaded.keyEvents { state.keys.apply(envelope) }
            state.counts = loaded.counts
            state.batchHead = loaded.head
            state.identity = loaded.identity
        }
        for stored in loaded.live { logs.restore(stored.view.id, stored.chunks) }
        if loaded.head > 0 {
            logger.info(
                "read models loaded", metadata: ["head": "\(loaded.head)", "live": "\(loaded.live.count)"])
        }
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: flushEvery)
                guard let self else { return }
                await self.flush()
            }
        }
        flusher.withLock { $0 = task }
    }

    deinit { flusher.withLock { $0?.cancel() } }

    var head: UInt64 { state.withLock { $0.projection.head } }

    /// How many instances are in memory (the live ones, and those not written yet).
    var hotCount: Int { state.withLock { $0.projection.instances.count } }

    /// The log's identity as the store knows it (nil before its first event).
    var identity: String? { state.withLock { $0.identity } }

    static func identity(of first: EventEnvelope) -> String { "\(first.instanceID)@\(first.at.millis)" }

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
    /// Events read from the log itself (`fromLog`, a catch-up's answer) may skip numbers: those
    /// are events retention removed, not messages this Gateway missed.
    func apply(_ events: [EventEnvelope], fromLog: Bool = false) -> Bool {
        serial.withLock { _ in applyInOrder(events, fromLog: fromLog) }
    }

    private func applyInOrder(_ events: [EventEnvelope], fromLog: Bool) -> Bool {
        for envelope in events {
            let current = head
            if envelope.seq <= current { continue }
            guard envelope.seq == current + 1 || fromLog else { return false }
            let id = envelope.instanceID
            if case .historyTrimmed(let trim) = envelope.event { forget(endedBefore: trim.before) }
            if envelope.event.isInstanceEvent, !envelope.event.isCreation,
                state.withLock({ $0.projection.instances[id] == nil })
            {
                faultIn(id)
            }
            var logGrew = false
            if case .logAppended(let appended) = envelope.event {
                logs.append(id, appended.lines)
                logGrew = true
            }
            let (change, woken) = state.withLock {
                state -> (ProjectionChange, (InstanceView, [CheckedContinuation<InstanceView?, Never>])?) in
                if envelope.seq == 1 {
                    state.identity = Self.identity(of: envelope)
                    state.identityChanged = true
                }
                if envelope.event.isKeyEvent {
                    state.keys.apply(envelope)
                    state.keyEvents.append(envelope)
                }
                let before = state.projection.instances[id]
                let change = state.projection.apply(envelope)
                if let after = state.projection.instances[id], after != before {
                    state.dirty.insert(id)
                    if after.status != before?.status {
                        if let old = before?.status { state.counts[old, default: 0] -= 1 }
                        state.counts[after.status, default: 0] += 1
                    }
                }
                guard case .terminal(let id) = change, let view = state.projection.instances[id] else {
                    return (change, nil)
                }
                return (change, (view, Array((state.waiters.removeValue(forKey: id) ?? [:]).values)))
            }
            if let (view, waiters) = woken { for waiter in waiters { waiter.resume(returning: view) } }
            // Followers hear of every line and every status change of their instance.
            if logGrew || change != .none { doorbells.ring(id) }
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

    /// Retention: the instances in memory that ended before `before` go now (the projection's
    /// fold drops them), and the next batch removes their rows and every stored one that ended
    /// before it.
    private func forget(endedBefore before: Timestamp) {
        state.withLock { state in
            let gone = state.projection.instances.values.filter {
                $0.status.isTerminal && $0.lastChangeAt < before
            }
            for view in gone {
                state.trimmed.insert(view.id)
                state.dirty.remove(view.id)
            }
            state.trimmedBefore = max(state.trimmedBefore ?? before, before)
        }
    }

    /// Brings an ended instance back from the store: an event for it is about to be folded (an
    /// old log can hold lines after an instance's end; they count for its log and events).
    private func faultIn(_ id: InstanceID) {
        guard let stored = storedInstance(id) else { return }
        state.withLock { $0.projection.restore(stored.view) }
        logs.restore(id, stored.chunks)
    }

    private func storedInstance(_ id: InstanceID) -> ReadStore.Stored? {
        do {
            return try store.instance(id)
        } catch {
            logger.error("cannot read the read-model store", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Writes what changed since the last batch, then lets the ended instances go from memory.
    /// One at a time: batches must land in the order they were taken.
    func flush() async { await flushing.withGate { await flushOnce() } }

    private func flushOnce() async {
        guard let batch = takeBatch() else { return }
        do {
            try logs.sync()
            if let trimmed = try await store.write(batch) {
                // Retention changed what the store holds: its counts are the truth at the batch's
                // head; what was folded since then moved the memory's counts by the same amounts.
                state.withLock { state in
                    for status in InstanceStatus.allCases {
                        state.counts[status, default: 0] +=
                            (trimmed.counts[status] ?? 0) - (batch.counts[status] ?? 0)
                    }
                }
                var released = trimmed.logs
                for id in batch.trimmed { released.add(logs.chunks(id)) }
                reclaim(released)
            }
        } catch {
            // Kept in memory and marked again: the next flush retries them.
            logger.error("cannot write the read-model store", metadata: ["error": "\(error)"])
            state.withLock { state in
                for stored in batch.instances { state.dirty.insert(stored.view.id) }
                state.keyEvents = batch.keyEvents + state.keyEvents
                state.batchHead = batch.previousHead
                if batch.identity != nil { state.identityChanged = true }
                if let before = batch.trimmedBefore {
                    state.trimmedBefore = max(state.trimmedBefore ?? before, before)
                    state.trimmed.formUnion(batch.trimmed)
                }
            }
            return
        }
        serial.withLock { _ in
            let evicted = state.withLock { state -> [InstanceID] in
                var evicted: [InstanceID] = []
                for stored in batch.instances
                where stored.view.status.isTerminal && !state.dirty.contains(stored.view.id) {
                    state.projection.evict(stored.view.id)
                    evicted.append(stored.view.id)
                }
                return evicted
            }
            for id in evicted + batch.trimmed { logs.evict(id) }
        }
    }

    /// After a batch that trimmed history: the log bytes of the instances it removed are given
    /// back to the filesystem, then the store's freed pages (in the background: batches go on).
    private func reclaim(_ released: ByteRanges) {
        logs.release(released)
        reclaiming.withLock { reclaim in
            // A trim while one runs: it goes round once more (a VACUUM that began before this
            // trim's rows went would leave their pages).
            reclaim.again = reclaim.task != nil
            guard reclaim.task == nil else { return }
            reclaim.task = Task { [weak self, store, logger] in
                repeat {
                    do {
                        let started = ContinuousClock.now
                        try await store.reclaim()
                        logger.info(
                            "retention: the trimmed instances' disk is given back",
                            metadata: ["took": "\(started.duration(to: .now))"])
                    } catch {
                        logger.error(
                            "cannot reclaim the read-model store's free pages", metadata: ["error": "\(error)"])
                    }
                } while self?.reclaiming.withLock({ reclaim in
                    defer { reclaim.again = false }
                    if !reclaim.again { reclaim.task = nil }
                    return reclaim.again
                }) == true
            }
        }
    }

    /// Returns once no reclaim runs (tests).
    func reclaimed() async { await reclaiming.withLock { $0.task }?.value }

    private func takeBatch() -> ReadStore.Batch? {
        serial.withLock { _ in
            let taken = state.withLock {
                state -> (batch: ReadStore.Batch, ids: [InstanceID])? in
                let head = state.projection.head
                guard head > state.batchHead || !state.dirty.isEmpty else { return nil }
                var views: [InstanceView] = []
                views.reserveCapacity(state.dirty.count)
                for id in state.dirty { if let view = state.projection.instances[id] { views.append(view) } }
                let batch = ReadStore.Batch(
                    head: head, previousHead: state.batchHead, instances: views.map { .init(view: $0, chunks: []) },
                    keyEvents: state.keyEvents, counts: state.counts,
                    identity: state.identityChanged ? state.identity : nil, trimmedBefore: state.trimmedBefore,
                    trimmed: Array(state.trimmed))
                let ids = Array(state.dirty)
                state.dirty = []
                state.trimmedBefore = nil
                state.trimmed = []
                state.keyEvents = []
                state.batchHead = head
                state.identityChanged = false
                return (batch, ids)
            }
            guard var (batch, _) = taken else { return nil }
            for index in batch.instances.indices {
                batch.instances[index].chunks = logs.chunks(batch.instances[index].view.id)
            }
            return batch
        }
    }

    /// Forgets everything: the store was folded from another log than the Scheduler serves.
    func reset() async throws {
        try await flushing.withGate { try resetNow() }
    }

    private func resetNow() throws {
        try serial.withLock { _ in
            try store.reset()
            logs.reset()
            state.withLock { state in
                state.projection = StatusProjection(keepsOrder: false)
                state.keys = KeyProjection()
                state.counts = [:]
                state.dirty = []
                state.keyEvents = []
                state.batchHead = 0
                state.identity = nil
                state.identityChanged = false
            }
        }
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

    /// The instance as it stands: from memory while hot, from the store once it ended and was written.
    func view(_ id: InstanceID) -> InstanceView? {
        if let hot = state.withLock({ $0.projection.instances[id] }) { return hot }
        return storedInstance(id)?.view
    }

    /// The live recorded key whose secret hashes to `hash` (lower-case hex).
    func key(hash: String) -> KeyView? { state.withLock { $0.keys.live(hash: hash) } }

    /// The recorded key with this id.
    func key(id: KeyID) -> KeyView? { state.withLock { $0.keys.key(id) } }

    /// The live recorded keys, oldest first.
    func liveKeys() -> [KeyView] { state.withLock { $0.keys.live } }

    /// How many instances are in each status (for `/metrics`), without copying any view.
    func countsByStatus() -> [InstanceStatus: Int] { state.withLock { $0.counts.filter { $0.value != 0 } } }

    /// Newest first: the hot instances that match, merged with the store's (an id in memory is
    /// newer there than in the store, so the store's copy is skipped).
    func list(
        status: InstanceStatus?, tag: String?, visible: Visibility, parent: InstanceID? = nil, limit: Int, offset: Int
    ) throws -> [InstanceView] {
        let filter = ListFilter(status: status, tag: tag, visible: visible, parent: parent)
        let wanted = offset + limit
        let (hot, hotIDs) = state.withLock { state in
            (state.projection.instances.values.filter(filter.matches), Set(state.projection.instances.keys))
        }
        let newestHot = hot.sorted { $0.createdSeq > $1.createdSeq }.prefix(wanted)
        let stored = try store.list(filter, skipping: hotIDs, count: wanted)
        var merged: [InstanceView] = []
        merged.reserveCapacity(min(wanted, newestHot.count + stored.count))
        var (h, s) = (newestHot.startIndex, stored.startIndex)
        while merged.count < wanted, h < newestHot.endIndex || s < stored.endIndex {
            if s == stored.endIndex || (h < newestHot.endIndex && newestHot[h].createdSeq > stored[s].createdSeq) {
                merged.append(newestHot[h])
                h += 1
            } else {
                merged.append(stored[s])
                s += 1
            }
        }
        return Array(merged.dropFirst(offset))
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
                    guard let view = state.projection.instances[id] else { return .some(nil) }
                    if view.status.isTerminal { return .some(view) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[id, default: [:]][token] = continuation
                    return .none
                }
                // Not in memory: it ended and was written (only ended instances leave memory).
                if let immediate { continuation.resume(returning: immediate ?? storedInstance(id)?.view) }
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
