import Archive
import Events
import Foundation

/// What the executor tells a runner to run: a `RunnerFrame` on the runner's stdin, this as JSON
/// followed by the payload archive.
struct RunnerRequest: Codable, Sendable {
    var instanceID: InstanceID
    var entryPoint: String?
    var arguments: [String: JSONValue]
    var out: [String]
    /// The instance's working folder: made and filled from the payload only when a step first
    /// needs files (a script, a resource).
    var workDir: String
    /// Applied by the runner to itself (and so to every script) before the flow starts.
    var limits: InstanceLimits?
    /// Limits for reading the payload.
    var maxEntries = ZipLimits().maxEntries
    var maxUnpackedBytes = ZipLimits().maxUnpackedBytes
}

extension RunnerRequest {
    /// This request as `JSONEncoder` with the house settings writes it, by hand (one per instance;
    /// `JSONDecoder` reading it was half of a runner's CPU for a trivial instance), or nil where
    /// only `JSONEncoder` can promise the bytes (a floating-point number).
    var fastJSON: [UInt8]? {
        var out = JSONWriter()
        let written = out.object {
            guard $0.field("arguments", object: arguments) else { return false }
            $0.field("entryPoint", entryPoint)
            $0.field("instanceID", instanceID.description)
            if let limits {
                $0.nested("limits") {
                    $0.field("maxMemoryBytes", Int64(limits.maxMemoryBytes))
                    $0.field("maxOpenFiles", Int64(limits.maxOpenFiles))
                    $0.field("maxProcesses", Int64(limits.maxProcesses))
                    return true
                }
            }
            $0.field("maxEntries", Int64(maxEntries))
            $0.field("maxUnpackedBytes", Int64(maxUnpackedBytes))
            $0.field("out", strings: self.out)
            $0.field("workDir", workDir)
            return true
        }
        return written ? out.bytes : nil
    }

    /// Reads a request: the fast parser, with `JSONDecoder` as the fallback (and the reference).
    static func decode(_ json: [UInt8]) -> RunnerRequest? {
        fastDecode(json) ?? (try? JSONDecoder().decode(RunnerRequest.self, from: Data(json)))
    }

    static func fastDecode(_ json: [UInt8]) -> RunnerRequest? {
        json.withUnsafeBytes { raw -> RunnerRequest? in
            guard case .object(let r)? = FastEventDecoder.parse(raw),
                let arguments = r["arguments"]?.objectValue?.jsonObject,
                let entryPoint = r.optional("entryPoint", \.stringValue),
                let id = r["instanceID"]?.stringValue.flatMap(InstanceID.init),
                let maxEntries = r["maxEntries"]?.int, let maxUnpacked = r["maxUnpackedBytes"]?.int,
                let out = r["out"]?.strings, let workDir = r["workDir"]?.stringValue
            else { return nil }
            var limits: InstanceLimits?
            if let raw = r["limits"], !raw.isNull {
                guard let l = raw.objectValue, let memory = l["maxMemoryBytes"]?.int,
                    let files = l["maxOpenFiles"]?.int, let processes = l["maxProcesses"]?.int
                else { return nil }
                limits = InstanceLimits(maxProcesses: processes, maxMemoryBytes: memory, maxOpenFiles: files)
            }
            return RunnerRequest(
                instanceID: id, entryPoint: entryPoint, arguments: arguments, out: out, workDir: workDir,
                limits: limits, maxEntries: maxEntries, maxUnpackedBytes: maxUnpacked)
        }
    }
}

/// One request on a runner's stdin: two little-endian 32-bit lengths (the request's JSON, the
/// payload), then the JSON, then the payload bytes.
enum RunnerFrame {
    static func encode(_ request: RunnerRequest, payload: [UInt8]) throws -> [UInt8] {
        let json = try request.fastJSON ?? Array(EventCodec.makeEncoder().encode(request))
        var frame: [UInt8] = []
        frame.reserveCapacity(8 + json.count + payload.count)
        for length in [UInt32(json.count), UInt32(payload.count)] {
            withUnsafeBytes(of: length.littleEndian) { frame += $0 }
        }
        frame += json
        frame += payload
        return frame
    }

    /// Splits a stream into frames as its bytes arrive.
    struct Reader {
        private var buffer: [UInt8] = []
        private var start = 0

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            if start > 0 && start >= buffer.count / 2 {
                buffer.removeSubrange(..<start)
                start = 0
            }
            buffer += bytes
        }

        /// The next complete frame's JSON and payload, if all of it has arrived.
        mutating func next() -> (json: [UInt8], payload: [UInt8])? {
            guard buffer.count - start >= 8 else { return nil }
            let jsonLength = Int(buffer.loadLE32(at: start))
            let payloadLength = Int(buffer.loadLE32(at: start + 4))
            guard buffer.count - start >= 8 + jsonLength + payloadLength else { return nil }
            let json = Array(buffer[(start + 8)..<(start + 8 + jsonLength)])
            let payload = Array(buffer[(start + 8 + jsonLength)..<(start + 8 + jsonLength + payloadLength)])
            start += 8 + jsonLength + payloadLength
            return (json, payload)
        }
    }
}

/// One line of the runner's stdout, as JSON: per instance, `begin` once the runner has the request,
/// log lines and steps while it runs, then exactly one result.
enum RunnerMessage: Codable, Sendable {
    case begin(InstanceID)
    case log(LogLine)
    case steps([StepRecord])
    case result(RunnerResult)
}

extension RunnerMessage {
    /// This message as one line of JSON, by hand (a chatty flow writes one per log line): the bytes
    /// `JSONEncoder` writes with the house settings, or nil where it cannot promise them (a
    /// floating-point number; the caller then uses `JSONEncoder`).
    var fastEncoded: [UInt8]? {
        var out = JSONWriter()
        let written: Bool
        switch self {
        case .begin(let id):
            written = out.unlabeledCase("begin") {
                $0.string(id.description)
                return true
            }
        case .log(let line):
            written = out.unlabeledCase("log") {
                $0.logLine(line)
                return true
            }
        case .steps(let records):
            written = out.unlabeledCase("steps") {
                $0.array(records) { $0.stepRecord($1) }
                return true
            }
        case .result(let result):
            written = out.unlabeledCase("result") {
                $0.object {
                    $0.field("error", result.error)
                    guard $0.field("out", object: result.out) else { return false }
                    $0.field("reusable", result.reusable)
                    return true
                }
            }
        }
        return written ? out.bytes : nil
    }

    /// One line of a runner's stdout: the fast parser, with `JSONDecoder` as the fallback (and the
    /// reference: a test checks they agree on every kind of message).
    static func decode(_ line: ArraySlice<UInt8>) -> RunnerMessage? {
        fastDecode(line) ?? (try? JSONDecoder().decode(RunnerMessage.self, from: Data(line)))
    }

    /// nil for anything it does not recognise (a fractional number included).
    static func fastDecode(_ line: ArraySlice<UInt8>) -> RunnerMessage? {
        line.withUnsafeBytes { raw -> RunnerMessage? in
            guard case .object(let message)? = FastEventDecoder.parse(raw), message.pairs.count == 1,
                let (kind, wrapped) = message.pairs.first, let value = wrapped.objectValue?["_0"]
            else { return nil }
            switch kind {
            case "begin": return value.stringValue.flatMap(InstanceID.init).map(RunnerMessage.begin)
            case "log": return FastEventDecoder.logLine(value).map(RunnerMessage.log)
            case "steps": return FastEventDecoder.stepRecords(value).map(RunnerMessage.steps)
            case "result":
                guard let result = value.objectValue, let error = result.optional("error", \.stringValue),
                    let out = result["out"]?.objectValue?.jsonObject, let reusable = result["reusable"]?.boolValue
                else { return nil }
                return .result(RunnerResult(error: error, out: out, reusable: reusable))
            default: return nil
            }
        }
    }
}

/// How the flow ended.
struct RunnerResult: Codable, Sendable {
    /// `nil` when it finished; the reason when it failed.
    var error: String?
    /// The requested `out` variables.
    var out: [String: JSONValue]
    /// The runner waits for another instance (it started no process and has served fewer than its
    /// share); otherwise it exits after this message.
    var reusable = false
}
