import Foundation
import JSON
import Model

/// `StartInstance`: the Gateway checked the archive; the ZIP bytes travel as the frame's attachment.
package struct StartInstance: Sendable, Codable, Hashable {
    /// Correlates logs and events with the HTTP request.
    package var requestID: RequestID
    /// `_main.json`'s `entryPoint`, when it has one.
    package var entryPoint: String?
    /// `_main.json`'s `arguments`.
    package var arguments: [String: JSONValue]
    /// `_main.json`'s `timeout`, in milliseconds.
    package var timeoutMillis: Int64?
    /// `_main.json`'s `out`.
    package var out: [String]
    /// `_main.json`'s `tags`.
    package var tags: [String]
    /// The `Idempotency-Key` header.
    package var idempotencyKey: String?
    /// Who starts it: a recorded key's id, or a configured key's fingerprint.
    package var principal: String?
    /// The starter's team: the instance's (scopes the idempotency key).
    package var team: String?
    /// `_main.json`'s `handlerTimeout`, in milliseconds.
    package var handlerTimeoutMillis: Int64?

    package init(
        requestID: RequestID, entryPoint: String?, arguments: [String: JSONValue], timeoutMillis: Int64?,
        out: [String], tags: [String], idempotencyKey: String?, principal: String?, team: String? = nil,
        handlerTimeoutMillis: Int64? = nil
    ) {
        self.requestID = requestID
        self.entryPoint = entryPoint
        self.arguments = arguments
        self.timeoutMillis = timeoutMillis
        self.out = out
        self.tags = tags
        self.idempotencyKey = idempotencyKey
        self.principal = principal
        self.team = team
        self.handlerTimeoutMillis = handlerTimeoutMillis
    }
}

/// `CreateKey`: the Gateway made the secret and the key's id, and sends only the hash.
package struct CreateKey: Sendable, Codable, Hashable {
    package var requestID: RequestID
    /// Made by the Gateway, so a request the transport delivers twice creates one key.
    package var keyID: KeyID
    /// What the event records.
    package var key: ApiKeyCreated

    package init(requestID: RequestID, keyID: KeyID, key: ApiKeyCreated) {
        self.requestID = requestID
        self.keyID = keyID
        self.key = key
    }
}

/// How a `CancelInstance` ended.
package enum CancelOutcome: String, Sendable, Codable {
    /// `InstanceCancelled` is durable.
    case cancelled
    /// The Scheduler tracks no such live instance: it is terminal already (nothing changed) or
    /// was never started. The Scheduler forgets instances once they end, so only the Gateway's
    /// read model, which keeps them, tells the two apart.
    case notLive
}

/// Gateway → Scheduler, over req/rep.
package enum SchedulerRequest: Sendable, Codable {
    /// Start an instance (attachment: the ZIP).
    case start(StartInstance)
    /// Stop an instance.
    case cancel(requestID: RequestID, instanceID: InstanceID)
    /// Stop an instance and every live instance it started, down every generation.
    case cancelCascade(requestID: RequestID, instanceID: InstanceID)
    /// Durable events after a sequence number, for a gateway catching up.
    case catchUp(after: UInt64, limit: Int)
    /// The committed events with these sequence numbers (one instance's, as the Gateway's read
    /// model lists them: the Scheduler keeps no per-instance index of what has ended).
    case readEvents(seqs: [UInt64])
    /// Record a new API key.
    case createKey(CreateKey)
    /// Revoke an API key.
    case revokeKey(requestID: RequestID, keyID: KeyID, by: String?)
    /// Liveness, the log's head, and the epoch: the Gateway's link, given every Scheduler, sends
    /// to the one that answers with the highest.
    case ping
    /// Counters for `/metrics`.
    case stats
    /// A stored archive (an instance's attachments), by its digest; the reply's attachment.
    case fetchBlob(digest: String)
    /// Resume a suspended instance with its event, setting `variables`.
    case resume(requestID: RequestID, instanceID: InstanceID, event: String, variables: [String: JSONValue])
}

/// What the Scheduler reports for `/metrics`.
package struct SchedulerStats: Sendable, Codable {
    /// The durable head.
    package var head: UInt64
    /// Events made durable since the Scheduler started.
    package var appendedEvents: Int
    /// fsyncs since the Scheduler started (each covers a whole batch).
    package var fsyncs: Int
    /// Time spent in fsync, in seconds.
    package var fsyncSeconds: Double
    /// Instances waiting for an executor.
    package var queueDepth: Int
    /// Registered executors.
    package var executors: Int
    /// Instances that have waited for an executor longer than the Scheduler's warning time
    /// (optional on the wire: older Schedulers do not send it).
    package var overdueQueued: Int?
    /// Why the event log refuses writes, while it does.
    package var eventLogFailure: String?

    package init(
        head: UInt64, appendedEvents: Int, fsyncs: Int, fsyncSeconds: Double, queueDepth: Int, executors: Int,
        overdueQueued: Int? = nil, eventLogFailure: String? = nil
    ) {
        self.head = head
        self.appendedEvents = appendedEvents
        self.fsyncs = fsyncs
        self.fsyncSeconds = fsyncSeconds
        self.queueDepth = queueDepth
        self.executors = executors
        self.overdueQueued = overdueQueued
        self.eventLogFailure = eventLogFailure
    }
}

/// Scheduler → Gateway replies.
package enum SchedulerReply: Sendable, Codable {
    /// The start is durable (`created == false`: an idempotent repeat); `seq` is the event that
    /// created it, so a gateway can answer once its projection holds it (read your writes).
    case started(instanceID: InstanceID, created: Bool, seq: UInt64)
    /// The stop's outcome, durable; `seq` is the event a read must see (0 when unknown).
    case cancelled(CancelOutcome, seq: UInt64)
    /// Events for a catch-up, and the durable head when they were read.
    case events(events: [EventEnvelope], head: UInt64)
    /// The events `readEvents` asked for, in sequence order.
    case someEvents(events: [EventEnvelope])
    /// The durable head, and the epoch this Scheduler leads in (0 on the file log).
    case pong(head: UInt64, epoch: UInt64)
    /// Counters for `/metrics`.
    case stats(SchedulerStats)
    /// The key is durable (`seq`: its event, or the first one's for a repeat).
    case keyCreated(seq: UInt64)
    /// The key is revoked, durably.
    case keyRevoked(seq: UInt64)
    /// No such key (or it was revoked already).
    case keyUnknown
    /// The command contradicts the state (a key name in use); nothing was recorded.
    case conflict(message: String)
    /// The command could not be carried out; nothing was recorded.
    case unavailable(message: String)
    /// The request itself was wrong.
    case rejected(message: String)
    /// The answer to `fetchBlob`: the bytes are the frame's attachment (none when not `found`).
    case blob(found: Bool)
    /// The resume is durable (`seq`: its event).
    case resumed(seq: UInt64)
}

/// Scheduler → every Gateway, over pub/sub: events just made durable, in order, and the durable
/// head. A subscriber that sees a gap, or a head beyond what it holds (a message it missed), catches
/// up with `SchedulerRequest.catchUp`. The Scheduler also publishes the bare head every second, so a
/// lost last message is noticed without anyone polling.
package struct CommittedEvents: Sendable, Codable {
    /// The events, in sequence order (empty for a head announcement).
    package var events: [EventEnvelope]
    /// The durable head when this was published.
    package var head: UInt64

    package init(events: [EventEnvelope], head: UInt64) {
        self.events = events
        self.head = head
    }

    /// This message's JSON from events already encoded (the log's own bytes): what `Codable`
    /// would write, without encoding each event a second time.
    package static func json(encodedEvents: [ArraySlice<UInt8>], head: UInt64) -> [UInt8] {
        joinedEvents(encodedEvents, after: #"{"events":["#, before: #"],"head":\#(head)}"#)
    }
}

/// `prefix`, the events' JSON as stored, comma-separated, then `suffix`: a message built around
/// events without encoding each again.
func joinedEvents<Event: Collection<UInt8>>(_ events: [Event], after prefix: String, before suffix: String) -> [UInt8] {
    var bytes = Array(prefix.utf8)
    bytes.reserveCapacity(events.reduce(prefix.utf8.count + suffix.utf8.count) { $0 + $1.count + 1 })
    for (index, event) in events.enumerated() {
        if index > 0 { bytes.append(UInt8(ascii: ",")) }
        bytes += event
    }
    bytes += Array(suffix.utf8)
    return bytes
}

extension CommittedEvents {
    /// A `CommittedEvents` frame header (what the Scheduler publishes with every commit, decoded
    /// by every Gateway): the same fast path, the same fallback.
    package static func decode(_ header: ArraySlice<UInt8>) throws -> CommittedEvents {
        if case .object(let o)? = JSONNode.parse(header), let head = o["head"]?.uint64,
            case .array(let items)? = o["events"]
        {
            var events: [EventEnvelope] = []
            events.reserveCapacity(items.count)
            for item in items {
                guard let envelope = FastEventDecoder.envelope(item) else { break }
                events.append(envelope)
            }
            if events.count == items.count { return CommittedEvents(events: events, head: head) }
        }
        return try JSONDecoder().decode(CommittedEvents.self, from: Data(header))
    }
}

// MARK: - Codecs: the messages every start sends, written and read by hand (see WireCodec.swift)

extension SchedulerRequest: FastWireEncodable {
    /// `start`, which every start sends.
    package var fastHeader: [UInt8]? {
        guard case .start(let start) = self else { return nil }
        var out = JSONWriter()
        let written = out.unlabeledCase("start") {
            $0.object { out in members(of: start, &out) }
        }
        return written ? out.bytes : nil
    }

    private func members(of start: StartInstance, _ out: inout JSONWriter) -> Bool {
        guard out.field("arguments", object: start.arguments) else { return false }
        out.field("entryPoint", start.entryPoint)
        out.field("handlerTimeoutMillis", start.handlerTimeoutMillis)
        out.field("idempotencyKey", start.idempotencyKey)
        out.field("out", strings: start.out)
        out.field("principal", start.principal)
        out.field("requestID", start.requestID.rawValue)
        out.field("tags", strings: start.tags)
        out.field("team", start.team)
        out.field("timeoutMillis", start.timeoutMillis)
        return true
    }
}

extension SchedulerRequest: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> SchedulerRequest? {
        guard let (name, fields) = WireFrame.enumCase(header), name == "start",
            let s = fields["_0"]?.objectValue, let arguments = s["arguments"]?.objectValue?.jsonObject,
            let out = s["out"]?.strings, let tags = s["tags"]?.strings,
            let requestID = s["requestID"]?.stringValue, let entryPoint = s.optional("entryPoint", \.stringValue),
            let key = s.optional("idempotencyKey", \.stringValue),
            let principal = s.optional("principal", \.stringValue), let team = s.optional("team", \.stringValue),
            let timeout = s.optional("timeoutMillis", \.int64),
            let handlerTimeout = s.optional("handlerTimeoutMillis", \.int64)
        else { return nil }
        return .start(
            StartInstance(
                requestID: RequestID(requestID), entryPoint: entryPoint, arguments: arguments, timeoutMillis: timeout,
                out: out, tags: tags, idempotencyKey: key, principal: principal, team: team,
                handlerTimeoutMillis: handlerTimeout))
    }
}

extension SchedulerReply: FastWireEncodable {
    /// `started`, the answer to every start, and the pages of events a catch-up reads (a new
    /// Gateway folds the whole log through them: `JSONEncoder` and `JSONDecoder` were most of the
    /// time a Gateway took to fold ten million instances).
    package var fastHeader: [UInt8]? {
        var out = JSONWriter()
        switch self {
        case .started(let id, let created, let seq):
            _ = out.object {
                $0.nested("started") {
                    $0.field("created", created)
                    $0.field("instanceID", id.description)
                    $0.field("seq", seq)
                    return true
                }
            }
        case .events(let events, let head):
            out = JSONWriter(capacity: 64 + events.count * 320)
            let written = out.object {
                $0.nested("events") {
                    guard Self.write(events, &$0) else { return false }
                    $0.field("head", head)
                    return true
                }
            }
            guard written else { return nil }
        case .someEvents(let events):
            out = JSONWriter(capacity: 64 + events.count * 320)
            guard out.object({ $0.nested("someEvents") { Self.write(events, &$0) } }) else { return nil }
        default:
            return nil
        }
        return out.bytes
    }

    /// The header of `.events(events:head:)` from the events' JSON as the log stores it, without
    /// decoding them (a reader decodes each as it decodes the log: events of an older version as
    /// that version).
    package static func eventsHeader(stored: [[UInt8]], head: UInt64) -> [UInt8] {
        joinedEvents(stored, after: #"{"events":{"events":["#, before: #"],"head":\#(head)}}"#)
    }

    /// `"events":[...]`, each envelope as the log stores it; false when one has no hand encoding.
    private static func write(_ events: [EventEnvelope], _ out: inout JSONWriter) -> Bool {
        out.key("events")
        return out.array(events) { writer, envelope in
            guard let bytes = FastEventEncoder.encode(envelope) else { return false }
            writer.bytes += bytes
            return true
        }
    }
}

extension SchedulerReply: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> SchedulerReply? {
        guard let (name, fields) = WireFrame.enumCase(header) else { return nil }
        switch name {
        case "started":
            guard let created = fields["created"]?.boolValue, let seq = fields["seq"]?.uint64,
                let id = fields["instanceID"]?.stringValue.flatMap(InstanceID.init)
            else { return nil }
            return .started(instanceID: id, created: created, seq: seq)
        case "events":
            guard let head = fields["head"]?.uint64, let events = envelopes(fields["events"]) else { return nil }
            return .events(events: events, head: head)
        case "someEvents":
            return envelopes(fields["events"]).map { .someEvents(events: $0) }
        default:
            return nil
        }
    }

    /// Every envelope of the array, or nil when one needs `JSONDecoder`.
    private static func envelopes(_ node: JSONNode?) -> [EventEnvelope]? {
        guard case .array(let items)? = node else { return nil }
        var events: [EventEnvelope] = []
        events.reserveCapacity(items.count)
        for item in items {
            guard let envelope = FastEventDecoder.envelope(item) else { return nil }
            events.append(envelope)
        }
        return events
    }
}
