import Foundation

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
        out.bytes.reserveCapacity(256)
        out.open()
        out.key("at")
        out.int(envelope.at.millis)
        out.key("data")
        guard data(envelope.event, &out) else { return nil }
        if let importedFrom = envelope.importedFrom {
            out.key("importedFrom")
            out.uint(importedFrom)
        }
        out.key("instanceId")
        out.string(envelope.instanceID.description)
        if let origin = envelope.origin {
            out.key("origin")
            out.open()
            out.key("executor")
            out.string(origin.executor.rawValue)
            out.key("seq")
            out.uint(origin.seq)
            out.close()
        }
        if let requestID = envelope.requestID {
            out.key("requestId")
            out.string(requestID.rawValue)
        }
        out.key("seq")
        out.uint(envelope.seq)
        out.key("type")
        out.string(envelope.event.typeName)
        out.key("version")
        out.int(Int64(envelope.event.version))
        out.close()
        return out.bytes
    }

    private static func data(_ event: Event, _ out: inout JSONWriter) -> Bool {
        out.open()
        switch event {
        case .instanceCreated(let e):
            out.key("arguments")
            guard out.object(e.arguments) else { return false }
            if let entryPoint = e.entryPoint {
                out.key("entryPoint")
                out.string(entryPoint)
            }
            if let key = e.idempotencyKey {
                out.key("idempotencyKey")
                out.string(key)
            }
            out.key("out")
            out.strings(e.out)
            out.key("payload")
            out.open()
            out.key("digest")
            out.string(e.payload.digest)
            out.key("size")
            out.int(Int64(e.payload.size))
            out.close()
            if let principal = e.principal {
                out.key("principal")
                out.string(principal)
            }
            out.key("tags")
            out.strings(e.tags)
            if let timeout = e.timeoutMillis {
                out.key("timeoutMillis")
                out.int(timeout)
            }
        case .instanceAssigned(let e):
            out.key("attempt")
            out.int(Int64(e.attempt))
            out.key("executorID")
            out.string(e.executorID.rawValue)
        case .instanceStarted(let e):
            out.key("executorID")
            out.string(e.executorID.rawValue)
        case .logAppended(let e):
            out.key("lines")
            out.logLines(e.lines)
        case .instanceFinished(let e):
            out.key("out")
            guard out.object(e.out) else { return false }
        case .instanceFailed(let e):
            out.key("error")
            out.string(e.error)
            out.key("out")
            guard out.object(e.out) else { return false }
        case .instanceCancelled(let e):
            out.key("reason")
            out.string(e.reason)
        case .instanceTimedOut(let e):
            out.key("error")
            out.string(e.error)
        case .stepsRecorded(let e):
            out.key("steps")
            out.stepRecords(e.steps)
        }
        out.close()
        return true
    }
}

/// JSON text being written as `JSONEncoder` with the house settings writes it: commas between
/// members are placed by `key` and `open`/`close`; the caller writes keys in sorted order.
package struct JSONWriter {
    package var bytes: [UInt8] = []
    /// Whether the object being written has a member yet (one flag per open object).
    private var hasMember: [Bool] = []

    package init() {}

    /// `[LogLine]` as `Codable` writes it.
    package mutating func logLines(_ lines: [LogLine]) {
        bytes.append(UInt8(ascii: "["))
        for (index, line) in lines.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            logLine(line)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// A `LogLine` as `Codable` writes it.
    package mutating func logLine(_ line: LogLine) {
        open()
        key("at")
        int(line.at.millis)
        key("level")
        string(line.level.rawValue)
        key("text")
        string(line.text)
        close()
    }

    package mutating func bool(_ value: Bool) {
        bytes += (value ? "true" : "false").utf8
    }

    /// `[StepRecord]` as `Codable` writes it.
    package mutating func stepRecords(_ steps: [StepRecord]) {
        bytes.append(UInt8(ascii: "["))
        for (index, step) in steps.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            open()
            if let column = step.column {
                key("column")
                int(Int64(column))
            }
            key("durationMicros")
            int(step.durationMicros)
            key("file")
            string(step.file)
            key("flow")
            string(step.flow)
            key("line")
            int(Int64(step.line))
            key("outcome")
            string(step.outcome.rawValue)
            key("startedAt")
            int(step.startedAt.millis)
            key("step")
            string(step.step)
            close()
        }
        bytes.append(UInt8(ascii: "]"))
    }

    package mutating func open() {
        bytes.append(UInt8(ascii: "{"))
        hasMember.append(false)
    }

    package mutating func close() {
        bytes.append(UInt8(ascii: "}"))
        hasMember.removeLast()
    }

    package mutating func key(_ name: String) {
        if hasMember[hasMember.count - 1] { bytes.append(UInt8(ascii: ",")) }
        hasMember[hasMember.count - 1] = true
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    package mutating func int(_ value: Int64) {
        bytes += value.description.utf8
    }

    package mutating func uint(_ value: UInt64) {
        bytes += value.description.utf8
    }

    package mutating func strings(_ values: [String]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Members sorted by the UTF-8 bytes of their keys, as `.sortedKeys` sorts them.
    package mutating func object(_ members: [String: JSONValue]) -> Bool {
        open()
        for key in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            self.key(key)
            guard value(members[key]!) else { return false }
        }
        close()
        return true
    }

    package mutating func value(_ value: JSONValue) -> Bool {
        switch value {
        case .null: bytes += "null".utf8
        case .bool(let flag): bytes += (flag ? "true" : "false").utf8
        case .int(let number): int(number)
        case .double: return false
        case .string(let text): string(text)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                guard self.value(item) else { return false }
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members): return object(members)
        }
        return true
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Escapes as `JSONEncoder` does with `.withoutEscapingSlashes`: quote, backslash, the named
    /// control characters, other control characters as `\u00xx`; everything else as is.
    package mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x00..<0x20:
                bytes += [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    JSONWriter.hexDigits[Int(byte >> 4)], JSONWriter.hexDigits[Int(byte & 0x0F)],
                ]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
