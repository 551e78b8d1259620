import EventLog
import Model
import Wire

/// What the Scheduler knows about one instance: enough to decide commands and dispatch.
struct TrackedInstance: Sendable, Equatable, Codable {
    var status: InstanceStatus
    /// What the start asked for; dropped once the instance is terminal (nothing reads it then), so
    /// the state and its snapshots do not carry every argument ever sent.
    var created: InstanceCreated?
    var executor: ExecutorID?
    var attempt: Int
    var runningSince: Timestamp?
}

/// The Scheduler's state: a pure fold of the event log (`apply`) and nothing else: it changes only
/// by an event, so a restart rebuilds it exactly by replaying the log, and a snapshot equals the
/// fold of the log up to its sequence number (`SnapshotTests`).
struct SchedulerState: Sendable, Codable, Equatable {
    var instances: [InstanceID: TrackedInstance] = [:]
    /// `InstanceCreated.idempotencyScope` → instance.
    var idempotency: [String: InstanceID] = [:]
    /// Recorded API keys (revoked ones too: an id is never reused).
    var keys: [KeyID: TrackedKey] = [:]
    /// Request id → instance: a start the transport delivered twice is answered, not repeated.
    var requests: [RequestID: InstanceID] = [:]
    /// Instances waiting for an executor, oldest first (`ENQUEUED`, or `STARTING` again after a lost executor).
    var queue = DispatchQueueState()
    /// Each instance's event sequence numbers, for `/events`.
    var eventSeqs: [InstanceID: [UInt64]] = [:]
    /// The highest report applied per executor boot.
    var reportsApplied: [ExecutorID: UInt64] = [:]
    /// Instances assigned to each executor that are not terminal.
    var assigned: [ExecutorID: Set<InstanceID>] = [:]
    /// The last sequence number applied.
    var head: UInt64 = 0

    /// The live key named `name`, if any.
    func liveKey(named name: String) -> KeyID? {
        keys.first { !$0.value.revoked && $0.value.name == name }?.key
    }

    /// Folds one durable (or about to be durable) event in. Never fails; repeats change nothing.
    mutating func apply(_ envelope: EventEnvelope) {
        guard envelope.seq > head else { return }
        head = envelope.seq
        let id = envelope.instanceID
        if envelope.event.isKeyEvent {
            applyKey(envelope)
            return
        }
        eventSeqs[id, default: []].append(envelope.seq)
        if let origin = envelope.origin {
            reportsApplied[origin.executor] = max(reportsApplied[origin.executor] ?? 0, origin.seq)
        }
        switch envelope.event {
        case .instanceCreated(let created):
            guard instances[id] == nil else { return }
            instances[id] = TrackedInstance(status: .enqueued, created: created, executor: nil, attempt: 0)
            if let key = created.idempotencyKey {
                idempotency[
                    InstanceCreated.idempotencyScope(principal: created.principal, team: created.team, key: key)] =
                    id
            }
            if let request = envelope.requestID { requests[request] = id }
            queue.push(id)
        case .instanceAssigned(let assignedEvent):
            guard var tracked = instances[id], !tracked.status.isTerminal else { return }
            if let previous = tracked.executor { assigned[previous]?.remove(id) }
            tracked.status = .starting
            tracked.executor = assignedEvent.executorID
            tracked.attempt = assignedEvent.attempt
            instances[id] = tracked
            assigned[assignedEvent.executorID, default: []].insert(id)
            queue.remove(id)
        case .instanceStarted:
            guard var tracked = instances[id], tracked.status.rank < InstanceStatus.running.rank else { return }
            tracked.status = .running
            tracked.runningSince = envelope.at
            instances[id] = tracked
        case .logAppended, .stepsRecorded:
            break
        case .instanceRequeued:
            guard let tracked = instances[id], tracked.status.rank <= InstanceStatus.starting.rank else { return }
            if let executor = tracked.executor { assigned[executor]?.remove(id) }
            instances[id]?.executor = nil
            queue.push(id)
        case .instanceFinished, .instanceFailed, .instanceCancelled, .instanceTimedOut:
            guard var tracked = instances[id], !tracked.status.isTerminal, let status = envelope.event.status else {
                return
            }
            tracked.status = status
            tracked.created = nil
            instances[id] = tracked
            if let executor = tracked.executor { assigned[executor]?.remove(id) }
            queue.remove(id)
        case .apiKeyCreated, .apiKeyRevoked:
            break
        }
    }

    private mutating func applyKey(_ envelope: EventEnvelope) {
        let id = envelope.instanceID
        switch envelope.event {
        case .apiKeyCreated(let created):
            guard keys[id] == nil else { return }
            keys[id] = TrackedKey(name: created.name, hash: created.hash, seq: envelope.seq, revoked: false)
        case .apiKeyRevoked:
            keys[id]?.revoked = true
        default:
            break
        }
    }
}

/// What the Scheduler knows of an API key: enough to keep names unique and answer repeats.
struct TrackedKey: Sendable, Equatable, Codable {
    var name: String
    var hash: String
    /// The event that created it.
    var seq: UInt64
    var revoked: Bool
}

/// A FIFO of instances to dispatch with O(1) removal by marking.
struct DispatchQueueState: Sendable, Codable, Equatable {
    private var items: [InstanceID] = []
    private var start = 0
    private var members: Set<InstanceID> = []

    var count: Int { members.count }

    func contains(_ id: InstanceID) -> Bool { members.contains(id) }

    /// Everything waiting, in no particular order.
    var waiting: Set<InstanceID> { members }

    mutating func push(_ id: InstanceID) {
        guard members.insert(id).inserted else { return }
        items.append(id)
    }

    mutating func remove(_ id: InstanceID) { members.remove(id) }

    /// The oldest waiting instance, removed from the queue.
    mutating func pop() -> InstanceID? {
        while start < items.count {
            let id = items[start]
            start += 1
            if start > 1024 && start * 2 > items.count {
                items.removeFirst(start)
                start = 0
            }
            if members.remove(id) != nil { return id }
        }
        return nil
    }
}
