import Foundation

/// Which executor report an event came from, so that a report delivered twice is applied once.
package struct ReportOrigin: Sendable, Hashable, Codable {
    /// The reporting executor (one boot of it).
    package var executor: ExecutorID
    /// The report's sequence number within that executor's boot, from 1.
    package var seq: UInt64

    package init(executor: ExecutorID, seq: UInt64) {
        self.executor = executor
        self.seq = seq
    }
}

/// An event with its place in the log: the unit that is appended, published and folded.
package struct EventEnvelope: Sendable, Hashable {
    /// Position in the log, from 1, rising; gaps only where retention removed events (the log's
    /// first event always stays). 0 until the log assigns it.
    package var seq: UInt64
    /// The instance it is about; for a key event (`Event.isKeyEvent`), the API key's id. Every
    /// event belongs to one stream, an instance's or a key's; in JSON the field says which
    /// (`instanceId` or `keyId`).
    package var instanceID: InstanceID
    /// When the Scheduler decided it.
    package var at: Timestamp
    /// The request that caused it, when one did.
    package var requestID: RequestID?
    /// The executor report it records, when it records one.
    package var origin: ReportOrigin?
    /// The fact itself.
    package var event: Event
    /// For an event brought in by `accord log import`: its sequence number in the log it came from.
    package var importedFrom: UInt64?

    package init(
        seq: UInt64 = 0, instanceID: InstanceID, at: Timestamp, requestID: RequestID? = nil,
        origin: ReportOrigin? = nil, event: Event, importedFrom: UInt64? = nil
    ) {
        self.seq = seq
        self.instanceID = instanceID
        self.at = at
        self.requestID = requestID
        self.origin = origin
        self.event = event
        self.importedFrom = importedFrom
    }
}

extension EventEnvelope: Codable {
    enum CodingKeys: String, CodingKey {
        case seq, type, version, instanceId, keyId, trimId, at, requestId, origin, data, importedFrom
    }

    /// Decodes any known (type, version); older versions are upcast to the current shape.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seq = try c.decode(UInt64.self, forKey: .seq)
        let type = try c.decode(String.self, forKey: .type)
        let version = try c.decode(Int.self, forKey: .version)
        instanceID = try c.decode(InstanceID.self, forKey: CodingKeys(stringValue: Event.streamField(ofType: type))!)
        at = try c.decode(Timestamp.self, forKey: .at)
        requestID = try c.decodeIfPresent(RequestID.self, forKey: .requestId)
        origin = try c.decodeIfPresent(ReportOrigin.self, forKey: .origin)
        importedFrom = try c.decodeIfPresent(UInt64.self, forKey: .importedFrom)
        switch (type, version) {
        case ("InstanceCreated", 1): event = .instanceCreated(try c.decode(InstanceCreated.self, forKey: .data))
        case ("InstanceAssigned", 1): event = .instanceAssigned(try c.decode(InstanceAssigned.self, forKey: .data))
        case ("InstanceStarted", 1): event = .instanceStarted(try c.decode(InstanceStarted.self, forKey: .data))
        case ("LogAppended", 1): event = .logAppended(try c.decode(LogAppended.self, forKey: .data))
        case ("InstanceFinished", 1): event = .instanceFinished(try c.decode(InstanceFinished.self, forKey: .data))
        case ("InstanceFailed", 1): event = .instanceFailed(try c.decode(InstanceFailed.self, forKey: .data))
        case ("InstanceCancelled", 1): event = .instanceCancelled(try c.decode(InstanceCancelled.self, forKey: .data))
        case ("StepsRecorded", 2): event = .stepsRecorded(try c.decode(StepsRecorded.self, forKey: .data))
        case ("StepsRecorded", 1): event = .stepsRecorded(try c.decode(StepsRecordedV1.self, forKey: .data).upcast)
        case ("InstanceTimedOut", 1): event = .instanceTimedOut(try c.decode(InstanceTimedOut.self, forKey: .data))
        case ("InstanceRequeued", 1): event = .instanceRequeued(try c.decode(InstanceRequeued.self, forKey: .data))
        case ("ApiKeyCreated", 1): event = .apiKeyCreated(try c.decode(ApiKeyCreated.self, forKey: .data))
        case ("ApiKeyRevoked", 1): event = .apiKeyRevoked(try c.decode(ApiKeyRevoked.self, forKey: .data))
        case ("HistoryTrimmed", 1): event = .historyTrimmed(try c.decode(HistoryTrimmed.self, forKey: .data))
        case ("HandlersDeclared", 1): event = .handlersDeclared(try c.decode(HandlersDeclared.self, forKey: .data))
        case ("HandlerAssigned", 1): event = .handlerAssigned(try c.decode(HandlerAssigned.self, forKey: .data))
        case ("HandlerStarted", 1): event = .handlerStarted(try c.decode(HandlerStarted.self, forKey: .data))
        case ("HandlerRequeued", 1): event = .handlerRequeued(try c.decode(HandlerRequeued.self, forKey: .data))
        case ("HandlerEnded", 1): event = .handlerEnded(try c.decode(HandlerEnded.self, forKey: .data))
        case ("InstanceSuspended", 1):
            event = .instanceSuspended(try c.decode(InstanceSuspended.self, forKey: .data))
        case ("InstanceResumed", 1): event = .instanceResumed(try c.decode(InstanceResumed.self, forKey: .data))
        case ("AttachmentsStored", 1):
            event = .attachmentsStored(try c.decode(AttachmentsStored.self, forKey: .data))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c, debugDescription: "unknown event type \(type) version \(version)")
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seq, forKey: .seq)
        try c.encode(event.typeName, forKey: .type)
        try c.encode(event.version, forKey: .version)
        try c.encode(instanceID, forKey: CodingKeys(stringValue: event.streamField)!)
        try c.encode(at, forKey: .at)
        try c.encodeIfPresent(requestID, forKey: .requestId)
        try c.encodeIfPresent(origin, forKey: .origin)
        try c.encodeIfPresent(importedFrom, forKey: .importedFrom)
        switch event {
        case .instanceCreated(let data): try c.encode(data, forKey: .data)
        case .instanceAssigned(let data): try c.encode(data, forKey: .data)
        case .instanceStarted(let data): try c.encode(data, forKey: .data)
        case .logAppended(let data): try c.encode(data, forKey: .data)
        case .instanceFinished(let data): try c.encode(data, forKey: .data)
        case .instanceFailed(let data): try c.encode(data, forKey: .data)
        case .instanceCancelled(let data): try c.encode(data, forKey: .data)
        case .instanceTimedOut(let data): try c.encode(data, forKey: .data)
        case .stepsRecorded(let data): try c.encode(data, forKey: .data)
        case .instanceRequeued(let data): try c.encode(data, forKey: .data)
        case .apiKeyCreated(let data): try c.encode(data, forKey: .data)
        case .apiKeyRevoked(let data): try c.encode(data, forKey: .data)
        case .historyTrimmed(let data): try c.encode(data, forKey: .data)
        case .handlersDeclared(let data): try c.encode(data, forKey: .data)
        case .handlerAssigned(let data): try c.encode(data, forKey: .data)
        case .handlerStarted(let data): try c.encode(data, forKey: .data)
        case .handlerRequeued(let data): try c.encode(data, forKey: .data)
        case .handlerEnded(let data): try c.encode(data, forKey: .data)
        case .attachmentsStored(let data): try c.encode(data, forKey: .data)
        case .instanceSuspended(let data): try c.encode(data, forKey: .data)
        case .instanceResumed(let data): try c.encode(data, forKey: .data)
        }
    }

}

extension Event {
    /// The version this type is written at today. Older versions stay readable: each has its
    /// decoding case above, upcasting to the current shape (`StepsRecordedV1`).
    package var version: Int {
        switch self {
        case .stepsRecorded: 2
        default: 1
        }
    }
}

/// The one place events become bytes and back: stable JSON, keys sorted.
package enum EventCodec {
    /// Encodes an envelope as it is stored in the log and sent on the wire.
    package static func encode(_ envelope: EventEnvelope) throws -> Data {
        if let bytes = FastEventEncoder.encode(envelope) { return Data(bytes) }
        return try makeEncoder().encode(envelope)
    }

    /// Decodes an envelope of any known type and version.
    package static func decode(_ data: Data) throws -> EventEnvelope {
        try FastEventDecoder.decode(data)
    }

    /// A JSON encoder with the house settings: sorted keys, no escaped slashes.
    package static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
