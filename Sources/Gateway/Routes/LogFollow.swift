import HTTPTypes
import Hummingbird
import Model
import NIOCore
import ReadModels
import ServiceLifecycle

/// `GET /api/v1/process/{id}/log?follow=true` (API.md "Following a log"): what the log holds from
/// `offset`, then each piece as the projection applies it, ending once the instance is terminal
/// and everything is sent. Pushed, never polled: the follower sleeps on its instance's doorbell,
/// which the projection rings when a log piece or the terminal event is applied, and a terminal
/// status is applied only after every log piece before it, so the last lines are never missed.
///
/// As `text/event-stream`, one event per line whose `id` is the byte offset just past that line
/// (a reconnect passes it back in `Last-Event-ID` and resumes after it, on any Gateway: each
/// renders an instance's log byte for byte the same), an `event: progress` with the status body
/// first and at each status change before the end (so a page shows RUNNING without asking), a
/// comment each heartbeat while nothing happens, and a last `event: status` with the status body.
/// As plain text, the bytes themselves.
struct LogFollow: Sendable {
    let projection: GatewayProjection
    let id: InstanceID
    let serverSentEvents: Bool
    let offset: Int

    func response() -> Response {
        var headers: HTTPFields = [.cacheControl: "no-cache"]
        headers[.contentType] = serverSentEvents ? "text/event-stream; charset=utf-8" : "text/plain; charset=utf-8"
        if let name = HTTPField.Name("X-Accel-Buffering") { headers[name] = "no" }
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await stream(to: &writer)
                try await writer.finish(nil)
            })
    }

    /// The stream's body, written to `writer` as it happens (what `response()` serves).
    func stream(to writer: inout some ResponseBodyWriter) async throws {
        let (token, rings) = projection.doorbells.listen(id)
        defer { projection.doorbells.stop(id, token) }
        // A Gateway that stops ends its followers (their clients reconnect elsewhere) instead of
        // waiting for instances that may run for days.
        try await withGracefulShutdownHandler {
            var sent = offset
            var shownStatus: InstanceStatus?
            var pending = rings.makeAsyncIterator()
            while true {
                // Read before the log: a terminal status is applied after every line before it.
                let view = projection.view(id)
                let size = projection.logs.size(id)
                var out = ByteBuffer()
                if size > sent {
                    let bytes = projection.logs.read(id, from: sent, to: size)
                    if serverSentEvents {
                        LogFollow.events(bytes, startingAt: sent, into: &out)
                    } else {
                        out.writeBytes(bytes)
                    }
                    sent = size
                }
                if let view, view.status.isTerminal {
                    if serverSentEvents { LogFollow.statusEvent("status", view, into: &out) }
                    if out.readableBytes > 0 { try await writer.write(out) }
                    return
                }
                if serverSentEvents, let view, view.status != shownStatus {
                    LogFollow.statusEvent("progress", view, into: &out)
                    shownStatus = view.status
                }
                if out.readableBytes == 0 && serverSentEvents { out.writeString(": waiting\n\n") }
                if out.readableBytes > 0 { try await writer.write(out) }
                guard await pending.next() != nil else { return }
            }
        } onGracefulShutdown: {
            projection.doorbells.stop(id, token)
        }
    }

    static func statusEvent(_ name: String, _ view: InstanceView, into out: inout ByteBuffer) {
        out.writeString("event: \(name)\ndata: ")
        out.writeBytes(ReadModelBodies.encode(ReadModelBodies.status(view)))
        out.writeString("\n\n")
    }

    /// One event per line of `text` (whole lines, as the log store holds them), each with the
    /// offset just past it as its id. A carriage return inside a line would end an SSE field, so
    /// it starts another `data:` field instead.
    static func events(_ text: [UInt8], startingAt start: Int, into out: inout ByteBuffer) {
        var lineStart = 0
        for (index, byte) in text.enumerated() where byte == 0x0A {
            out.writeString("id: \(start + index + 1)\ndata: ")
            for piece in text[lineStart..<index].split(separator: 0x0D, omittingEmptySubsequences: false).enumerated() {
                if piece.offset > 0 { out.writeString("\ndata: ") }
                out.writeBytes(piece.element)
            }
            out.writeString("\n\n")
            lineStart = index + 1
        }
    }
}
