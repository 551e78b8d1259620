import Foundation
import JSON

/// Encodes envelopes to exactly the bytes `EventCodec.makeEncoder()` writes (keys sorted by their
/// UTF-8 bytes, slashes unescaped), several times faster: every start, report and log line is
/// encoded once, by the Scheduler, under the log's lock.
///
/// It must agree with `JSONEncoder` byte for byte (a test encodes every fixture and thousands of
/// generated events both ways). A value it does not write the same way for certain — a
/// floating-point number — makes it answer nil, and the caller uses `JSONEncoder`, which stays
/// the reference.
package enum FastEventEncoder {
    package static func encode(_ envelope: EventEnvelope) -> [UInt8]? {
        var out = JSONWriter()
        let written = out.object {
            $0.field("at", envelope.at.millis)
            guard $0.nested("data", { data(envelope.event, &$0) }) else { return false }
            $0.field("importedFrom", envelope.importedFrom.map(Int64.init))
            // Keys in sorted order: `instanceId` and `keyId` come before `origin`, `trimId` after `seq`.
            let stream = envelope.event.streamField
            if stream != "trimId" { $0.field(stream, envelope.instanceID.description) }
            if let origin = envelope.origin {
                $0.nested("origin") {
                    $0.field("executor", origin.executor.rawValue)
                    $0.field("seq", origin.seq)
                    return true
                }
            }
            $0.field("requestId", envelope.requestID?.rawValue)
            $0.field("seq", envelope.seq)
            if stream == "trimId" { $0.field(stream, envelope.instanceID.description) }
            $0.field("type", envelope.event.typeName)
            $0.field("version", Int64(envelope.event.version))
            return true
        }
        return written ? out.bytes : nil
    }

    /// The members of the event's `data` object.
    private static func data(_ event: Event, _ out: inout JSONWriter) -> Bool {
        switch event {
        case .instanceCreated(let e):
            guard out.field("arguments", object: e.arguments) else { return false }
            out.field("entryPoint", e.entryPoint)
            out.field("handlerTimeoutMillis", e.handlerTimeoutMillis)
            out.field("idempotencyKey", e.idempotencyKey)
            out.field("out", strings: e.out)
            out.field("parentInstanceId", e.parentInstanceId?.description)
            if let waits = e.parentWaits { out.field("parentWaits", waits) }
            out.field("payload", e.payload)
            out.field("principal", e.principal)
            out.field("tags", strings: e.tags)
            out.field("team", e.team)
            out.field("timeoutMillis", e.timeoutMillis)
        case .instanceAssigned(let e):
            out.field("attempt", Int64(e.attempt))
            out.field("executorID", e.executorID.rawValue)
        case .instanceStarted(let e):
            out.field("executorID", e.executorID.rawValue)
        case .logAppended(let e):
            out.key("lines")
            out.array(e.lines) { $0.logLine($1) }
        case .instanceFinished(let e):
            return out.field("out", object: e.out)
        case .instanceFailed(let e):
            out.field("error", e.error)
            guard out.field("out", object: e.out) else { return false }
            if let variables = e.variables { return out.field("variables", object: variables) }
        case .instanceCancelled(let e):
            out.field("reason", e.reason)
        case .instanceTimedOut(let e):
            out.field("error", e.error)
        case .instanceRequeued(let e):
            out.field("reason", e.reason)
        case .stepsRecorded(let e):
            out.key("steps")
            out.array(e.steps) { $0.stepRecord($1) }
        case .apiKeyCreated(let e):
            out.field("admin", e.admin)
            out.field("createdBy", e.createdBy)
            out.field("hash", e.hash)
            out.field("name", e.name)
            out.field("team", e.team)
        case .apiKeyRevoked(let e):
            out.field("revokedBy", e.revokedBy)
        case .historyTrimmed(let e):
            out.field("before", e.before.millis)
            out.field("retentionMillis", e.retentionMillis)
        case .handlersDeclared(let e):
            out.field("flows", strings: e.flows)
        case .handlerAssigned(let e):
            out.field("attempt", Int64(e.attempt))
            out.field("executorID", e.executorID.rawValue)
            out.field("flow", e.flow)
        case .handlerStarted(let e):
            out.field("executorID", e.executorID.rawValue)
            out.field("flow", e.flow)
        case .handlerRequeued(let e):
            out.field("flow", e.flow)
            out.field("reason", e.reason)
        case .handlerEnded(let e):
            out.field("error", e.error)
            out.field("flow", e.flow)
        case .instanceSuspended(let e):
            out.field("event", e.event)
            out.field("state", e.state)
        case .instanceResumed(let e):
            if let child = e.child {
                let written = out.nested("child") {
                    $0.field("error", child.error)
                    $0.field("id", child.id.description)
                    guard $0.field("out", object: child.out) else { return false }
                    $0.field("status", child.status.rawValue)
                    return true
                }
                guard written else { return false }
            }
            out.field("event", e.event)
            return out.field("variables", object: e.variables)
        case .attachmentsStored(let e):
            out.field("archive", e.archive)
            out.key("files")
            out.array(e.files) { writer, file in
                _ = writer.object {
                    $0.field("name", file.name)
                    $0.field("size", Int64(file.size))
                    return true
                }
            }
        }
        return true
    }
}

/// The event parts that reports and runner messages carry too.
extension JSONWriter {
    /// A `LogLine` as `Codable` writes it.
    package mutating func logLine(_ line: LogLine) {
        _ = object {
            $0.field("at", line.at.millis)
            $0.field("level", line.level.rawValue)
            $0.field("text", line.text)
            return true
        }
    }

    /// A `StepRecord` as `Codable` writes it.
    package mutating func stepRecord(_ step: StepRecord) {
        _ = object {
            $0.field("column", step.column.map(Int64.init))
            $0.field("durationMicros", step.durationMicros)
            $0.field("file", step.file)
            $0.field("flow", step.flow)
            $0.field("line", Int64(step.line))
            $0.field("outcome", step.outcome.rawValue)
            $0.field("startedAt", step.startedAt.millis)
            $0.field("step", step.step)
            return true
        }
    }
}

extension JSONWriter {
    /// `"name":{"digest":...,"size":...}`, a `PayloadRef` as `Codable` writes it.
    package mutating func field(_ name: String, _ ref: PayloadRef) {
        nested(name) {
            $0.field("digest", ref.digest)
            $0.field("size", Int64(ref.size))
            return true
        }
    }
}
