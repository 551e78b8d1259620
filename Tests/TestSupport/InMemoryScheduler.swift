import Foundation
import JSON
import Model
import Wire

/// A Scheduler in memory, for testing a Gateway without processes: it answers the Gateway's
/// commands by the same rules (a start is answered with the event that made it durable, an
/// `Idempotency-Key` answers the first instance, a stop of a terminal instance changes nothing),
/// numbers events, and publishes them on `source` as the real one does over pub/sub. Tests drive
/// the rest of a run with `record`, lose publications with `losePublications`, and take the
/// Scheduler away with `reachable`.
package actor InMemoryScheduler: SchedulerLink {
    package private(set) var log: [EventEnvelope] = []
    private var statuses: [InstanceID: InstanceStatus] = [:]
    private var idempotency: [String: InstanceID] = [:]
    /// API keys by id: name and whether revoked.
    private var apiKeys: [KeyID: (name: String, revoked: Bool)] = [:]
    private var lost = 0
    /// While false, every command fails as a timed-out request does.
    package var reachable = true
    /// Every start received: its request and its attachment.
    package private(set) var starts: [(StartInstance, [UInt8])] = []
    package nonisolated let source = InMemoryEventSource()

    package init() {}

    package func setReachable(_ value: Bool) { reachable = value }

    /// The next `count` publications are lost (as pub/sub may lose them); the events stay in the log.
    package func losePublications(_ count: Int) { lost += count }

    package var head: UInt64 { UInt64(log.count) }

    /// Appends `events` for `id` (a report from an executor, say) and publishes them.
    @discardableResult
    package func record(_ id: InstanceID, _ events: [Event]) -> UInt64 {
        let envelopes = events.map { append(EventEnvelope(instanceID: id, at: .now(), event: $0)) }
        publish(envelopes)
        return head
    }

    /// A child of `parent` (as its flow's `- task: concord` starts one): a new instance naming it.
    package func startChild(of parent: InstanceID, tags: [String] = []) -> InstanceID {
        let id = InstanceID()
        record(
            id,
            [
                .instanceCreated(
                    InstanceCreated(
                        entryPoint: "child", arguments: [:], timeoutMillis: nil, out: [], tags: tags,
                        payload: PayloadRef(digest: "memory", size: 0), idempotencyKey: nil, principal: nil,
                        parentInstanceId: parent))
            ])
        return id
    }

    /// Runs `id` to the end: assigned, started, the given log lines, finished with `out`.
    package func finish(_ id: InstanceID, log lines: [String] = [], out: [String: JSONValue] = [:]) {
        let executor = ExecutorID("memory/1")
        var events: [Event] = [
            .instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)),
            .instanceStarted(InstanceStarted(executorID: executor)),
        ]
        if !lines.isEmpty {
            events.append(.logAppended(LogAppended(lines: lines.map { LogLine(at: .now(), level: .info, text: $0) })))
        }
        events.append(.instanceFinished(InstanceFinished(out: out)))
        record(id, events)
    }

    package func send(_ request: SchedulerRequest, attachment: [UInt8]) async throws -> SchedulerReply {
        guard reachable else { throw InMemorySchedulerUnreachable() }
        switch request {
        case .start(let start):
            starts.append((start, attachment))
            let key = start.idempotencyKey.map {
                InstanceCreated.idempotencyScope(principal: start.principal, team: start.team, key: $0)
            }
            if let key, let existing = idempotency[key] {
                let seq = log.first { $0.instanceID == existing }?.seq ?? 0
                return .started(instanceID: existing, created: false, seq: seq)
            }
            let id = InstanceID()
            let created = InstanceCreated(
                entryPoint: start.entryPoint, arguments: start.arguments, timeoutMillis: start.timeoutMillis,
                out: start.out, tags: start.tags, payload: PayloadRef(digest: "memory", size: attachment.count),
                idempotencyKey: start.idempotencyKey, principal: start.principal, team: start.team)
            if let key { idempotency[key] = id }
            let envelope = append(
                EventEnvelope(instanceID: id, at: .now(), requestID: start.requestID, event: .instanceCreated(created)))
            publish([envelope])
            return .started(instanceID: id, created: true, seq: envelope.seq)
        case .cancel(let requestID, let id):
            // As the real one: an instance that ended is forgotten, so it is "not live" too.
            guard let status = statuses[id], !status.isTerminal else { return .cancelled(.notLive, seq: head) }
            let envelope = append(
                EventEnvelope(
                    instanceID: id, at: .now(), requestID: requestID,
                    event: .instanceCancelled(InstanceCancelled(reason: "stopped by a client"))))
            publish([envelope])
            return .cancelled(.cancelled, seq: envelope.seq)
        case .cancelCascade(let requestID, let root):
            // As the real one: the root and every live instance below it, down every generation.
            var family: [InstanceID] = [root]
            for envelope in log {
                guard case .instanceCreated(let created) = envelope.event, let parent = created.parentInstanceId,
                    family.contains(parent)
                else { continue }
                family.append(envelope.instanceID)
            }
            var last: UInt64?
            for id in family {
                guard let status = statuses[id], !status.isTerminal else { continue }
                let envelope = append(
                    EventEnvelope(
                        instanceID: id, at: .now(), requestID: id == root ? requestID : nil,
                        event: .instanceCancelled(
                            InstanceCancelled(
                                reason: id == root ? "stopped by a client" : "stopped with its parent \(root)"))))
                publish([envelope])
                last = envelope.seq
            }
            return .cancelled(last == nil ? .notLive : .cancelled, seq: last ?? head)
        case .createKey(let create):
            if apiKeys.values.contains(where: { !$0.revoked && $0.name == create.key.name }) {
                return .conflict(message: "an API key with that name exists already")
            }
            apiKeys[create.keyID] = (create.key.name, false)
            let envelope = append(
                EventEnvelope(
                    instanceID: create.keyID, at: .now(), requestID: create.requestID,
                    event: .apiKeyCreated(create.key)))
            publish([envelope])
            return .keyCreated(seq: envelope.seq)
        case .fetchBlob:
            return .blob(found: false)
        case .resume:
            return .conflict(message: "nothing is suspended here")
        case .revokeKey(let requestID, let id, let by):
            guard let key = apiKeys[id], !key.revoked else { return .keyUnknown }
            apiKeys[id]?.revoked = true
            let envelope = append(
                EventEnvelope(
                    instanceID: id, at: .now(), requestID: requestID,
                    event: .apiKeyRevoked(ApiKeyRevoked(revokedBy: by))
                ))
            publish([envelope])
            return .keyRevoked(seq: envelope.seq)
        case .catchUp(let after, let limit):
            return .events(events: Array(log.dropFirst(Int(after)).prefix(limit)), head: head)
        case .readEvents(let seqs):
            return .someEvents(events: seqs.filter { $0 >= 1 && $0 <= head }.map { log[Int($0) - 1] })
        case .ping:
            return .pong(head: head, epoch: 0)
        case .stats:
            return .stats(
                SchedulerStats(
                    head: head, appendedEvents: log.count, fsyncs: 0, fsyncSeconds: 0, queueDepth: 0, executors: 0))
        }
    }

    private func append(_ draft: EventEnvelope) -> EventEnvelope {
        var envelope = draft
        envelope.seq = head + 1
        log.append(envelope)
        if let next = envelope.event.status {
            let current = statuses[envelope.instanceID]
            if current == nil || (!(current!.isTerminal) && next.rank > current!.rank) {
                statuses[envelope.instanceID] = next
            }
        }
        return envelope
    }

    private func publish(_ envelopes: [EventEnvelope]) {
        if lost > 0 {
            lost -= 1
            return
        }
        source.yield(CommittedEvents(events: envelopes, head: head))
    }
}

/// What a command to an unreachable `InMemoryScheduler` throws (the real link times out).
package struct InMemorySchedulerUnreachable: Error {}

/// The in-memory Scheduler's committed events, as a Gateway receives them.
package final class InMemoryEventSource: CommittedEventSource {
    private let stream: AsyncStream<CommittedEvents>
    private let continuation: AsyncStream<CommittedEvents>.Continuation

    package init() {
        (stream, continuation) = AsyncStream.makeStream(of: CommittedEvents.self)
    }

    func yield(_ message: CommittedEvents) { continuation.yield(message) }

    package func next() async -> CommittedEvents? {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next()
    }

    package func close() { continuation.finish() }
}
