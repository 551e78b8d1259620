import Foundation
import JSON

/// Decodes stored events several times faster than `JSONDecoder`: a strict JSON parser over the
/// record's bytes into `JSONValue`, then a field-by-field mapping to the event types. Restart,
/// verify, export and rebuild read every event of the log, so this is their main cost.
///
/// It must agree with the `Codable` path exactly (a test decodes every fixture, golden file and
/// thousands of generated events both ways); anything it does not recognise falls back to
/// `JSONDecoder`, which stays the reference and produces the errors people read.
package enum FastEventDecoder {
    package static func decode(_ data: Data) throws -> EventEnvelope {
        if let parsed = JSONNode.parse(data), let envelope = envelope(parsed) { return envelope }
        return try JSONDecoder().decode(EventEnvelope.self, from: data)
    }

    /// nil for anything unexpected (the caller falls back to `JSONDecoder`).
    package static func envelope(_ value: JSONNode) -> EventEnvelope? {
        guard case .object(let o) = value, let seq = o["seq"]?.uint64, let type = o["type"]?.stringValue,
            let version = o["version"]?.int,
            let id = o[Event.streamField(ofType: type)]?.stringValue.flatMap(InstanceID.init),
            let at = o["at"]?.int64, let data = o["data"]?.objectValue
        else { return nil }
        var requestID: RequestID?
        if let raw = o["requestId"], !raw.isNull {
            guard let text = raw.stringValue else { return nil }
            requestID = RequestID(text)
        }
        var origin: ReportOrigin?
        if let raw = o["origin"], !raw.isNull {
            guard let object = raw.objectValue, let executor = object["executor"]?.stringValue,
                let reportSeq = object["seq"]?.uint64
            else { return nil }
            origin = ReportOrigin(executor: ExecutorID(executor), seq: reportSeq)
        }
        var importedFrom: UInt64?
        if let raw = o["importedFrom"], !raw.isNull {
            guard let value = raw.uint64 else { return nil }
            importedFrom = value
        }
        guard let event = event(type, version, data) else { return nil }
        return EventEnvelope(
            seq: seq, instanceID: id, at: Timestamp(millis: at), requestID: requestID, origin: origin, event: event,
            importedFrom: importedFrom)
    }

    /// `[LogLine]` as `Codable` writes it.
    package static func logLines(_ node: JSONNode) -> [LogLine]? {
        guard case .array(let items) = node else { return nil }
        var lines: [LogLine] = []
        lines.reserveCapacity(items.count)
        for item in items {
            guard let line = logLine(item) else { return nil }
            lines.append(line)
        }
        return lines
    }

    /// A `LogLine` as `Codable` writes it.
    package static func logLine(_ node: JSONNode) -> LogLine? {
        guard let line = node.objectValue, let at = line["at"]?.int64,
            let level = line["level"]?.stringValue.flatMap(LogLevel.init(rawValue:)),
            let text = line["text"]?.stringValue
        else { return nil }
        return LogLine(at: Timestamp(millis: at), level: level, text: text)
    }

    /// A `ChildOutcome` as `Codable` writes it.
    static func childOutcome(_ node: JSONNode) -> ChildOutcome? {
        guard let c = node.objectValue, let id = c["id"]?.stringValue.flatMap(InstanceID.init),
            let status = c["status"]?.stringValue.flatMap(InstanceStatus.init(rawValue:)),
            let out = c["out"]?.objectValue?.jsonObject, let error = c.optional("error", \.stringValue)
        else { return nil }
        return ChildOutcome(id: id, status: status, out: out, error: error)
    }

    /// A `PayloadRef` as `Codable` writes it.
    package static func payloadRef(_ node: JSONNode) -> PayloadRef? {
        guard let ref = node.objectValue, let digest = ref["digest"]?.stringValue, let size = ref["size"]?.int
        else { return nil }
        return PayloadRef(digest: digest, size: size)
    }

    /// `[AttachmentFile]` as `Codable` writes it.
    package static func attachmentFiles(_ node: JSONNode) -> [AttachmentFile]? {
        guard case .array(let items) = node else { return nil }
        var files: [AttachmentFile] = []
        for item in items {
            guard let file = item.objectValue, let name = file["name"]?.stringValue, let size = file["size"]?.int
            else { return nil }
            files.append(AttachmentFile(name: name, size: size))
        }
        return files
    }

    /// `[StepRecord]` as `Codable` writes it.
    package static func stepRecords(_ node: JSONNode) -> [StepRecord]? {
        guard case .array(let items) = node else { return nil }
        var steps: [StepRecord] = []
        steps.reserveCapacity(items.count)
        for item in items {
            guard let s = item.objectValue, let flow = s["flow"]?.stringValue, let step = s["step"]?.stringValue,
                let file = s["file"]?.stringValue, let line = s["line"]?.int,
                let column = s.optional("column", \.int), let started = s["startedAt"]?.int64,
                let micros = s["durationMicros"]?.int64,
                let outcome = s["outcome"]?.stringValue.flatMap(StepOutcome.init(rawValue:))
            else { return nil }
            steps.append(
                StepRecord(
                    flow: flow, step: step, file: file, line: line, column: column,
                    startedAt: Timestamp(millis: started), durationMicros: micros, outcome: outcome))
        }
        return steps
    }

    private static func event(_ type: String, _ version: Int, _ d: JSONNode.Members) -> Event? {
        switch (type, version) {
        case ("InstanceCreated", 1):
            guard let arguments = d["arguments"]?.objectValue?.jsonObject, let out = d["out"]?.strings,
                let tags = d["tags"]?.strings, let payload = d["payload"].flatMap(payloadRef),
                let entryPoint = d.optional("entryPoint", \.stringValue),
                let timeout = d.optional("timeoutMillis", \.int64),
                let handlerTimeout = d.optional("handlerTimeoutMillis", \.int64),
                let key = d.optional("idempotencyKey", \.stringValue),
                let principal = d.optional("principal", \.stringValue), let team = d.optional("team", \.stringValue),
                let parent = d.optional("parentInstanceId", { $0.stringValue.flatMap(InstanceID.init) }),
                let parentWaits = d.optional("parentWaits", \.boolValue)
            else { return nil }
            return .instanceCreated(
                InstanceCreated(
                    entryPoint: entryPoint, arguments: arguments, timeoutMillis: timeout, out: out, tags: tags,
                    payload: payload, idempotencyKey: key, principal: principal,
                    team: team, handlerTimeoutMillis: handlerTimeout, parentInstanceId: parent,
                    parentWaits: parentWaits))
        case ("InstanceAssigned", 1):
            guard let executor = d["executorID"]?.stringValue, let attempt = d["attempt"]?.int else { return nil }
            return .instanceAssigned(InstanceAssigned(executorID: ExecutorID(executor), attempt: attempt))
        case ("InstanceStarted", 1):
            guard let executor = d["executorID"]?.stringValue else { return nil }
            return .instanceStarted(InstanceStarted(executorID: ExecutorID(executor)))
        case ("LogAppended", 1):
            guard let lines = d["lines"].flatMap(logLines) else { return nil }
            return .logAppended(LogAppended(lines: lines))
        case ("InstanceFinished", 1):
            guard let out = d["out"]?.objectValue?.jsonObject else { return nil }
            return .instanceFinished(InstanceFinished(out: out))
        case ("InstanceFailed", 1):
            guard let error = d["error"]?.stringValue, let out = d["out"]?.objectValue?.jsonObject,
                let variables = d.optional("variables", { $0.objectValue?.jsonObject })
            else { return nil }
            return .instanceFailed(InstanceFailed(error: error, out: out, variables: variables))
        case ("InstanceCancelled", 1):
            guard let reason = d["reason"]?.stringValue else { return nil }
            return .instanceCancelled(InstanceCancelled(reason: reason))
        case ("InstanceTimedOut", 1):
            guard let error = d["error"]?.stringValue else { return nil }
            return .instanceTimedOut(InstanceTimedOut(error: error))
        case ("InstanceRequeued", 1):
            guard let reason = d["reason"]?.stringValue else { return nil }
            return .instanceRequeued(InstanceRequeued(reason: reason))
        case ("StepsRecorded", 2):
            guard let steps = d["steps"].flatMap(stepRecords) else { return nil }
            return .stepsRecorded(StepsRecorded(steps: steps))
        case ("ApiKeyCreated", 1):
            guard let name = d["name"]?.stringValue, let admin = d["admin"]?.boolValue,
                let hash = d["hash"]?.stringValue, let team = d.optional("team", \.stringValue),
                let createdBy = d.optional("createdBy", \.stringValue)
            else { return nil }
            return .apiKeyCreated(ApiKeyCreated(name: name, team: team, admin: admin, hash: hash, createdBy: createdBy))
        case ("ApiKeyRevoked", 1):
            guard let revokedBy = d.optional("revokedBy", \.stringValue) else { return nil }
            return .apiKeyRevoked(ApiKeyRevoked(revokedBy: revokedBy))
        case ("HistoryTrimmed", 1):
            guard let before = d["before"]?.int64, let retention = d["retentionMillis"]?.int64 else { return nil }
            return .historyTrimmed(HistoryTrimmed(before: Timestamp(millis: before), retentionMillis: retention))
        case ("HandlersDeclared", 1):
            guard let flows = d["flows"]?.strings else { return nil }
            return .handlersDeclared(HandlersDeclared(flows: flows))
        case ("HandlerAssigned", 1):
            guard let flow = d["flow"]?.stringValue, let executor = d["executorID"]?.stringValue,
                let attempt = d["attempt"]?.int
            else { return nil }
            return .handlerAssigned(HandlerAssigned(flow: flow, executorID: ExecutorID(executor), attempt: attempt))
        case ("HandlerStarted", 1):
            guard let flow = d["flow"]?.stringValue, let executor = d["executorID"]?.stringValue else { return nil }
            return .handlerStarted(HandlerStarted(flow: flow, executorID: ExecutorID(executor)))
        case ("HandlerRequeued", 1):
            guard let flow = d["flow"]?.stringValue, let reason = d["reason"]?.stringValue else { return nil }
            return .handlerRequeued(HandlerRequeued(flow: flow, reason: reason))
        case ("HandlerEnded", 1):
            guard let flow = d["flow"]?.stringValue, let error = d.optional("error", \.stringValue) else { return nil }
            return .handlerEnded(HandlerEnded(flow: flow, error: error))
        case ("InstanceSuspended", 1):
            guard let event = d["event"]?.stringValue, let state = d["state"].flatMap(payloadRef) else { return nil }
            return .instanceSuspended(InstanceSuspended(event: event, state: state))
        case ("InstanceResumed", 1):
            guard let event = d["event"]?.stringValue, let variables = d["variables"]?.objectValue?.jsonObject,
                let child = d.optional("child", childOutcome)
            else { return nil }
            return .instanceResumed(InstanceResumed(event: event, variables: variables, child: child))
        case ("AttachmentsStored", 1):
            guard let archive = d["archive"].flatMap(payloadRef), let files = d["files"].flatMap(attachmentFiles)
            else { return nil }
            return .attachmentsStored(AttachmentsStored(archive: archive, files: files))
        default:
            return nil  // older versions go through `JSONDecoder` and their upcasters
        }
    }
}
