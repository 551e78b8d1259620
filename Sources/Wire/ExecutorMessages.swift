import Foundation
import JSON
import Model

/// An executor introducing itself (first contact, or again after a Scheduler restart).
package struct ExecutorRegistration: Sendable, Codable, Hashable {
    /// The executor (one boot of it).
    package var executorID: ExecutorID
    /// Where it listens for dispatch and cancel.
    package var address: String
    /// How many instances it runs at once.
    package var capacity: Int
    /// The instances it is running now.
    package var running: [InstanceID]

    package init(executorID: ExecutorID, address: String, capacity: Int, running: [InstanceID]) {
        self.executorID = executorID
        self.address = address
        self.capacity = capacity
        self.running = running
    }
}

/// What an executor saw happen to an instance.
package enum ReportKind: Sendable, Codable, Hashable {
    /// The runner started.
    case started
    /// The process wrote these lines.
    case log(lines: [LogLine])
    /// The flow executed these steps.
    case steps(records: [StepRecord])
    /// The flow ran to its end.
    case finished(out: [String: JSONValue])
    /// The flow failed, or could not start. `variables`: every variable as it failed, for the
    /// payload's `onFailure` handler (only when it has one).
    case failed(error: String, out: [String: JSONValue], variables: [String: JSONValue]? = nil)
    /// The payload defines these handler flows (sent once, before anything else of the flow).
    case handlers(flows: [String])
    /// The files the run left under `_attachments/`, stored (`ExecutorRequest.storeBlob`) before
    /// this report, which comes before the run's end.
    case attachments(archive: PayloadRef, files: [AttachmentFile])
    /// The flow stopped at `- suspend: event`; where it stands was stored (`storeBlob`) as `state`.
    case suspended(event: String, state: PayloadRef)
}

/// One report, numbered per executor boot so the Scheduler applies each once.
package struct Report: Sendable, Codable, Hashable {
    /// From 1, increasing by one per report.
    package var seq: UInt64
    /// The instance it is about.
    package var instanceID: InstanceID
    /// What happened.
    package var kind: ReportKind
    /// When the executor saw it.
    package var at: Timestamp
    /// The handler flow whose run this is about; `nil`: the instance's own run.
    package var handler: String?
    /// The dispatch attempt of that run: a report of an earlier attempt (an executor that came
    /// back on the same address ran a dispatch meant for its previous boot) is not the current run's.
    package var attempt: Int?

    package init(
        seq: UInt64, instanceID: InstanceID, kind: ReportKind, at: Timestamp, handler: String? = nil,
        attempt: Int? = nil
    ) {
        self.seq = seq
        self.instanceID = instanceID
        self.kind = kind
        self.at = at
        self.handler = handler
        self.attempt = attempt
    }
}

/// Executor → Scheduler, over req/rep.
package enum ExecutorRequest: Sendable, Codable {
    /// First contact, or again after the Scheduler forgot this executor.
    case register(ExecutorRegistration)
    /// Still alive.
    case heartbeat(executorID: ExecutorID)
    /// Reports in order; the reply acknowledges them once durable.
    case reports(executorID: ExecutorID, reports: [Report])
    /// Who answers: the executor's link, given every Scheduler, sends to the one that leads.
    case ping
    /// Store the frame's attachment (an archive of an instance's files) in the payload store.
    case storeBlob(executorID: ExecutorID)
    /// The flow of `parent` (dispatch `attempt`, running here) starts a child instance; a repeat
    /// with the same `requestID` is answered with the same child.
    case startChild(executorID: ExecutorID, parent: InstanceID, attempt: Int, requestID: RequestID, ChildStart)
}

/// Scheduler → Executor replies.
package enum ExecutorReply: Sendable, Codable {
    /// Everything up to this report sequence number is durable.
    case ack(upTo: UInt64)
    /// This Scheduler does not know the executor: register again, then resend.
    case unknownExecutor
    /// Could not record now (storage trouble): resend later.
    case unavailable(message: String)
    /// The answer to `ping`: the epoch this Scheduler leads in (0 on the file log).
    case pong(epoch: UInt64)
    /// The answer to `storeBlob`: where the bytes are kept, durably.
    case stored(PayloadRef)
    /// The answer to `startChild`: the child is recorded, durably.
    case childStarted(InstanceID)
    /// The answer to `startChild`: not started, and why (the parent no longer runs there, too deep).
    case childRefused(reason: String)
}

/// A resumed instance's run: the payload is followed, in the attachment, by the state its suspend
/// stored (where the flow stands, its working folder).
package struct Resumption: Sendable, Codable, Hashable {
    /// The event it was resumed with.
    package var event: String
    /// The variables the resume set.
    package var variables: [String: JSONValue]
    /// How many bytes of the attachment are the payload; the rest is the state.
    package var payloadBytes: Int
    /// Set when it resumes because the child it waited for ended.
    package var child: ChildOutcome?

    package init(event: String, variables: [String: JSONValue], payloadBytes: Int, child: ChildOutcome? = nil) {
        self.event = event
        self.variables = variables
        self.payloadBytes = payloadBytes
        self.child = child
    }
}

/// What an executor needs to run an instance; the ZIP travels as the frame's attachment.
package struct Dispatch: Sendable, Codable, Hashable {
    /// The instance.
    package var instanceID: InstanceID
    /// 1 for the first dispatch.
    package var attempt: Int
    /// `_main.json`'s `entryPoint`.
    package var entryPoint: String?
    /// `_main.json`'s `arguments`.
    package var arguments: [String: JSONValue]
    /// `_main.json`'s `out`.
    package var out: [String]
    /// Set for a handler's run: the handler flow (then also the entry point), which starts with
    /// `arguments` as its variables.
    package var handler: String?
    /// Set for a resumed instance's run.
    package var resume: Resumption?

    package init(
        instanceID: InstanceID, attempt: Int, entryPoint: String?, arguments: [String: JSONValue], out: [String],
        handler: String? = nil, resume: Resumption? = nil
    ) {
        self.instanceID = instanceID
        self.attempt = attempt
        self.entryPoint = entryPoint
        self.arguments = arguments
        self.out = out
        self.handler = handler
        self.resume = resume
    }
}

/// One of the runs an instance can have on an executor: its own, or a handler's after it ended.
package enum InstanceRun: Sendable, Codable, Hashable {
    case own
    case handler(String)

    /// The run a dispatch (or a report) with this `handler` is about.
    package init(handler: String?) { self = handler.map(InstanceRun.handler) ?? .own }
}

/// Scheduler → Executor, over req/rep (the executor listens).
package enum ExecutorCommand: Sendable, Codable {
    /// Run this instance.
    case dispatch(Dispatch)
    /// Kill this instance's runner and everything it started: `only` that run, and only a dispatch
    /// attempt up to `upTo` (a stop that arrives after its run ended must not kill the next one,
    /// the instance's handler or its next attempt); nil: any.
    case cancel(instanceID: InstanceID, only: InstanceRun? = nil, upTo: Int? = nil)
}

/// Executor → Scheduler replies to commands.
package enum ExecutorCommandReply: Sendable, Codable, Hashable {
    /// Taken on.
    case accepted
    /// Not taken on, and why (full, shutting down).
    case refused(reason: String)
}

// MARK: - Codecs: the per-instance messages, written and read by hand (see WireCodec.swift)

extension ExecutorRequest: FastWireEncodable {
    package var fastHeader: [UInt8]? {
        guard case .reports(let executorID, let reports) = self else { return nil }
        return ReportsCodec.reportsHeader(executorID: executorID, reports: reports)
    }
}

extension ExecutorRequest: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> ExecutorRequest? { ReportsCodec.reports(header) }
}

extension ExecutorCommand: FastWireEncodable {
    /// `dispatch`, sent once per instance.
    package var fastHeader: [UInt8]? {
        // A resumed run's dispatch is rare: `Codable` writes it.
        guard case .dispatch(let dispatch) = self, dispatch.resume == nil else { return nil }
        var out = JSONWriter()
        let written = out.unlabeledCase("dispatch") {
            $0.object {
                guard $0.field("arguments", object: dispatch.arguments) else { return false }
                $0.field("attempt", Int64(dispatch.attempt))
                $0.field("entryPoint", dispatch.entryPoint)
                $0.field("handler", dispatch.handler)
                $0.field("instanceID", dispatch.instanceID.description)
                $0.field("out", strings: dispatch.out)
                return true
            }
        }
        return written ? out.bytes : nil
    }
}

extension ExecutorCommand: FastWireDecodable {
    package static func fastDecode(_ header: ArraySlice<UInt8>) -> ExecutorCommand? {
        guard let (name, fields) = WireFrame.enumCase(header), name == "dispatch",
            let d = fields["_0"]?.objectValue, d["resume"] == nil,
            let arguments = d["arguments"]?.objectValue?.jsonObject,
            let attempt = d["attempt"]?.int, let out = d["out"]?.strings,
            let id = d["instanceID"]?.stringValue.flatMap(InstanceID.init),
            let entryPoint = d.optional("entryPoint", \.stringValue), let handler = d.optional("handler", \.stringValue)
        else { return nil }
        return .dispatch(
            Dispatch(
                instanceID: id, attempt: attempt, entryPoint: entryPoint, arguments: arguments, out: out,
                handler: handler))
    }
}

/// Hand-written JSON for the messages every instance sends several times (an executor's reports):
/// the same text `Codable` writes and reads, without its generic machinery, which was a tenth of
/// the executor's and the Scheduler's CPU under load. `Codable` stays the reference and the
/// fallback: a test checks both ways on every kind of report.
package enum ReportsCodec {
    /// The header JSON of `ExecutorRequest.reports`, or nil when a value is not one this writes
    /// exactly as `JSONEncoder` does (a floating-point number).
    package static func reportsHeader(executorID: ExecutorID, reports: [Report]) -> [UInt8]? {
        var out = JSONWriter(capacity: 128 + reports.count * 160)
        let written = out.object {
            $0.nested("reports") {
                $0.field("executorID", executorID.rawValue)
                $0.key("reports")
                return $0.array(reports) { writer, item in writer.object { report(item, &$0) } }
            }
        }
        return written ? out.bytes : nil
    }

    /// The members of one `Report`.
    private static func report(_ report: Report, _ out: inout JSONWriter) -> Bool {
        out.field("at", report.at.millis)
        out.field("attempt", report.attempt.map(Int64.init))
        out.field("handler", report.handler)
        out.field("instanceID", report.instanceID.description)
        let kind = out.nested("kind") {
            switch report.kind {
            case .started:
                $0.nested("started")
            case .log(let lines):
                $0.nested("log") {
                    $0.key("lines")
                    $0.array(lines) { $0.logLine($1) }
                    return true
                }
            case .steps(let records):
                $0.nested("steps") {
                    $0.key("records")
                    $0.array(records) { $0.stepRecord($1) }
                    return true
                }
            case .finished(let values):
                return $0.nested("finished") { $0.field("out", object: values) }
            case .failed(let error, let values, let variables):
                return $0.nested("failed") {
                    $0.field("error", error)
                    guard $0.field("out", object: values) else { return false }
                    if let variables { return $0.field("variables", object: variables) }
                    return true
                }
            case .handlers(let flows):
                $0.nested("handlers") {
                    $0.field("flows", strings: flows)
                    return true
                }
            case .suspended(let event, let state):
                $0.nested("suspended") {
                    $0.field("event", event)
                    $0.field("state", state)
                    return true
                }
            case .attachments(let archive, let files):
                $0.nested("attachments") {
                    $0.field("archive", archive)
                    $0.key("files")
                    $0.array(files) { writer, file in
                        _ = writer.object {
                            $0.field("name", file.name)
                            $0.field("size", Int64(file.size))
                            return true
                        }
                    }
                    return true
                }
            }
            return true
        }
        out.field("seq", report.seq)
        return kind
    }
}

extension ReportsCodec {
    /// `ExecutorRequest.reports` read back; nil for any other request or anything unexpected (the
    /// caller falls back to `JSONDecoder`).
    package static func reports(_ header: ArraySlice<UInt8>) -> ExecutorRequest? {
        header.withUnsafeBytes { raw -> ExecutorRequest? in
            guard case .object(let root)? = JSONNode.parse(raw), root.pairs.count == 1,
                let body = root["reports"]?.objectValue, let executor = body["executorID"]?.stringValue,
                case .array(let items)? = body["reports"]
            else { return nil }
            var reports: [Report] = []
            reports.reserveCapacity(items.count)
            for item in items {
                guard let r = item.objectValue, let at = r["at"]?.int64, let seq = r["seq"]?.uint64,
                    let handler = r.optional("handler", \.stringValue), let attempt = r.optional("attempt", \.int),
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
                    guard let error = fields["error"]?.stringValue, let values = fields["out"]?.objectValue?.jsonObject,
                        let variables = fields.optional("variables", { $0.objectValue?.jsonObject })
                    else { return nil }
                    kind = .failed(error: error, out: values, variables: variables)
                case "handlers":
                    guard let flows = fields["flows"]?.strings else { return nil }
                    kind = .handlers(flows: flows)
                case "suspended":
                    guard let event = fields["event"]?.stringValue,
                        let state = fields["state"].flatMap(FastEventDecoder.payloadRef)
                    else { return nil }
                    kind = .suspended(event: event, state: state)
                case "attachments":
                    guard let archive = fields["archive"].flatMap(FastEventDecoder.payloadRef),
                        let files = fields["files"].flatMap(FastEventDecoder.attachmentFiles)
                    else { return nil }
                    kind = .attachments(archive: archive, files: files)
                default:
                    return nil
                }
                reports.append(
                    Report(
                        seq: seq, instanceID: id, kind: kind, at: Timestamp(millis: at), handler: handler,
                        attempt: attempt))
            }
            return .reports(executorID: ExecutorID(executor), reports: reports)
        }
    }
}
