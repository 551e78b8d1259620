import Foundation

/// Decodes stored events several times faster than `JSONDecoder`: a strict JSON parser over the
/// record's bytes into `JSONValue`, then a field-by-field mapping to the event types. Restart,
/// verify, export and rebuild read every event of the log, so this is their main cost.
///
/// It must agree with the `Codable` path exactly (a test decodes every fixture, golden file and
/// thousands of generated events both ways); anything it does not recognise falls back to
/// `JSONDecoder`, which stays the reference and produces the errors people read.
package enum FastEventDecoder {
    package static func decode(_ data: Data) throws -> EventEnvelope {
        let parsed: JSONNode? = data.withUnsafeBytes { raw in
            var parser = JSONParser(raw.bindMemory(to: UInt8.self))
            return try? parser.parseDocument()
        }
        if let parsed, let envelope = envelope(parsed) { return envelope }
        return try JSONDecoder().decode(EventEnvelope.self, from: data)
    }

    /// A `CommittedEvents` frame header (what the Scheduler publishes with every commit, decoded
    /// by every Gateway): the same fast path, the same fallback.
    package static func decodeCommitted(_ header: ArraySlice<UInt8>) throws -> CommittedEvents {
        let parsed: JSONNode? = header.withUnsafeBytes { raw in
            var parser = JSONParser(raw.bindMemory(to: UInt8.self))
            return try? parser.parseDocument()
        }
        if case .object(let o)? = parsed, let head = o["head"]?.uint64, case .array(let items)? = o["events"] {
            var events: [EventEnvelope] = []
            events.reserveCapacity(items.count)
            for item in items {
                guard let envelope = envelope(item) else { break }
                events.append(envelope)
            }
            if events.count == items.count { return CommittedEvents(events: events, head: head) }
        }
        return try JSONDecoder().decode(CommittedEvents.self, from: Data(header))
    }

    /// nil for anything unexpected (the caller falls back to `JSONDecoder`).
    static func envelope(_ value: JSONNode) -> EventEnvelope? {
        guard case .object(let o) = value, let seq = o["seq"]?.uint64, let type = o["type"]?.stringValue,
            let version = o["version"]?.int, let id = o["instanceId"]?.stringValue.flatMap(InstanceID.init),
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

    /// Parses one JSON document; nil when it is not strict JSON or holds a fractional number.
    package static func parse(_ bytes: UnsafeRawBufferPointer) -> JSONNode? {
        var parser = JSONParser(bytes.bindMemory(to: UInt8.self))
        return try? parser.parseDocument()
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
                let tags = d["tags"]?.strings, let payload = d["payload"]?.objectValue,
                let digest = payload["digest"]?.stringValue, let size = payload["size"]?.int,
                let entryPoint = d.optional("entryPoint", \.stringValue),
                let timeout = d.optional("timeoutMillis", \.int64),
                let key = d.optional("idempotencyKey", \.stringValue),
                let principal = d.optional("principal", \.stringValue)
            else { return nil }
            return .instanceCreated(
                InstanceCreated(
                    entryPoint: entryPoint, arguments: arguments, timeoutMillis: timeout, out: out, tags: tags,
                    payload: PayloadRef(digest: digest, size: size), idempotencyKey: key, principal: principal))
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
            guard let error = d["error"]?.stringValue, let out = d["out"]?.objectValue?.jsonObject else { return nil }
            return .instanceFailed(InstanceFailed(error: error, out: out))
        case ("InstanceCancelled", 1):
            guard let reason = d["reason"]?.stringValue else { return nil }
            return .instanceCancelled(InstanceCancelled(reason: reason))
        case ("InstanceTimedOut", 1):
            guard let error = d["error"]?.stringValue else { return nil }
            return .instanceTimedOut(InstanceTimedOut(error: error))
        case ("StepsRecorded", 2):
            guard let steps = d["steps"].flatMap(stepRecords) else { return nil }
            return .stepsRecorded(StepsRecorded(steps: steps))
        default:
            return nil  // older versions go through `JSONDecoder` and their upcasters
        }
    }
}

/// What the parser builds: objects keep their members in order, looked up by a linear scan
/// (envelopes have a handful of keys), so no dictionary is hashed unless a free-form value
/// (`arguments`, `out`) becomes a `JSONValue`.
package indirect enum JSONNode {
    case null
    case bool(Bool)
    case int(Int64)
    case string(String)
    case array([JSONNode])
    case object(Members)

    package struct Members {
        package var pairs: [(key: String, value: JSONNode)]

        package subscript(key: String) -> JSONNode? {
            for pair in pairs where pair.key == key { return pair.value }
            return nil
        }

        /// As a `JSONValue` object (the last of duplicate keys wins, as in `JSONDecoder`).
        package var jsonObject: [String: JSONValue] {
            var result: [String: JSONValue] = [:]
            result.reserveCapacity(pairs.count)
            for pair in pairs { result[pair.key] = pair.value.json }
            return result
        }

        /// `.some(nil)` when the key is absent or null, `.some(value)` when it has the right type, and
        /// `nil` (not decodable here) when it has another.
        package func optional<T>(_ key: String, _ read: (JSONNode) -> T?) -> T?? {
            guard let value = self[key], !value.isNull else { return .some(nil) }
            guard let typed = read(value) else { return nil }
            return .some(typed)
        }
    }

    package var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    package var json: JSONValue {
        switch self {
        case .null: .null
        case .bool(let value): .bool(value)
        case .int(let value): .int(value)
        case .string(let value): .string(value)
        case .array(let items): .array(items.map(\.json))
        case .object(let members): .object(members.jsonObject)
        }
    }

    package var objectValue: Members? {
        if case .object(let members) = self { return members }
        return nil
    }

    package var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    package var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    package var int64: Int64? {
        if case .int(let value) = self { return value }
        return nil
    }

    package var int: Int? { int64.flatMap { Int(exactly: $0) } }

    package var uint64: UInt64? { int64.flatMap { $0 >= 0 ? UInt64($0) : nil } }

    package var strings: [String]? {
        guard case .array(let items) = self else { return nil }
        var result: [String] = []
        result.reserveCapacity(items.count)
        for item in items {
            guard let text = item.stringValue else { return nil }
            result.append(text)
        }
        return result
    }
}

/// A strict JSON parser (RFC 8259) over UTF-8 bytes. Integers that fit 64 bits stay integers.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0

    struct Failure: Error {}

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func parseDocument() throws -> JSONNode {
        let value = try parseValue()
        skipWhitespace()
        guard index == bytes.count else { throw Failure() }
        return value
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws -> JSONNode {
        skipWhitespace()
        guard index < bytes.count else { throw Failure() }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return try parseNumber()
        }
    }

    private mutating func literal(_ text: StaticString, _ value: JSONNode) throws -> JSONNode {
        let count = text.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Failure() }
        for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] { throw Failure() }
        index += count
        return value
    }

    private mutating func parseObject() throws -> JSONNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 512 else { throw Failure() }
        index += 1
        var members: [(key: String, value: JSONNode)] = []
        members.reserveCapacity(8)
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(JSONNode.Members(pairs: members))
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw Failure() }
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw Failure() }
            index += 1
            members.append((key, try parseValue()))
            skipWhitespace()
            guard index < bytes.count else { throw Failure() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(JSONNode.Members(pairs: members))
            } else {
                throw Failure()
            }
        }
    }

    private mutating func parseArray() throws -> JSONNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 512 else { throw Failure() }
        index += 1
        var items: [JSONNode] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            items.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw Failure() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
            } else if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            } else {
                throw Failure()
            }
        }
    }

    private mutating func parseString() throws -> String {
        index += 1
        let start = index
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw Failure() }
            index += 1
        }
        var scalars = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw Failure() }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append(0x22)
                case UInt8(ascii: "\\"): scalars.append(0x5C)
                case UInt8(ascii: "/"): scalars.append(0x2F)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw Failure() }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw Failure() }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw Failure()
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw Failure() }
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw Failure()
                }
            default:
                guard byte >= 0x20 else { throw Failure() }
                scalars.append(byte)
                index += 1
            }
        }
        throw Failure()
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw Failure() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw Failure()
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private mutating func parseNumber() throws -> JSONNode {
        let start = index
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw Failure()
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw Failure() }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            let digits = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digits else { throw Failure() }
        }
        // Fractions, exponents and integers beyond 64 bits are left to the Codable path, which
        // decides what they become (`2.0` may be an integer there): exactness over speed for the
        // rare event that carries one.
        guard isInteger else { throw Failure() }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Int64(text) else { throw Failure() }
        return .int(value)
    }
}

// Here rather than beside the encoder in FastWire.swift: reading `JSONNode`'s members from another
// file of this module trips the compiler ("circular reference").
extension FastWire {
    /// `ExecutorRequest.reports` read back; nil for any other request or anything unexpected (the
    /// caller falls back to `JSONDecoder`).
    package static func reports(_ header: ArraySlice<UInt8>) -> ExecutorRequest? {
        header.withUnsafeBytes { raw -> ExecutorRequest? in
            guard case .object(let root)? = FastEventDecoder.parse(raw), root.pairs.count == 1,
                let body = root["reports"]?.objectValue, let executor = body["executorID"]?.stringValue,
                case .array(let items)? = body["reports"]
            else { return nil }
            var reports: [Report] = []
            reports.reserveCapacity(items.count)
            for item in items {
                guard let r = item.objectValue, let at = r["at"]?.int64, let seq = r["seq"]?.uint64,
                    let id = r["instanceID"]?.stringValue.flatMap(InstanceID.init),
                    let kindObject = r["kind"]?.objectValue, kindObject.pairs.count == 1,
                    let fields = kindObject.pairs[0].value.objectValue
                else { return nil }
                let kind: ReportKind
                switch kindObject.pairs[0].key {
                case "started":
                    kind = .started
                case "log":
                    guard let lines = fields["lines"].flatMap(FastEventDecoder.logLines) else { return nil }
                    kind = .log(lines: lines)
                case "steps":
                    guard let records = fields["records"].flatMap(FastEventDecoder.stepRecords) else { return nil }
                    kind = .steps(records: records)
                case "finished":
                    guard let values = fields["out"]?.objectValue?.jsonObject else { return nil }
                    kind = .finished(out: values)
                case "failed":
                    guard let error = fields["error"]?.stringValue, let values = fields["out"]?.objectValue?.jsonObject
                    else { return nil }
                    kind = .failed(error: error, out: values)
                default:
                    return nil
                }
                reports.append(Report(seq: seq, instanceID: id, kind: kind, at: Timestamp(millis: at)))
            }
            return .reports(executorID: ExecutorID(executor), reports: reports)
        }
    }
}

extension FastEventDecoder {
    /// The one member of an enum case's object (`{"case": {...}}`) and its fields.
    fileprivate static func enumCase(_ header: ArraySlice<UInt8>) -> (name: String, fields: JSONNode.Members)? {
        header.withUnsafeBytes { raw in
            guard case .object(let root)? = parse(raw), root.pairs.count == 1,
                let fields = root.pairs[0].value.objectValue
            else { return nil }
            return (root.pairs[0].key, fields)
        }
    }
}

extension ExecutorRequest: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> ExecutorRequest? { FastWire.reports(header) }
}

extension SchedulerRequest: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> SchedulerRequest? {
        guard let (name, fields) = FastEventDecoder.enumCase(header), name == "start",
            let s = fields["_0"]?.objectValue, let arguments = s["arguments"]?.objectValue?.jsonObject,
            let out = s["out"]?.strings, let tags = s["tags"]?.strings,
            let requestID = s["requestID"]?.stringValue, let entryPoint = s.optional("entryPoint", \.stringValue),
            let key = s.optional("idempotencyKey", \.stringValue),
            let principal = s.optional("principal", \.stringValue),
            let timeout = s.optional("timeoutMillis", \.int64)
        else { return nil }
        return .start(
            StartInstance(
                requestID: RequestID(requestID), entryPoint: entryPoint, arguments: arguments, timeoutMillis: timeout,
                out: out, tags: tags, idempotencyKey: key, principal: principal))
    }
}

extension SchedulerReply: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> SchedulerReply? {
        guard let (name, fields) = FastEventDecoder.enumCase(header), name == "started",
            let created = fields["created"]?.boolValue, let seq = fields["seq"]?.uint64,
            let id = fields["instanceID"]?.stringValue.flatMap(InstanceID.init)
        else { return nil }
        return .started(instanceID: id, created: created, seq: seq)
    }
}

extension ExecutorCommand: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> ExecutorCommand? {
        guard let (name, fields) = FastEventDecoder.enumCase(header), name == "dispatch",
            let d = fields["_0"]?.objectValue, let arguments = d["arguments"]?.objectValue?.jsonObject,
            let attempt = d["attempt"]?.int, let out = d["out"]?.strings,
            let id = d["instanceID"]?.stringValue.flatMap(InstanceID.init),
            let entryPoint = d.optional("entryPoint", \.stringValue)
        else { return nil }
        return .dispatch(
            Dispatch(instanceID: id, attempt: attempt, entryPoint: entryPoint, arguments: arguments, out: out))
    }
}
