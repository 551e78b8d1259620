import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import JSON
import Model
import NIOCore
import TestSupport
import Testing
import Wire

@testable import Gateway

/// The pure part of a followed log: lines as Server-Sent Events.
@Suite struct LogFollowEventTests {
    @Test func eachLineIsOneEventWhoseIdIsTheOffsetPastIt() {
        var out = ByteBuffer()
        LogFollow.events(Array("ab\nc\rd\n\n".utf8), startingAt: 10, into: &out)
        #expect(String(buffer: out) == "id: 13\ndata: ab\n\nid: 17\ndata: c\ndata: d\n\nid: 18\ndata: \n\n")
    }
}

/// A whole `text/event-stream` body as (event name, data) pairs, comments left out.
func serverSentEvents(_ text: String) -> [(name: String, data: String)] {
    text.components(separatedBy: "\n\n").compactMap { block in
        var name = "message"
        var data: [String] = []
        for line in block.components(separatedBy: "\n") {
            if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
        return data.isEmpty ? nil : (name, data.joined(separator: "\n"))
    }
}

/// The stream of `aFollowerGetsWhatIsThereThenEachNewLineAndEndsWithTheInstance`: its four lines
/// in order and the final status; before it, the status each time the Gateway saw it move (how
/// many times depends on how far its projection was when the stream began), never backwards.
func checkFollowedStream(_ sse: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let events = serverSentEvents(sse)
    var lines: [String] = []
    var shown: [Int] = []
    let order = ["ENQUEUED", "STARTING", "RUNNING"]
    for event in events {
        switch event.name {
        case "message": lines.append(String(event.data.split(separator: "] ").last ?? ""))
        case "progress":
            if let rank = order.firstIndex(where: { event.data.contains("\"status\":\"\($0)\"") }) {
                shown.append(rank)
            }
        default: break
        }
    }
    #expect(lines == ["before", "during 1", "during 2", "during 3"], sourceLocation: sourceLocation)
    #expect(
        !shown.isEmpty && shown == shown.sorted() && Set(shown).count == shown.count, sourceLocation: sourceLocation)
    #expect(events.last?.name == "status", sourceLocation: sourceLocation)
    #expect(events.last?.data.contains("\"status\":\"FINISHED\"") == true, sourceLocation: sourceLocation)
}

/// What a follower's client receives, piece by piece, as it is written.
private final class RecordingWriter: ResponseBodyWriter, @unchecked Sendable {
    // Written by the one follow task, read by the test through `received` (under the lock).
    private let lock = NSLock()
    private var pieces: [String] = []

    var received: String { lock.withLock { pieces.joined() } }

    func write(_ buffer: ByteBuffer) async throws { lock.withLock { pieces.append(String(buffer: buffer)) } }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// The follower against the projection itself: each line reaches the client while the instance
/// still runs (pushed by its doorbell, not collected at the end), and the stream ends with it.
@Suite struct LogFollowPushTests {
    @Test(.timeLimit(.minutes(1))) func eachLineIsWrittenAsItIsAppliedWhileTheInstanceRuns() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        // No heartbeat within the test: only the doorbell can bring a line.
        let projection = try GatewayProjection(directory: dir, heartbeat: .seconds(3600))
        let id = InstanceID()
        var seq: UInt64 = 0
        func apply(_ event: Event) {
            seq += 1
            _ = projection.apply([EventEnvelope(seq: seq, instanceID: id, at: .now(), event: event)])
        }
        apply(
            .instanceCreated(
                InstanceCreated(
                    entryPoint: "main", arguments: [:], timeoutMillis: nil, out: [], tags: [],
                    payload: PayloadRef(digest: "d", size: 1), idempotencyKey: nil, principal: nil)))
        apply(.instanceStarted(InstanceStarted(executorID: ExecutorID("memory/1"))))
        let writer = RecordingWriter()
        let follow = LogFollow(projection: projection, id: id, serverSentEvents: true, offset: 0)
        let streaming = Task {
            var sink = writer
            try await follow.stream(to: &sink)
        }
        #expect(await eventually { writer.received.contains(#"event: progress\#ndata: {"#) })
        #expect(writer.received.contains(#""status":"RUNNING""#))
        for n in 1...3 {
            apply(.logAppended(LogAppended(lines: [LogLine(at: .now(), level: .info, text: "line \(n)")])))
            #expect(await eventually { writer.received.contains("line \(n)") }, "line \(n) was not pushed")
        }
        #expect(!writer.received.contains("event: status"))
        apply(.instanceFinished(InstanceFinished(out: [:])))
        try await streaming.value
        #expect(writer.received.hasSuffix("\n\n") && writer.received.contains("event: status\ndata: {"))
    }
}

/// `?follow=true` through the router, over the in-memory Scheduler. The test client collects a
/// whole answer, so these check what a stream holds and that it ends; the black-box suite reads
/// lines as they arrive.
extension RouterTests {
    private func logLine(_ text: String) -> Event {
        .logAppended(LogAppended(lines: [LogLine(at: .now(), level: .info, text: text)]))
    }

    private func running(_ scheduler: InMemoryScheduler, _ id: InstanceID) async {
        let executor = ExecutorID("memory/1")
        await scheduler.record(
            id,
            [
                .instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)),
                .instanceStarted(InstanceStarted(executorID: executor)),
            ])
    }

    /// Without a ring for each line and for the end, the stream would never end: the time limit
    /// turns that hang into a failure.
    @Test(.timeLimit(.minutes(1))) func aFollowerGetsWhatIsThereThenEachNewLineAndEndsWithTheInstance() async throws {
        try await withGateway { client, scheduler in
            let id = try await start(client)
            await running(scheduler, id)
            await scheduler.record(id, [logLine("before")])
            let writer = Task {
                // Lines written while the follower waits: each rings its doorbell.
                for n in 1...3 {
                    try await Task.sleep(for: .milliseconds(50))
                    await scheduler.record(id, [logLine("during \(n)")])
                }
                try await Task.sleep(for: .milliseconds(50))
                await scheduler.record(id, [.instanceFinished(InstanceFinished(out: [:]))])
            }
            defer { writer.cancel() }
            let sse = try await client.execute(
                uri: "/api/v1/process/\(id)/log?follow=true", method: .get,
                headers: auth + [.accept: "text/event-stream"]
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/event-stream") == true)
                return String(buffer: response.body)
            }
            checkFollowedStream(sse)

            // A reconnect after the second line's id gets only what follows it.
            let ids = sse.split(separator: "\n").filter { $0.hasPrefix("id: ") }.map { $0.dropFirst(4) }
            let resumed = try await client.execute(
                uri: "/api/v1/process/\(id)/log?follow=true", method: .get,
                headers: auth + [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: String(ids[1])]
            ) { String(buffer: $0.body) }
            #expect(
                resumed.split(separator: "\n").filter { $0.hasPrefix("data: ") && $0.contains("during") }.count == 2)

            // Plain text: the log's bytes, ending with it.
            try await client.execute(uri: "/api/v1/process/\(id)/log?follow=true", method: .get, headers: auth) {
                response in
                #expect(response.headers[.contentType] == "text/plain; charset=utf-8")
                #expect(String(buffer: response.body).split(separator: "\n").count == 4)
            }
        }
    }

    @Test func badFollowRequestsAre4xx() async throws {
        try await withGateway { client, scheduler in
            let id = try await start(client)
            await scheduler.finish(id, log: ["one", "two"])
            _ = try await client.execute(uri: "/api/v1/process/\(id)/wait", method: .get, headers: auth) { _ in }
            let cases: [(String, HTTPFields, HTTPResponse.Status)] = [
                ("follow=yes", [:], .badRequest),
                ("follow=true", [.range: "bytes=0-"], .badRequest),
                ("follow=true", [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "abc"], .badRequest),
                ("follow=true", [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "3"], .badRequest),
                ("follow=true", [HTTPField.Name("Last-Event-ID")!: "0"], .badRequest),
            ]
            for (query, headers, status) in cases {
                try await client.execute(
                    uri: "/api/v1/process/\(id)/log?\(query)", method: .get, headers: auth + headers
                ) { response in
                    #expect(response.status == status, "\(query) \(headers)")
                    let ok = try json(response)["ok"]
                    #expect(ok == .bool(false))
                }
            }
            try await client.execute(
                uri: "/api/v1/process/\(InstanceID())/log?follow=true", method: .get, headers: auth
            ) { #expect($0.status == .notFound) }
        }
    }
}
