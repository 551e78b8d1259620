import Foundation
import HTTPTypes
import Hummingbird
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

    @Test func aFollowerGetsWhatIsThereThenEachNewLineAndEndsWithTheInstance() async throws {
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
            let data = sse.split(separator: "\n").filter { $0.hasPrefix("data: ") }
            #expect(data.count == 5, "\(sse)")
            #expect(
                data.prefix(4).map { $0.hasSuffix("[INFO ] before") || $0.contains("during") } == [
                    true, true, true, true,
                ])
            #expect(sse.contains("event: status\ndata: {"))
            #expect(data.last?.contains(#""status":"FINISHED""#) == true)

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
