import JSON
import Model

/// One status change as the history shows it.
package struct HistoryEntry: Sendable, Hashable, Codable {
    /// The status entered.
    package var status: InstanceStatus
    /// When.
    package var at: Timestamp
    /// Why, in a few words.
    package var reason: String
}

/// What the API shows of one instance.
package struct InstanceView: Sendable, Hashable, Codable {
    /// Its id.
    package var id: InstanceID
    /// Its status now.
    package var status: InstanceStatus
    /// When it was accepted.
    package var createdAt: Timestamp
    /// When its status last changed.
    package var lastChangeAt: Timestamp
    /// Its tags from `_main.json`.
    package var tags: [String]
    /// The team it belongs to (`nil`: started by a configured admin key, seen by admins only).
    package var team: String? = nil
    /// The requested `out` variables, once terminal.
    package var out: [String: JSONValue]?
    /// Why it failed or timed out.
    package var error: String?
    /// Every status change, oldest first.
    package var history: [HistoryEntry]
    /// The sequence numbers of all its events (status changes, log lines, steps), for `/events`.
    package var eventSeqs: [UInt64] = []
    /// The files it left under `_attachments/`, once it has ended (`AttachmentsStored`).
    package var attachments: AttachmentsStored? = nil
    /// The instance whose flow started it (`- task: concord`).
    package var parentInstanceId: InstanceID? = nil

    /// The sequence number of its `InstanceCreated`: listings are newest first by it.
    package var createdSeq: UInt64 { eventSeqs.first ?? 0 }
}

/// Which instances a caller may see: every one (an admin key), or one team's (a member key).
package enum Visibility: Sendable, Hashable {
    case all
    case team(String)

    package func sees(_ view: InstanceView) -> Bool {
        switch self {
        case .all: true
        case .team(let team): view.team == team
        }
    }
}

/// What one `apply` changed, so that the owner can wake waiters.
package enum ProjectionChange: Sendable, Equatable {
    /// Nothing visible changed (a duplicate, a log line, an event a terminal status absorbed).
    case none
    /// The status moved forward but is not terminal.
    case progressed(InstanceID)
    /// The instance reached a terminal status.
    case terminal(InstanceID)
}

/// The status read model: a fold of the event log into one `InstanceView` per instance.
///
/// `apply` cannot fail and is idempotent: an event at or below the head is a duplicate and changes
/// nothing; a terminal status absorbs every later event; statuses only move forward
/// (`InstanceStatus.canMove(to:)`: a resumed instance's assignment leaves it RESUMING).
///
/// Whole, it holds every instance (the tooling's rebuild). A Gateway keeps only its hot part here,
/// the live instances and those not yet written to its store (`keepsOrder: false`, `evict`,
/// `restore`), and lists by merging it with the store.
package struct StatusProjection: Sendable {
    /// The instances by id.
    package private(set) var instances: [InstanceID: InstanceView] = [:]
    /// Instance ids in creation order (oldest first), when `keepsOrder`.
    package private(set) var order: [InstanceID] = []
    /// The last sequence number applied.
    package private(set) var head: UInt64 = 0
    /// Whether `order` is kept (and `list` can answer alone).
    package let keepsOrder: Bool

    package init(keepsOrder: Bool = true) { self.keepsOrder = keepsOrder }

    /// Starts from a stored state at `head`: the views given are put back as they were.
    package init(restoring views: [InstanceView], head: UInt64) {
        keepsOrder = false
        self.head = head
        for view in views { instances[view.id] = view }
    }

    /// Puts back one view (the store had it; a late event of an ended instance is about to come).
    package mutating func restore(_ view: InstanceView) {
        if instances[view.id] == nil { instances[view.id] = view }
    }

    /// Forgets an instance (the store has it now).
    package mutating func evict(_ id: InstanceID) { instances[id] = nil }

    /// Retention: every instance that ended before `before` is gone, as if it had never run.
    package mutating func forget(endedBefore before: Timestamp) {
        let gone = instances.values.filter { $0.status.isTerminal && $0.lastChangeAt < before }.map(\.id)
        guard !gone.isEmpty else { return }
        for id in gone { instances[id] = nil }
        if keepsOrder {
            let removed = Set(gone)
            order.removeAll { removed.contains($0) }
        }
    }

    /// Folds one event in. Events must come in sequence order; older ones are ignored.
    @discardableResult
    package mutating func apply(_ envelope: EventEnvelope) -> ProjectionChange {
        guard envelope.seq > head else { return .none }
        head = envelope.seq
        let id = envelope.instanceID
        if case .instanceCreated(let created) = envelope.event {
            guard instances[id] == nil else { return .none }
            instances[id] = InstanceView(
                id: id, status: .enqueued, createdAt: envelope.at, lastChangeAt: envelope.at, tags: created.tags,
                team: created.team, out: nil, error: nil,
                history: [HistoryEntry(status: .enqueued, at: envelope.at, reason: envelope.event.reason)],
                eventSeqs: [envelope.seq], parentInstanceId: created.parentInstanceId)
            if keepsOrder { order.append(id) }
            return .progressed(id)
        }
        if case .historyTrimmed(let trim) = envelope.event {
            forget(endedBefore: trim.before)
            return .none
        }
        guard envelope.event.isInstanceEvent, let current = instances[id]?.status else { return .none }
        instances[id]!.eventSeqs.append(envelope.seq)
        switch envelope.event {
        case .attachmentsStored(let stored):
            instances[id]!.attachments = stored
            return .none
        case .handlerStarted, .handlerEnded:
            // A handler runs after its instance ended: the history says so, the status stays.
            instances[id]!.history.append(HistoryEntry(status: current, at: envelope.at, reason: envelope.event.reason))
            return .none
        default: break
        }
        guard let next = envelope.event.status, current.canMove(to: next) else { return .none }
        // In place: copying the view out and back would copy its history on every event.
        Self.advance(&instances[id]!, to: next, by: envelope)
        return next.isTerminal ? .terminal(id) : .progressed(id)
    }

    private static func advance(_ view: inout InstanceView, to next: InstanceStatus, by envelope: EventEnvelope) {
        view.status = next
        view.lastChangeAt = envelope.at
        view.history.append(HistoryEntry(status: next, at: envelope.at, reason: envelope.event.reason))
        switch envelope.event {
        case .instanceFinished(let e): view.out = e.out
        case .instanceFailed(let e):
            view.out = e.out
            view.error = e.error
        case .instanceCancelled: view.out = [:]
        case .instanceTimedOut(let e):
            view.out = [:]
            view.error = e.error
        case .instanceCreated, .instanceAssigned, .instanceStarted, .logAppended, .stepsRecorded, .instanceRequeued,
            .apiKeyCreated, .apiKeyRevoked, .historyTrimmed, .handlersDeclared, .handlerAssigned, .handlerStarted,
            .handlerRequeued, .handlerEnded, .attachmentsStored, .instanceSuspended, .instanceResumed:
            break
        }
    }

    /// Instances newest first, filtered by status, tag and what the caller may see.
    package func list(
        status: InstanceStatus?, tag: String?, visible: Visibility = .all, limit: Int, offset: Int
    ) -> [InstanceView] {
        let filter = ListFilter(status: status, tag: tag, visible: visible)
        var result: [InstanceView] = []
        var skipped = 0
        for id in order.reversed() {
            guard let view = instances[id], filter.matches(view) else { continue }
            if skipped < offset {
                skipped += 1
                continue
            }
            result.append(view)
            if result.count >= limit { break }
        }
        return result
    }
}

/// Which instances a listing shows.
package struct ListFilter: Sendable, Hashable {
    package var status: InstanceStatus?
    package var tag: String?
    package var visible: Visibility
    /// Only the children of this instance.
    package var parent: InstanceID?

    package init(
        status: InstanceStatus? = nil, tag: String? = nil, visible: Visibility = .all, parent: InstanceID? = nil
    ) {
        self.status = status
        self.tag = tag
        self.visible = visible
        self.parent = parent
    }

    package func matches(_ view: InstanceView) -> Bool {
        guard visible.sees(view) else { return false }
        if let parent, view.parentInstanceId != parent { return false }
        if let status, view.status != status { return false }
        if let tag, !view.tags.contains(tag) { return false }
        return true
    }
}
