import EventLog
import JSON
import Model
import Wire

/// What the Scheduler knows about one live instance: enough to decide commands and dispatch.
struct TrackedInstance: Sendable, Equatable, Codable {
    var status: InstanceStatus
    /// What the start asked for.
    var created: InstanceCreated?
    /// The sequence number of its `InstanceCreated`.
    var createdSeq: UInt64 = 0
    var executor: ExecutorID?
    var attempt: Int
    var runningSince: Timestamp?
    /// The handler flows its payload defines (`HandlersDeclared`).
    var handlers: [String] = []
    /// Where it stands while suspended, resuming or restarting from a suspend (until RUNNING).
    var suspended: InstanceSuspended?
    /// The resume that woke it (its variables go to the run that goes on).
    var resumed: InstanceResumed?
    /// Time spent RUNNING before its last suspend, in milliseconds (its timeout counts running time).
    var ranMillis: Int64 = 0
    /// Its parent, the parent's parent, ... (nearest last), for a stop of a whole family.
    var ancestors: [InstanceID] = []
    /// How the children it waits for ended, while it has not resumed with them.
    var childOutcomes: [InstanceID: ChildOutcome] = [:]
}

/// A handler flow owed to an instance that ended (`onFailure`, `onCancel`, `onTimeout`):
/// dispatched as an instance is, and started at most once.
struct TrackedHandler: Sendable, Equatable, Codable {
    var flow: String
    /// What the instance's start asked for (its payload, its team).
    var created: InstanceCreated
    /// What the handler starts with: the instance's variables as it failed (or its arguments),
    /// `lastError` set.
    var variables: [String: JSONValue]
    /// `enqueued` (waiting for an executor), `starting` or `running`.
    var status: InstanceStatus = .enqueued
    var executor: ExecutorID?
    var attempt = 0
    var runningSince: Timestamp?
}

/// The Scheduler's state: a pure fold of the event log (`apply`) and nothing else: it changes only
/// by an event, so a restart rebuilds it exactly by replaying the log, and a snapshot equals the
/// fold of the log up to its sequence number (`SnapshotTests`).
///
/// Its size follows what is live, not what ever ran: an instance leaves `instances` with its
/// terminal event (the read models keep what it did), and a start's request id is remembered for
/// `requestWindow` of log time, long enough for any redelivery of that start.
struct SchedulerState: Sendable, Codable, Equatable {
    /// The instances that are not terminal.
    var instances: [InstanceID: TrackedInstance] = [:]
    /// `InstanceCreated.idempotencyScope` → instance, with when it ended: a key answers its
    /// instance for as long as the instance's history is kept, and goes with it (`HistoryTrimmed`).
    var idempotency: [String: KeyedStart] = [:]
    /// Recorded API keys (revoked ones too: an id is never reused).
    var keys: [KeyID: TrackedKey] = [:]
    /// Request id → instance: a start the transport delivered twice is answered, not repeated.
    var requests: [RequestID: InstanceID] = [:]
    /// The starts in `requests`, oldest first, to forget them once older than `requestWindow`.
    var requestsByAge = RequestWindow()
    /// Instances waiting for an executor, oldest first (`ENQUEUED`, or `STARTING` again after a lost executor).
    var queue = DispatchQueueState()
    /// The highest report applied per executor boot.
    var reportsApplied: [ExecutorID: UInt64] = [:]
    /// Instances assigned to each executor that are not terminal, and handlers assigned to it.
    var assigned: [ExecutorID: Set<InstanceID>] = [:]
    /// Handler runs owed or under way, by their instance (which has ended).
    var handlers: [InstanceID: TrackedHandler] = [:]
    /// Handler runs waiting for an executor, oldest first.
    var handlerQueue = DispatchQueueState()
    /// Suspended instances whose awaited child has ended: a resume with its outcome is owed
    /// (`Decide`'s `resumeForChild`, which the owner issues for each).
    var childResumes: Set<InstanceID> = []
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
        if let origin = envelope.origin {
            reportsApplied[origin.executor] = max(reportsApplied[origin.executor] ?? 0, origin.seq)
        }
        switch envelope.event {
        case .instanceCreated(let created):
            guard instances[id] == nil else { return }
            var tracked = TrackedInstance(
                status: .enqueued, created: created, createdSeq: envelope.seq, executor: nil, attempt: 0)
            if let parent = created.parentInstanceId {
                tracked.ancestors = (instances[parent]?.ancestors ?? []) + [parent]
            }
            instances[id] = tracked
            if let scope = created.scopedIdempotencyKey { idempotency[scope] = KeyedStart(id: id) }
            if let request = envelope.requestID {
                requests[request] = id
                requestsByAge.append(request, at: envelope.at)
            }
            for expired in requestsByAge.expire(
                before: Timestamp(millis: envelope.at.millis - Self.requestWindowMillis))
            {
                requests[expired] = nil
            }
            queue.push(id)
        case .instanceAssigned(let assignedEvent):
            guard var tracked = instances[id], tracked.status.awaitsExecutor else { return }
            if let previous = tracked.executor { assigned[previous]?.remove(id) }
            // A resumed instance stays RESUMING until it runs again.
            if tracked.status != .resuming { tracked.status = .starting }
            tracked.executor = assignedEvent.executorID
            tracked.attempt = assignedEvent.attempt
            instances[id] = tracked
            assigned[assignedEvent.executorID, default: []].insert(id)
            queue.remove(id)
        case .instanceStarted:
            guard var tracked = instances[id], tracked.status.awaitsExecutor else { return }
            tracked.status = .running
            tracked.runningSince = envelope.at
            tracked.suspended = nil
            tracked.resumed = nil
            instances[id] = tracked
        case .instanceSuspended(let suspendedEvent):
            guard var tracked = instances[id], tracked.status == .running else { return }
            if let executor = tracked.executor { assigned[executor]?.remove(id) }
            tracked.status = .suspended
            tracked.executor = nil
            tracked.ranMillis += max(0, envelope.at.millis - (tracked.runningSince ?? envelope.at).millis)
            tracked.runningSince = nil
            tracked.suspended = suspendedEvent
            instances[id] = tracked
            // The child it waits for may have ended already.
            if let child = Self.awaitedChild(suspendedEvent.event), tracked.childOutcomes[child] != nil {
                childResumes.insert(id)
            }
        case .instanceResumed(let resumedEvent):
            guard var tracked = instances[id], tracked.status == .suspended else { return }
            tracked.status = .resuming
            tracked.resumed = resumedEvent
            if let child = resumedEvent.child { tracked.childOutcomes[child.id] = nil }
            instances[id] = tracked
            childResumes.remove(id)
            queue.push(id)
        case .logAppended, .stepsRecorded:
            break
        case .instanceRequeued:
            guard let tracked = instances[id], tracked.status.awaitsExecutor else { return }
            if let executor = tracked.executor { assigned[executor]?.remove(id) }
            instances[id]?.executor = nil
            queue.push(id)
        case .instanceFinished, .instanceFailed, .instanceCancelled, .instanceTimedOut:
            guard let tracked = instances.removeValue(forKey: id) else { return }
            if let executor = tracked.executor { assigned[executor]?.remove(id) }
            queue.remove(id)
            childResumes.remove(id)
            if let scope = tracked.created?.scopedIdempotencyKey, idempotency[scope]?.id == id {
                idempotency[scope]?.ended = envelope.at
            }
            if tracked.created?.parentWaits == true, let parent = tracked.created?.parentInstanceId,
                var waiting = instances[parent], let outcome = ChildOutcome(id: id, ending: envelope.event)
            {
                waiting.childOutcomes[id] = outcome
                instances[parent] = waiting
                if waiting.status == .suspended, waiting.suspended.map({ Self.awaitedChild($0.event) == id }) == true {
                    childResumes.insert(parent)
                }
            }
            if let status = envelope.event.status, let flow = HandlerFlows.flow(for: status),
                tracked.handlers.contains(flow), let created = tracked.created
            {
                handlers[id] = TrackedHandler(
                    flow: flow, created: created, variables: Self.handlerVariables(envelope.event, created))
                handlerQueue.push(id)
            }
        case .handlersDeclared(let declared):
            instances[id]?.handlers = declared.flows
        case .handlerAssigned(let assignedEvent):
            guard var handler = handlers[id], handler.status.rank <= InstanceStatus.starting.rank else { return }
            if let previous = handler.executor { assigned[previous]?.remove(id) }
            handler.status = .starting
            handler.executor = assignedEvent.executorID
            handler.attempt = assignedEvent.attempt
            handlers[id] = handler
            assigned[assignedEvent.executorID, default: []].insert(id)
            handlerQueue.remove(id)
        case .handlerStarted:
            guard var handler = handlers[id], handler.status == .starting else { return }
            handler.status = .running
            handler.runningSince = envelope.at
            handlers[id] = handler
        case .handlerRequeued:
            guard var handler = handlers[id], handler.status == .starting else { return }
            if let executor = handler.executor { assigned[executor]?.remove(id) }
            handler.status = .enqueued
            handler.executor = nil
            handlers[id] = handler
            handlerQueue.push(id)
        case .handlerEnded:
            guard let handler = handlers.removeValue(forKey: id) else { return }
            if let executor = handler.executor { assigned[executor]?.remove(id) }
            handlerQueue.remove(id)
        case .historyTrimmed(let trim):
            // The read models forget the instances that ended before the cutoff; so do their keys.
            idempotency = idempotency.filter { $0.value.ended.map { $0 >= trim.before } ?? true }
        case .apiKeyCreated, .apiKeyRevoked, .attachmentsStored:
            break
        }
    }

    /// The child a suspend event waits for (`ChildStart.waitEvent`), if it is one.
    static func awaitedChild(_ event: String) -> InstanceID? {
        guard event.hasPrefix(ChildStart.waitEventPrefix) else { return nil }
        return InstanceID(String(event.dropFirst(ChildStart.waitEventPrefix.count)))
    }

    /// The live instances `root` started, and theirs, down every generation, oldest first.
    func liveDescendants(of root: InstanceID) -> [InstanceID] {
        instances.filter { $0.value.ancestors.contains(root) }.sorted { $0.value.createdSeq < $1.value.createdSeq }
            .map(\.key)
    }

    /// What a handler starts with: the variables the runner recorded as the flow failed, else
    /// the instance's arguments; `lastError` holds why it ended.
    static func handlerVariables(_ event: Event, _ created: InstanceCreated) -> [String: JSONValue] {
        if case .instanceFailed(let failed) = event, let variables = failed.variables { return variables }
        var variables = created.arguments
        variables["lastError"] = .object(["message": .string(event.reason)])
        return variables
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

extension SchedulerState {
    /// How long a start's request id is remembered: a transport redelivers within seconds, a
    /// Gateway retries a start for at most its request timeout.
    static let requestWindowMillis: Int64 = 10 * 60 * 1000
}

/// Request ids in the order their starts were recorded, with the log time of each.
struct RequestWindow: Sendable, Codable, Equatable {
    private var items: [Item] = []
    private var start = 0

    private struct Item: Sendable, Codable, Equatable {
        var request: RequestID
        var at: Timestamp
    }

    init() {}

    var count: Int { items.count - start }

    mutating func append(_ request: RequestID, at: Timestamp) { items.append(Item(request: request, at: at)) }

    /// Removes and returns the ids recorded before `cutoff`.
    mutating func expire(before cutoff: Timestamp) -> [RequestID] {
        var expired: [RequestID] = []
        while start < items.count, items[start].at < cutoff {
            expired.append(items[start].request)
            start += 1
        }
        if start > 1024 && start * 2 > items.count {
            items.removeFirst(start)
            start = 0
        }
        return expired
    }

    static func == (a: Self, b: Self) -> Bool { a.items[a.start...] == b.items[b.start...] }

    /// Encoded as the ids still remembered, oldest first.
    init(from decoder: any Decoder) throws {
        items = try decoder.singleValueContainer().decode([Item].self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Array(items[start...]))
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

/// A start made with an `Idempotency-Key`: its instance, and when it ended (nil while live).
struct KeyedStart: Sendable, Equatable, Codable {
    var id: InstanceID
    var ended: Timestamp?
}

extension InstanceCreated {
    /// The scope its idempotency key is unique in, when it has one.
    var scopedIdempotencyKey: String? {
        idempotencyKey.map { Self.idempotencyScope(principal: principal, team: team, key: $0) }
    }
}

/// A FIFO of instances to dispatch with O(1) removal by marking. The marks are swept once they
/// are most of the array, so its size follows what waits, not what ever waited (a replay removes
/// every instance it assigns by marking). Encoded as the waiting instances in order.
struct DispatchQueueState: Sendable, Codable, Equatable {
    private var items: [InstanceID] = []
    private var start = 0
    private var members: Set<InstanceID> = []

    init() {}

    var count: Int { members.count }

    func contains(_ id: InstanceID) -> Bool { members.contains(id) }

    /// Everything waiting, in no particular order.
    var waiting: Set<InstanceID> { members }

    /// Everything waiting, oldest first.
    var ordered: [InstanceID] {
        var seen = Set<InstanceID>()
        return items[start...].filter { members.contains($0) && seen.insert($0).inserted }
    }

    mutating func push(_ id: InstanceID) {
        guard members.insert(id).inserted else { return }
        items.append(id)
    }

    mutating func remove(_ id: InstanceID) {
        guard members.remove(id) != nil else { return }
        if items.count - start > 1024 && members.count * 2 < items.count - start {
            items = ordered
            start = 0
        }
    }

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

    static func == (a: Self, b: Self) -> Bool { a.ordered == b.ordered }

    init(from decoder: any Decoder) throws {
        items = try decoder.singleValueContainer().decode([InstanceID].self)
        members = Set(items)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(ordered)
    }
}
