import Model

/// Every deadline the Scheduler keeps, in one structure: what is due next is known in O(log n),
/// and one timer (`SchedulerCore.rearmTimer`) sleeps until it, however many instances there are.
///
/// Deadlines are consequences of events (`follow`), never armed by hand: a start arms the
/// enqueued warning, an assignment the starting deadline of its attempt, a start on an executor
/// the instance's timeout, and a terminal event clears all three. After a restart they are derived
/// from the state (`init(state:)`), which is itself the fold of the log.
struct Deadlines {
    /// What a deadline is for.
    enum Kind: Hashable {
        /// The instance has waited this long for an executor: reported once.
        case enqueuedWarning
        /// Dispatch `attempt` has not reached RUNNING: dispatched again or failed.
        case starting(attempt: Int)
        /// The instance has run past its `timeoutMillis`.
        case timeout
        /// Dispatch `attempt` of the instance's handler has not started: dispatched again or given up.
        case handlerStarting(attempt: Int)
        /// The instance's handler has run past its `handlerTimeoutMillis`.
        case handlerTimeout
    }

    /// The slots of an instance (and of its handler run); a new deadline in a slot replaces the old one.
    private enum Slot: Hashable { case enqueued, starting, running, handlerStarting, handlerRunning }

    private struct Key: Hashable {
        var id: InstanceID
        var slot: Slot
    }

    private struct Entry {
        var due: ContinuousClock.Instant
        var key: Key
        var kind: Kind
        var generation: UInt64
    }

    /// The live deadline of each slot, by the generation of its heap entry.
    private var live: [Key: (due: ContinuousClock.Instant, generation: UInt64)] = [:]
    /// A min-heap on `due`; entries whose generation is no longer live are skipped when they surface.
    private var heap: [Entry] = []
    private var generation: UInt64 = 0

    /// How long each kind of deadline is.
    struct Limits {
        var enqueuedWarning: Duration
        var starting: Duration
    }

    let limits: Limits

    init(limits: Limits) { self.limits = limits }

    /// The deadlines a rebuilt state stands for (a restart, a recovery from a failed write).
    init(state: SchedulerState, limits: Limits, now: ContinuousClock.Instant = .now, wallNow: Timestamp = .now()) {
        self.limits = limits
        for (id, tracked) in state.instances {
            switch tracked.status {
            case .starting: set(id, .starting(attempt: tracked.attempt), at: now + limits.starting)
            case .resuming where tracked.executor != nil:
                set(id, .starting(attempt: tracked.attempt), at: now + limits.starting)
            case .running: armTimeout(id, tracked, now: now, wallNow: wallNow)
            default: break
            }
        }
        for id in state.queue.waiting { set(id, .enqueuedWarning, at: now + limits.enqueuedWarning) }
        for (id, handler) in state.handlers {
            switch handler.status {
            case .starting: set(id, .handlerStarting(attempt: handler.attempt), at: now + limits.starting)
            case .running: armHandlerTimeout(id, handler, now: now, wallNow: wallNow)
            default: break
            }
        }
    }

    var count: Int { live.count }

    /// When the next deadline is due, if there is one.
    mutating func next() -> ContinuousClock.Instant? {
        dropStale()
        return heap.first?.due
    }

    /// Removes and returns every deadline due at `now`, earliest first.
    mutating func popDue(_ now: ContinuousClock.Instant) -> [(id: InstanceID, kind: Kind)] {
        var due: [(InstanceID, Kind)] = []
        while true {
            dropStale()
            guard let first = heap.first, first.due <= now else { return due }
            removeTop()
            live[first.key] = nil
            due.append((first.key.id, first.kind))
        }
    }

    /// The deadlines `envelope` arms or clears; `tracked` is its instance after the event applied.
    mutating func follow(
        _ envelope: EventEnvelope, tracked: TrackedInstance?, handler: TrackedHandler? = nil,
        now: ContinuousClock.Instant = .now, wallNow: Timestamp = .now()
    ) {
        let id = envelope.instanceID
        switch envelope.event {
        case .handlerAssigned(let assigned):
            guard let handler, handler.status == .starting else { return }
            set(id, .handlerStarting(attempt: assigned.attempt), at: now + limits.starting)
        case .handlerStarted:
            guard let handler, handler.status == .running else { return }
            clear(Key(id: id, slot: .handlerStarting))
            armHandlerTimeout(id, handler, now: now, wallNow: wallNow)
        case .handlerRequeued, .handlerEnded:
            clear(Key(id: id, slot: .handlerStarting))
            if case .handlerEnded = envelope.event { clear(Key(id: id, slot: .handlerRunning)) }
        case .handlersDeclared, .attachmentsStored:
            break
        case .instanceCreated, .instanceRequeued, .instanceResumed:
            guard let tracked, !tracked.status.isTerminal else { return }
            clear(Key(id: id, slot: .starting))
            set(id, .enqueuedWarning, at: now + limits.enqueuedWarning)
        case .instanceAssigned(let assigned):
            guard let tracked, tracked.status == .starting || tracked.status == .resuming else { return }
            clear(Key(id: id, slot: .enqueued))
            set(id, .starting(attempt: assigned.attempt), at: now + limits.starting)
        case .instanceStarted:
            guard let tracked, tracked.status == .running else { return }
            clear(Key(id: id, slot: .starting))
            armTimeout(id, tracked, now: now, wallNow: wallNow)
        case .instanceSuspended:
            // Suspended time does not count against the timeout; a resume arms what is left.
            for slot in [Slot.starting, .running] { clear(Key(id: id, slot: slot)) }
        case .instanceFinished, .instanceFailed, .instanceCancelled, .instanceTimedOut:
            for slot in [Slot.enqueued, .starting, .running] { clear(Key(id: id, slot: slot)) }
        case .logAppended, .stepsRecorded, .apiKeyCreated, .apiKeyRevoked, .historyTrimmed:
            break
        }
    }

    private mutating func armTimeout(
        _ id: InstanceID, _ tracked: TrackedInstance, now: ContinuousClock.Instant, wallNow: Timestamp
    ) {
        guard let limit = tracked.created?.timeoutMillis else { return }
        // The limit counts running time: from the moment it started running, as the log recorded
        // it, after what it ran before a suspend.
        let since = tracked.runningSince ?? wallNow
        let remaining = max(0, since.millis + limit - tracked.ranMillis - wallNow.millis)
        set(id, .timeout, at: now + .milliseconds(remaining))
    }

    private mutating func armHandlerTimeout(
        _ id: InstanceID, _ handler: TrackedHandler, now: ContinuousClock.Instant, wallNow: Timestamp
    ) {
        let limit = handler.created.handlerTimeoutMillis ?? HandlerFlows.defaultTimeoutMillis
        let since = handler.runningSince ?? wallNow
        let remaining = max(0, since.millis + limit - wallNow.millis)
        set(id, .handlerTimeout, at: now + .milliseconds(remaining))
    }

    private static func slot(of kind: Kind) -> Slot {
        switch kind {
        case .enqueuedWarning: .enqueued
        case .starting: .starting
        case .timeout: .running
        case .handlerStarting: .handlerStarting
        case .handlerTimeout: .handlerRunning
        }
    }

    private mutating func set(_ id: InstanceID, _ kind: Kind, at due: ContinuousClock.Instant) {
        generation += 1
        let key = Key(id: id, slot: Self.slot(of: kind))
        live[key] = (due, generation)
        heap.append(Entry(due: due, key: key, kind: kind, generation: generation))
        siftUp(heap.count - 1)
    }

    private mutating func clear(_ key: Key) { live[key] = nil }

    /// Pops entries that were replaced or cleared (each costs O(log n) once).
    private mutating func dropStale() {
        while let first = heap.first, live[first.key]?.generation != first.generation { removeTop() }
        // Stale entries deeper in the heap are bounded by the live ones: rebuild when they dominate.
        if heap.count > 64 && heap.count > 4 * live.count { compact() }
    }

    private mutating func compact() {
        heap = heap.filter { live[$0.key]?.generation == $0.generation }
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private mutating func removeTop() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        if !heap.isEmpty { siftDown(0) }
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].due < heap[parent].due else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].due < heap[smallest].due { smallest = left }
            if right < heap.count, heap[right].due < heap[smallest].due { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
