// Past 400 lines on purpose: every process route of API.md (start, status, stop and cascade,
// children, wait, log, history, events, resume, attachments, the listing, the event feed), with the
// checks they share (visibility, Range, read-your-writes). Keys, log following, metrics and the
// console have files of their own.

import Archive
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import JSON
import Model
import ReadModels
import Wire

/// The HTTP API of API.md.
struct ProcessRoutes: Sendable {
    let client: any SchedulerLink
    let projection: GatewayProjection
    let parser: StartRequestParser
    let maxBodyBytes: Int

    func register(on api: RouterGroup<AccordRequestContext>) {
        api.post("v1/process") { request, context in try await start(request, context) }
        api.get("v1/process/:id") { _, context in try await status(context) }
        api.delete("v1/process/:id") { _, context in try await stop(context) }
        api.delete("v1/process/:id/cascade") { _, context in try await stop(context, cascade: true) }
        api.get("v1/process/:id/subprocess") { request, context in try await children(request, context) }
        api.get("v1/process/:id/wait") { request, context in try await wait(request, context) }
        api.get("v1/process/:id/waitForCompletion") { request, context in try await wait(request, context) }
        api.get("v1/process/:id/log") { request, context in try await log(request, context) }
        api.get("v1/process/:id/history") { _, context in try await history(context) }
        api.get("v1/process/:id/events") { request, context in try await events(request, context) }
        api.post("v1/process/:id/resume/:eventName") { request, context in try await resume(request, context) }
        api.get("v1/process/:id/attachment") { _, context in try await attachments(context) }
        api.get("v1/process/:id/attachment/**") { _, context in try await attachment(context) }
        api.get("v2/process") { request, context in try await list(request, context) }
        api.get("v1/events") { request, context in try await allEvents(request, context) }
    }

    /// `after=`: a sequence number, 0 when absent.
    private static func after(_ query: FlatDictionary<Substring, Substring>) throws -> UInt64 {
        try query["after"].map { raw -> UInt64 in
            guard let value = UInt64(String(raw)) else {
                throw APIError(.badRequest, "after must be a sequence number (0 or more)")
            }
            return value
        } ?? 0
    }

    /// `limit=`: positive, at most 1000.
    private static func limit(_ query: FlatDictionary<Substring, Substring>, default fallback: Int) throws -> Int {
        try query["limit"].map { raw -> Int in
            guard let value = Int(String(raw)), value > 0 else {
                throw APIError(.badRequest, "limit must be a positive number")
            }
            return min(value, 1000)
        } ?? fallback
    }

    // MARK: - The event stream (for `accord ... --url`)

    /// Every event after `after`, as stored (JSON Lines, the log's own encoding, keys sorted), at
    /// most `limit` (default 1000, at most 1000) per answer; `Accord-Head` is the durable head, so a
    /// reader knows when it has everything. Every team's events: admin keys only.
    private func allEvents(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        guard context.caller.admin else {
            throw APIError(.forbidden, "the whole event stream is for admin keys; this key belongs to a team")
        }
        let query = request.uri.queryParameters
        let after = try Self.after(query)
        let limit = try Self.limit(query, default: 1000)
        guard case .events(let events, let head) = try await ask(.catchUp(after: after, limit: limit)) else {
            throw APIError(.internalServerError, "the scheduler answered an events query unexpectedly")
        }
        var body = ByteBuffer()
        for envelope in events {
            body.writeBytes(try EventCodec.encode(envelope))
            body.writeInteger(UInt8(0x0A))
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/x-ndjson"
        if let name = HTTPField.Name("Accord-Head") { headers[name] = "\(head)" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    // MARK: - Start

    private func start(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        let mediaType = request.mediaType
        let multipart = mediaType == "multipart/form-data"
        if let mediaType, !multipart, mediaType != "application/octet-stream", mediaType != "application/zip" {
            throw APIError(
                .unsupportedMediaType,
                "send the ZIP archive as application/octet-stream (or application/zip), or as the archive part of multipart/form-data, not \(mediaType)"
            )
        }
        let boundary = try multipart ? MultipartStart.boundary(ofContentType: request.headers[.contentType]!) : nil
        var request = request
        let buffer = try await request.collectBody(upTo: maxBodyBytes)
        let parsed: StartRequestParser.Parsed
        let body: [UInt8]
        if let boundary {
            let start = MultipartStart(parser: parser)
            (parsed, body) = try start.upload(
                MultipartStart.parts(buffer, boundary: boundary, maxParts: parser.limits.maxEntries))
        } else {
            body = Array(buffer.readableBytesView)
            guard !body.isEmpty else { throw APIError(.badRequest, "the request body is empty; send a ZIP archive") }
            parsed = try parser.parse(body)
        }
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 256 {
            throw APIError(.badRequest, "Idempotency-Key must be 1 to 256 characters")
        }
        let command = StartInstance(
            requestID: .random(), entryPoint: parsed.entryPoint, arguments: parsed.arguments,
            timeoutMillis: parsed.timeoutMillis, out: parsed.out, tags: parsed.tags, idempotencyKey: idempotencyKey,
            principal: context.caller.principal, team: context.caller.team,
            handlerTimeoutMillis: parsed.handlerTimeoutMillis)
        switch try await ask(.start(command), attachment: body) {
        case .started(let id, _, let seq):
            await readYourWrite(seq)
            return JSONBody.response(.ok, ["ok": JSONBodyValue.bool(true), "instanceId": .string(id.description)])
        case .unavailable(let message):
            throw APIError(.serviceUnavailable, "\(message); nothing was recorded, retry with the same Idempotency-Key")
        case .rejected(let message):
            throw APIError(.badRequest, message)
        default:
            throw APIError(.internalServerError, "the scheduler answered a start unexpectedly")
        }
    }

    // MARK: - Reads

    private func instanceID(_ context: AccordRequestContext) throws -> InstanceID {
        let raw = context.parameters.get("id") ?? ""
        guard let id = InstanceID(raw) else {
            throw APIError(.notFound, "no process instance '\(raw)' (ids are UUIDs)")
        }
        return id
    }

    /// The instance's view once the projection has caught up at start-up, if the caller may see it:
    /// another team's instance is answered exactly as one that does not exist.
    private func existing(_ context: AccordRequestContext) async throws -> InstanceView {
        let id = try instanceID(context)
        try await awaitReady()
        guard let view = projection.view(id), context.caller.visibility.sees(view) else {
            throw APIError(.notFound, "no process instance \(id)")
        }
        return view
    }

    /// For a command or query the Scheduler answers: a team's key must see the instance here first
    /// (an admin's goes to the Scheduler, which may know an instance this Gateway has yet to see).
    private func visibleID(_ context: AccordRequestContext) async throws -> InstanceID {
        guard context.caller.admin else { return try await existing(context).id }
        return try instanceID(context)
    }

    private func awaitReady() async throws {
        guard await projection.awaitReady(within: .seconds(5)) else {
            throw APIError(.serviceUnavailable, "the gateway is still catching up with the event log; retry shortly")
        }
    }

    private func status(_ context: AccordRequestContext) async throws -> Response {
        JSONBody.response(.ok, JSONBody.status(try await existing(context)))
    }

    private func wait(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        var timeout: Duration?
        if let raw = request.uri.queryParameters["timeout"].map(String.init) {
            guard let millis = Int64(raw), millis >= 0 else {
                throw APIError(.badRequest, "timeout must be a whole number of milliseconds, 0 or more (got '\(raw)')")
            }
            if millis > 0 { timeout = .milliseconds(millis) }
        }
        let view = try await existing(context)
        if view.status.isTerminal { return JSONBody.response(.ok, JSONBody.status(view)) }
        if let done = await projection.waitTerminal(view.id, timeout: timeout) {
            return JSONBody.response(.ok, JSONBody.status(done))
        }
        var body = JSONBody.status(projection.view(view.id) ?? view)
        body["ok"] = .bool(false)
        body["message"] = .string("the wait timed out before the process reached a terminal status")
        return JSONBody.response(.requestTimeout, body)
    }

    /// `DELETE .../{id}`, and with `cascade` (`DELETE .../{id}/cascade`) every live instance it
    /// started too, down every generation (the Scheduler finds them: it knows every live child).
    private func stop(_ context: AccordRequestContext, cascade: Bool = false) async throws -> Response {
        let id = try await visibleID(context)
        try await awaitReady()
        let request: SchedulerRequest =
            cascade
            ? .cancelCascade(requestID: .random(), instanceID: id) : .cancel(requestID: .random(), instanceID: id)
        switch try await ask(request) {
        case .cancelled(.notLive, let seq):
            // Ended or never started: the Scheduler forgets ended instances, this read model does not.
            // Once it has applied everything up to the answer, it knows any instance that was started.
            await readYourWrite(seq)
            guard projection.view(id) != nil else { throw APIError(.notFound, "no process instance \(id)") }
            return Response(status: .noContent)
        case .cancelled(.cancelled, let seq):
            await readYourWrite(seq)
            return Response(status: .noContent)
        case .unavailable(let message):
            throw APIError(.serviceUnavailable, message)
        default:
            throw APIError(.internalServerError, "the scheduler answered a stop unexpectedly")
        }
    }

    private func log(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        let follow: Bool
        switch request.uri.queryParameters["follow"].map(String.init) {
        case nil, "false": follow = false
        case "true": follow = true
        case let other?: throw APIError(.badRequest, "follow must be true or false (got '\(other)')")
        }
        let view = try await existing(context)
        if follow { return try followLog(request, view) }
        let size = projection.logs.size(view.id)
        var headers: HTTPFields = [.contentType: "text/plain; charset=utf-8", .acceptRanges: "bytes"]
        guard let range = request.headers[.range] else {
            return Response(
                status: .ok, headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: projection.logs.read(view.id, from: 0, to: size))))
        }
        guard let (start, end) = ProcessRoutes.byteRange(range, size: size) else {
            var error = APIError(.rangeNotSatisfiable, "the Range '\(range)' does not fit a log of \(size) bytes")
            error.headers[.contentRange] = "bytes */\(size)"
            throw error
        }
        headers[.contentRange] = "bytes \(start)-\(end - 1)/\(size)"
        return Response(
            status: .partialContent, headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: projection.logs.read(view.id, from: start, to: end))))
    }

    /// A followed log, as Server-Sent Events when the client accepts them, resuming after
    /// `Last-Event-ID` (a line's end offset, from an earlier stream of the same instance).
    private func followLog(_ request: Request, _ view: InstanceView) throws -> Response {
        guard request.headers[.range] == nil else {
            throw APIError(
                .badRequest,
                "a followed log starts at its beginning; resume a stream with Last-Event-ID instead of Range")
        }
        let serverSentEvents = request.headers[.accept]?.contains("text/event-stream") == true
        var offset = 0
        if let raw = request.headers[HTTPField.Name("Last-Event-ID")!], !raw.isEmpty {
            guard serverSentEvents, let value = Int(raw), value >= 0 else {
                throw APIError(
                    .badRequest,
                    "Last-Event-ID must be the id of an event of this log's stream (Accept: text/event-stream), not '\(raw)'"
                )
            }
            let size = projection.logs.size(view.id)
            if value <= size && value > 0 && projection.logs.read(view.id, from: value - 1, to: value) != [0x0A] {
                throw APIError(.badRequest, "Last-Event-ID \(value) is not the end of a line of this log")
            }
            offset = value
        }
        return LogFollow(projection: projection, id: view.id, serverSentEvents: serverSentEvents, offset: offset)
            .response()
    }

    /// `bytes=a-b`, `bytes=a-` and `bytes=-n` as a half-open range clamped to `size`.
    static func byteRange(_ header: String, size: Int) -> (Int, Int)? {
        let spec = header.trimmingCharacters(in: .whitespaces)
        guard spec.hasPrefix("bytes="), !spec.contains(",") else { return nil }
        let parts = spec.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let tail = Int(parts[1]), tail > 0, size > 0 else { return nil }
            return (max(0, size - tail), size)
        }
        guard let first = Int(parts[0]), first < size else { return nil }
        let last = parts[1].isEmpty ? size - 1 : Int(parts[1])
        guard let last, last >= first else { return nil }
        return (first, min(last + 1, size))
    }

    private func history(_ context: AccordRequestContext) async throws -> Response {
        let view = try await existing(context)
        return JSONBody.response(.ok, ReadModelBodies.history(view))
    }

    /// `POST .../resume/{eventName}`: resumes a SUSPENDED instance waiting for that event. The body,
    /// if any, is a JSON object of variables to set (under `saveAs` when that is given, as the
    /// reference server nests it). Another event, or an instance not suspended, is 409.
    private func resume(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        let view = try await existing(context)
        let event = context.parameters.get("eventName") ?? ""
        guard !event.isEmpty, event.utf8.count <= 256 else {
            throw APIError(.badRequest, "the event name must be 1 to 256 characters")
        }
        if let type = request.mediaType, type != "application/json" {
            throw APIError(.unsupportedMediaType, "send the variables as application/json, not \(type)")
        }
        var request = request
        let body = Array(try await request.collectBody(upTo: 1 << 20).readableBytesView)
        var variables: [String: JSONValue] = [:]
        if !body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body)),
                let object = value.objectValue
            else {
                throw APIError(
                    .badRequest, #"the body must be a JSON object of variables to set, such as {"approved": true}"#)
            }
            variables = object
        }
        if let saveAs = request.uri.queryParameters["saveAs"].map(String.init), !saveAs.isEmpty {
            guard !saveAs.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
                throw APIError(.badRequest, "saveAs must be a variable name or a dotted path such as form.data")
            }
            var nested = JSONValue.object(variables)
            for part in saveAs.split(separator: ".").reversed() { nested = .object([String(part): nested]) }
            variables = nested.objectValue ?? [:]
        }
        guard !view.status.isTerminal else {
            throw APIError(
                .conflict, "process instance \(view.id) is \(view.status.rawValue): there is nothing to resume")
        }
        switch try await ask(.resume(requestID: .random(), instanceID: view.id, event: event, variables: variables)) {
        case .resumed(let seq):
            await readYourWrite(seq)
            return JSONBody.response(.ok, ["ok": JSONBodyValue.bool(true)])
        case .conflict(let message):
            throw APIError(.conflict, "process instance \(view.id) cannot be resumed with '\(event)': \(message)")
        case .unavailable(let message):
            throw APIError(.serviceUnavailable, "\(message); nothing was recorded, retry")
        default:
            throw APIError(.internalServerError, "the scheduler answered a resume unexpectedly")
        }
    }

    /// `GET .../attachment`: the names of the files the instance left under `_attachments/`, as the
    /// reference server lists them (empty until it has ended, or when it left none).
    private func attachments(_ context: AccordRequestContext) async throws -> Response {
        let view = try await existing(context)
        return JSONBody.response(.ok, view.attachments?.files.map(\.name) ?? [])
    }

    /// `GET .../attachment/{name}`: one of them, as bytes; read from the archive the Scheduler keeps
    /// with the payloads.
    private func attachment(_ context: AccordRequestContext) async throws -> Response {
        let view = try await existing(context)
        let name = context.parameters.getCatchAll().joined(separator: "/")
        guard !name.isEmpty, !name.hasSuffix("/") else {
            throw APIError(.badRequest, "an attachment's name is a file's path under _attachments/ (got '\(name)')")
        }
        guard let stored = view.attachments, stored.files.contains(where: { $0.name == name }) else {
            throw APIError(.notFound, "process instance \(view.id) has no attachment '\(name)'")
        }
        let (reply, bytes) = try await client.fetchOr503(.fetchBlob(digest: stored.archive.digest))
        guard case .blob(found: true) = reply else {
            throw APIError(.notFound, "the attachments of \(view.id) are no longer kept (retention removed them)")
        }
        let contents: [UInt8]
        do {
            let unpacked = stored.files.reduce(0) { $0 + $1.size }
            let archive = try ZipArchive(
                bytes: bytes, limits: ZipLimits(maxEntries: stored.files.count, maxUnpackedBytes: unpacked))
            guard let entry = archive.entry(name) else { throw ZipError.corrupt("no entry \(name)") }
            contents = try archive.contents(of: entry)
        } catch {
            throw APIError(.internalServerError, "the attachments of \(view.id) cannot be read: \(error)")
        }
        var headers: HTTPFields = [.contentType: "application/octet-stream"]
        let file = name.split(separator: "/").last.map(String.init) ?? name
        if file.allSatisfy({ $0.isASCII && $0 != "\"" && $0 != "\\" && !$0.isNewline }) {
            headers[.contentDisposition] = "attachment; filename=\"\(file)\""
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: contents)))
    }

    private func events(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        let view = try await existing(context)
        let query = request.uri.queryParameters
        let after = try Self.after(query)
        let limit = try Self.limit(query, default: 100)
        let seqs = Array(view.eventSeqs.lazy.filter { $0 > after }.prefix(limit))
        guard case .someEvents(let events) = try await ask(.readEvents(seqs: seqs)) else {
            throw APIError(.internalServerError, "the scheduler answered an events query unexpectedly")
        }
        let encoder = EventCodec.makeEncoder()
        let items: [JSONBodyValue] = events.map { envelope in
            let data = (try? encoder.encode(envelope)).flatMap { try? JSONDecoder().decode(JSONValue.self, from: $0) }
            let payload = data?.objectValue?["data"] ?? .object([:])
            return .object([
                "seq": .int(Int64(envelope.seq)), "type": .string(envelope.event.typeName),
                "at": .string(envelope.at.iso8601), "data": .json(payload),
            ])
        }
        return JSONBody.response(.ok, items)
    }

    /// `GET .../{id}/subprocess`: the instances it started, newest first (as a listing, all of
    /// them up to `limit`, default and most 1000).
    private func children(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        let parent = try await existing(context)
        return try await list(request, context, parent: parent.id)
    }

    private func list(_ request: Request, _ context: AccordRequestContext, parent: InstanceID? = nil) async throws
        -> Response
    {
        let query = request.uri.queryParameters
        var status: InstanceStatus?
        if let raw = query["status"].map(String.init), !raw.isEmpty {
            guard let parsed = InstanceStatus(rawValue: raw.uppercased()) else {
                throw APIError(
                    .badRequest,
                    "status must be one of \(InstanceStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            status = parsed
        }
        let limit = try Self.limit(query, default: parent == nil ? 30 : 1000)
        let offset =
            try query["offset"].map { raw -> Int in
                guard let value = Int(String(raw)), value >= 0 else {
                    throw APIError(.badRequest, "offset must be 0 or more")
                }
                return value
            } ?? 0
        // `tags`: the reference server's name for it on `/subprocess`.
        let tag = (query["tag"] ?? query["tags"]).map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        try await awaitReady()
        let views = try projection.list(
            status: status, tag: tag, visible: context.caller.visibility, parent: parent, limit: limit, offset: offset)
        return JSONBody.response(.ok, ReadModelBodies.listing(views))
    }

    // MARK: - Scheduler

    /// After a command, answer once this gateway's projection shows its effect, so a client's next
    /// read sees what it just did. Bounded: the command is durable either way.
    private func readYourWrite(_ seq: UInt64) async {
        _ = await projection.waitForHead(seq, timeout: .seconds(5))
    }

    private func ask(_ request: SchedulerRequest, attachment: [UInt8] = []) async throws -> SchedulerReply {
        try await client.ask(request, attachment: attachment)
    }
}
