import Foundation
import JSON
import Model
import Support

/// What the executor tells a runner to run: a `RunnerFrame` on the runner's stdin, this as JSON
/// followed by the payload archive.
package struct RunnerRequest: Codable, Sendable {
    package var instanceID: InstanceID
    package var entryPoint: String?
    package var arguments: [String: JSONValue]
    package var out: [String]
    /// The instance's working folder: made and filled from the payload only when a step first
    /// needs files (a script, a resource).
    package var workDir: String
    /// Applied by the runner to itself (and so to every script) before the flow starts.
    package var limits: InstanceLimits?
    /// Limits for reading the payload (the executor's `ZipLimits`).
    package var maxEntries: Int
    package var maxUnpackedBytes: Int
    /// Set for a handler's run: the handler flow, which starts with `arguments` as its variables.
    package var handler: String?
    /// The most the files under `_attachments/` may hold together (the instance's log limit).
    package var maxAttachmentBytes: Int?
    /// Set for a resumed instance: the attachment is the payload followed by its suspended state.
    package var resume: Resumption?

    package init(
        instanceID: InstanceID, entryPoint: String?, arguments: [String: JSONValue], out: [String], workDir: String,
        limits: InstanceLimits?, maxEntries: Int, maxUnpackedBytes: Int, handler: String? = nil,
        maxAttachmentBytes: Int? = nil, resume: Resumption? = nil
    ) {
        self.instanceID = instanceID
        self.entryPoint = entryPoint
        self.arguments = arguments
        self.out = out
        self.workDir = workDir
        self.limits = limits
        self.maxEntries = maxEntries
        self.maxUnpackedBytes = maxUnpackedBytes
        self.handler = handler
        self.maxAttachmentBytes = maxAttachmentBytes
        self.resume = resume
    }
}

extension RunnerRequest {
    /// This request as `JSONEncoder` with the house settings writes it, by hand (one per instance;
    /// `JSONDecoder` reading it was half of a runner's CPU for a trivial instance), or nil where
    /// only `JSONEncoder` can promise the bytes (a floating-point number).
    package var fastJSON: [UInt8]? {
        guard resume == nil else { return nil }
        var out = JSONWriter()
        let written = out.object {
            guard $0.field("arguments", object: arguments) else { return false }
            $0.field("entryPoint", entryPoint)
            $0.field("handler", handler)
            $0.field("instanceID", instanceID.description)
            if let limits {
                $0.nested("limits") {
                    $0.field("maxMemoryBytes", Int64(limits.maxMemoryBytes))
                    $0.field("maxOpenFiles", Int64(limits.maxOpenFiles))
                    $0.field("maxProcesses", Int64(limits.maxProcesses))
                    return true
                }
            }
            $0.field("maxAttachmentBytes", maxAttachmentBytes.map(Int64.init))
            $0.field("maxEntries", Int64(maxEntries))
            $0.field("maxUnpackedBytes", Int64(maxUnpackedBytes))
            $0.field("out", strings: self.out)
            $0.field("workDir", workDir)
            return true
        }
        return written ? out.bytes : nil
    }

    /// Reads a request: the fast parser, with `JSONDecoder` as the fallback (and the reference).
    package static func decode(_ json: ArraySlice<UInt8>) -> RunnerRequest? {
        fastDecode(json) ?? (try? JSONDecoder().decode(RunnerRequest.self, from: Data(json)))
    }

    package static func fastDecode(_ json: ArraySlice<UInt8>) -> RunnerRequest? {
        json.withUnsafeBytes { raw -> RunnerRequest? in
            guard case .object(let r)? = JSONNode.parse(raw), r["resume"] == nil,
                let arguments = r["arguments"]?.objectValue?.jsonObject,
                let entryPoint = r.optional("entryPoint", \.stringValue),
                let id = r["instanceID"]?.stringValue.flatMap(InstanceID.init),
                let maxEntries = r["maxEntries"]?.int, let maxUnpacked = r["maxUnpackedBytes"]?.int,
                let out = r["out"]?.strings, let workDir = r["workDir"]?.stringValue,
                let handler = r.optional("handler", \.stringValue),
                let maxAttachmentBytes = r.optional("maxAttachmentBytes", \.int)
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
                limits: limits, maxEntries: maxEntries, maxUnpackedBytes: maxUnpacked, handler: handler,
                maxAttachmentBytes: maxAttachmentBytes)
        }
    }
}

/// One request on a runner's stdin: a `WireFrame` (the request as its header, the payload archive
/// as its attachment) preceded by its length as a little-endian 32-bit number, since a pipe, unlike
/// an nng message, has no boundaries of its own.
package enum RunnerFrame {
    package static func encode(_ request: RunnerRequest, payload: [UInt8]) throws -> [UInt8] {
        try frame(header: request.fastJSON ?? Array(EventCodec.makeEncoder().encode(request)), attachment: payload)
    }

    package static func encode(_ reply: RunnerReply) throws -> [UInt8] {
        try frame(header: Array(EventCodec.makeEncoder().encode(reply)), attachment: [])
    }

    private static func frame(header: [UInt8], attachment payload: [UInt8]) throws -> [UInt8] {
        let frame = WireFrame.frame(header: header, attachment: payload)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + frame.count)
        withUnsafeBytes(of: UInt32(frame.count).littleEndian) { bytes += $0 }
        bytes += frame
        return bytes
    }

    /// Splits a stream into frames as its bytes arrive.
    package struct Reader {
        private var buffer: [UInt8] = []
        private var start = 0

        package init() {}

        package mutating func append(_ bytes: UnsafeRawBufferPointer) {
            if start > 0 && start >= buffer.count / 2 {
                buffer.removeSubrange(..<start)
                start = 0
            }
            buffer += bytes
        }

        /// The next complete frame's request JSON and payload, once all of it has arrived.
        ///
        /// - Throws: `WireError` for bytes that are not a frame (the stream cannot be trusted after).
        package mutating func next() throws -> (json: ArraySlice<UInt8>, payload: ArraySlice<UInt8>)? {
            guard buffer.count - start >= 4 else { return nil }
            let length = Int(buffer.loadLE32(at: start))
            guard buffer.count - start >= 4 + length else { return nil }
            let frame = Array(buffer[(start + 4)..<(start + 4 + length)])
            start += 4 + length
            let (header, attachment) = try WireFrame.split(frame)
            return (header, attachment)
        }

        /// Every complete frame that has arrived.
        package mutating func frames() throws -> [(json: ArraySlice<UInt8>, payload: ArraySlice<UInt8>)] {
            var frames: [(json: ArraySlice<UInt8>, payload: ArraySlice<UInt8>)] = []
            while let frame = try next() { frames.append(frame) }
            return frames
        }
    }
}

/// One line of the runner's stdout, as JSON: per instance, `begin` once the runner has the request,
/// log lines and steps while it runs, then exactly one result.
package enum RunnerMessage: Codable, Sendable {
    case begin(InstanceID)
    case log(LogLine)
    case steps([StepRecord])
    /// The payload defines these handler flows (an instance's own run only).
    case handlers([String])
    /// The ZIP of the files the run left under `_attachments/`, base64 (before the result).
    case attachments(String)
    /// The ZIP of where a suspended flow stands and its working folder, base64 (before the result).
    case state(String)
    /// Start a child instance; the runner waits for the `RunnerReply` on its stdin.
    case startChild(ChildStart)
    case result(RunnerResult)
}

/// The executor's answer to a runner's `startChild`: a `RunnerFrame` on the runner's stdin whose
/// header is this (and whose attachment is empty), the only frame that comes during a run.
package enum RunnerReply: Sendable, Codable, Equatable {
    /// The child is recorded (durably) with this id.
    case childStarted(InstanceID)
    /// It was not started, and why.
    case childRefused(String)

    package static func decode(_ json: [UInt8]) -> RunnerReply? {
        try? JSONDecoder().decode(RunnerReply.self, from: Data(json))
    }
}

extension RunnerMessage {
    /// This message as one line of JSON, by hand (a chatty flow writes one per log line): the bytes
    /// `JSONEncoder` writes with the house settings, or nil where it cannot promise them (a
    /// floating-point number; the caller then uses `JSONEncoder`).
    package var fastEncoded: [UInt8]? {
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
        case .attachments(let base64):
            written = out.unlabeledCase("attachments") {
                $0.string(base64)
                return true
            }
        case .state(let base64):
            written = out.unlabeledCase("state") {
                $0.string(base64)
                return true
            }
        case .startChild:
            // Rare: `JSONEncoder` writes it.
            return nil
        case .handlers(let flows):
            written = out.unlabeledCase("handlers") {
                $0.array(flows) { $0.string($1) }
                return true
            }
        case .result(let result):
            written = out.unlabeledCase("result") {
                $0.object {
                    $0.field("error", result.error)
                    guard $0.field("out", object: result.out) else { return false }
                    $0.field("reusable", result.reusable)
                    $0.field("suspended", result.suspended)
                    if let variables = result.variables { return $0.field("variables", object: variables) }
                    return true
                }
            }
        }
        return written ? out.bytes : nil
    }

    /// One line of a runner's stdout: the fast parser, with `JSONDecoder` as the fallback (and the
    /// reference: a test checks they agree on every kind of message).
    package static func decode(_ line: ArraySlice<UInt8>) -> RunnerMessage? {
        fastDecode(line) ?? (try? JSONDecoder().decode(RunnerMessage.self, from: Data(line)))
    }

    /// nil for anything it does not recognise (a fractional number included).
    package static func fastDecode(_ line: ArraySlice<UInt8>) -> RunnerMessage? {
        line.withUnsafeBytes { raw -> RunnerMessage? in
            guard case .object(let message)? = JSONNode.parse(raw), message.pairs.count == 1,
                let (kind, wrapped) = message.pairs.first, let value = wrapped.objectValue?["_0"]
            else { return nil }
            switch kind {
            case "begin": return value.stringValue.flatMap(InstanceID.init).map(RunnerMessage.begin)
            case "log": return FastEventDecoder.logLine(value).map(RunnerMessage.log)
            case "steps": return FastEventDecoder.stepRecords(value).map(RunnerMessage.steps)
            case "handlers": return value.strings.map(RunnerMessage.handlers)
            case "attachments": return value.stringValue.map(RunnerMessage.attachments)
            case "state": return value.stringValue.map(RunnerMessage.state)
            case "result":
                guard let result = value.objectValue, let error = result.optional("error", \.stringValue),
                    let out = result["out"]?.objectValue?.jsonObject, let reusable = result["reusable"]?.boolValue,
                    let variables = result.optional("variables", { $0.objectValue?.jsonObject }),
                    let suspended = result.optional("suspended", \.stringValue)
                else { return nil }
                return .result(
                    RunnerResult(
                        error: error, out: out, reusable: reusable, variables: variables, suspended: suspended))
            default: return nil
            }
        }
    }
}

/// How the flow ended.
package struct RunnerResult: Codable, Sendable {
    /// `nil` when it finished; the reason when it failed.
    package var error: String?
    /// The requested `out` variables.
    package var out: [String: JSONValue]
    /// The runner waits for another instance (it started no process and has served fewer than its
    /// share); otherwise it exits after this message.
    package var reusable = false
    /// Every variable as the flow failed, for its `onFailure` handler (only when it has one).
    package var variables: [String: JSONValue]?
    /// The flow suspended until this event (its state went out just before, `RunnerMessage.state`).
    package var suspended: String?

    package init(
        error: String?, out: [String: JSONValue], reusable: Bool = false, variables: [String: JSONValue]? = nil,
        suspended: String? = nil
    ) {
        self.error = error
        self.out = out
        self.reusable = reusable
        self.variables = variables
        self.suspended = suspended
    }
}

/// What one instance may use. Processes and memory are enforced per instance with control groups
/// where the executor may create them (cgroup v1 `pids`/`memory`, or v2); open files and file size
/// with rlimits set by the runner, which every script inherits.
package struct InstanceLimits: Sendable, Codable, Equatable {
    /// Processes and threads at once (a fork bomb stops here, inside its instance).
    package var maxProcesses: Int = 512
    /// Memory of the runner and everything it starts, in bytes.
    package var maxMemoryBytes: Int = 2 << 30
    /// Open files per process.
    package var maxOpenFiles: Int = 1024

    package init(maxProcesses: Int = 512, maxMemoryBytes: Int = 2 << 30, maxOpenFiles: Int = 1024) {
        self.maxProcesses = maxProcesses
        self.maxMemoryBytes = maxMemoryBytes
        self.maxOpenFiles = maxOpenFiles
    }
}
