import Archive
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JSON
import Logging
import Model
import Prometheus
import ReadModels
import TestSupport
import Testing
import Wire

@testable import Gateway

/// Every route and status of API.md, in process: the real router, projection and event feed over
/// an in-memory Scheduler (`InMemoryScheduler`), driven through HummingbirdTesting. What needs the
/// real binaries (request read deadlines, sockets, processes) is in `IntegrationTests`.
@Suite struct RouterTests {
    static let key = "router-test-key"
    let auth: HTTPFields = [.authorization: "Bearer \(RouterTests.key)"]

    /// A Gateway (router, projection, event feed) over a fresh in-memory Scheduler.
    func withGateway(
        maxBodyBytes: Int = 1 << 20, maxUnpackedBytes: Int = 1 << 20,
        _ body: @escaping @Sendable (any TestClientProtocol, InMemoryScheduler) async throws -> Void
    ) async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let scheduler = InMemoryScheduler()
        let projection = try GatewayProjection(directory: dir)
        let feed = EventFeed(
            source: scheduler.source, client: scheduler, projection: projection, logger: Logger(label: "router-test"))
        let feeding = Task { try await feed.run() }
        defer {
            scheduler.source.close()
            feeding.cancel()
        }
        let router = buildRouter(
            link: scheduler, projection: projection, keys: try APIKeys(file: dir + "/no-keys", extra: [Self.key]),
            registry: PrometheusCollectorRegistry(),
            limits: ZipLimits(maxEntries: 100, maxUnpackedBytes: maxUnpackedBytes), maxBodyBytes: maxBodyBytes)
        try await Application(router: router).test(.router) { client in try await body(client, scheduler) }
    }

    func json(_ response: TestResponse) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: response.body))
        else { throw APIError(.internalServerError, "not a JSON object") }
        return object
    }

    /// Starts the hello-world payload; its instance id.
    func start(_ client: some TestClientProtocol, headers: HTTPFields = [:]) async throws -> InstanceID {
        var all = auth
        all.append(contentsOf: headers)
        all[.contentType] = "application/octet-stream"
        let zip = ZipBuilder.payload("main:\n- log: hi\n")
        return try await client.execute(
            uri: "/api/v1/process", method: .post, headers: all, body: ByteBuffer(bytes: zip)
        ) { response in
            #expect(response.status == .ok)
            let body = try json(response)
            return try #require(
                body["instanceId"].flatMap { if case .string(let s) = $0 { InstanceID(s) } else { nil } })
        }
    }

    @Test func pingIsAnonymousAndEveryAPIRouteNeedsAKey() async throws {
        try await withGateway { client, _ in
            try await client.execute(uri: "/api/v1/server/ping", method: .get) { #expect($0.status == .ok) }
            for (uri, method) in [
                ("/api/v1/process", HTTPRequest.Method.post), ("/api/v1/process/\(InstanceID())", .get),
                ("/api/v2/process", .get), ("/api/v1/process/\(InstanceID())", .delete),
            ] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .unauthorized, "\(method) \(uri)")
                    #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                }
                try await client.execute(uri: uri, method: method, headers: [.authorization: "wrong"]) {
                    #expect($0.status == .unauthorized)
                }
            }
        }
    }

    /// read-your-writes: the status right after a start answers, never 404.
    @Test func aStartIsReadAtOnceAndRunsToItsEnd() async throws {
        try await withGateway { client, scheduler in
            let id = try await start(client)
            try await client.execute(uri: "/api/v1/process/\(id)", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let field = try json(response)["status"]
                #expect(field == .string("ENQUEUED"))
            }
            await scheduler.finish(id, log: ["Hello, world"], out: ["x": .int(1)])
            try await client.execute(uri: "/api/v1/process/\(id)/wait?timeout=60000", method: .get, headers: auth) {
                response in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["status"] == .string("FINISHED"))
            }
            try await client.execute(uri: "/api/v1/process/\(id)/log", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).hasSuffix("[INFO ] Hello, world\n"))
            }
            try await client.execute(uri: "/api/v1/process/\(id)/history", method: .get, headers: auth) {
                #expect($0.status == .ok)
                #expect(String(buffer: $0.body).contains("FINISHED"))
            }
            try await client.execute(uri: "/api/v2/process?status=FINISHED", method: .get, headers: auth) {
                #expect($0.status == .ok)
                #expect(String(buffer: $0.body).contains(id.description))
            }
        }
    }

    @Test func badStartsAreRefusedAndRecordNothing() async throws {
        try await withGateway(maxBodyBytes: 4096) { client, scheduler in
            var headers = auth
            headers[.contentType] = "application/octet-stream"
            let cases: [(String, [UInt8], HTTPFields, HTTPResponse.Status)] = [
                ("not a zip", Array("hello".utf8), headers, .badRequest),
                ("empty", [], headers, .badRequest),
                ("too big", [UInt8](repeating: 7, count: 8192), headers, .contentTooLarge),
                ("json", Array("{}".utf8), auth + [.contentType: "application/json"], .unsupportedMediaType),
                (
                    "empty Idempotency-Key", ZipBuilder.payload("main:\n- log: hi\n"),
                    headers + [HTTPField.Name("Idempotency-Key")!: ""], .badRequest
                ),
            ]
            for (name, body, headers, status) in cases {
                try await client.execute(
                    uri: "/api/v1/process", method: .post, headers: headers, body: ByteBuffer(bytes: body)
                ) { response in
                    #expect(response.status == status, "\(name)")
                    let field = try json(response)["ok"]
                    #expect(field == .bool(false), "\(name)")
                }
            }
            #expect(await scheduler.starts.isEmpty)
            #expect(await scheduler.head == 0)
        }
    }

    @Test func anUnpackedSizeOverTheLimitIs413() async throws {
        try await withGateway(maxUnpackedBytes: 1000) { client, scheduler in
            var zip = ZipBuilder()
            zip.add("_main.json", #"{"entryPoint": "main"}"#)
            zip.add("processes/main.yml", "main:\n- log: hi\n")
            zip.add("big.txt", String(repeating: "a", count: 100_000))
            try await client.execute(
                uri: "/api/v1/process", method: .post, headers: auth + [.contentType: "application/zip"],
                body: ByteBuffer(bytes: zip.build())
            ) { #expect($0.status == .contentTooLarge) }
            #expect(await scheduler.head == 0)
        }
    }

    @Test func theSameIdempotencyKeyAnswersTheFirstInstance() async throws {
        try await withGateway { client, scheduler in
            let key: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "once"]
            let first = try await start(client, headers: key)
            let second = try await start(client, headers: key)
            #expect(first == second)
            #expect(await scheduler.head == 1)
        }
    }

    @Test func unknownAndMalformedIdsAre404() async throws {
        try await withGateway { client, _ in
            for id in ["\(InstanceID())", "not-a-uuid"] {
                for suffix in ["", "/wait", "/log", "/history", "/events"] {
                    try await client.execute(uri: "/api/v1/process/\(id)\(suffix)", method: .get, headers: auth) {
                        #expect($0.status == .notFound, "\(id)\(suffix)")
                    }
                }
                try await client.execute(uri: "/api/v1/process/\(id)", method: .delete, headers: auth) {
                    #expect($0.status == .notFound)
                }
            }
        }
    }

    @Test func waitTimesOutWith408AndTheCurrentStatus() async throws {
        try await withGateway { client, _ in
            let id = try await start(client)
            try await client.execute(uri: "/api/v1/process/\(id)/wait?timeout=50", method: .get, headers: auth) {
                response in
                #expect(response.status == .requestTimeout)
                let field = try json(response)["status"]
                #expect(field == .string("ENQUEUED"))
            }
            for bad in ["-1", "soon", "1.5"] {
                try await client.execute(uri: "/api/v1/process/\(id)/wait?timeout=\(bad)", method: .get, headers: auth)
                {
                    #expect($0.status == .badRequest, "\(bad)")
                }
            }
        }
    }

    @Test func stopIs204ThenTerminalAndAgain204() async throws {
        try await withGateway { client, scheduler in
            let id = try await start(client)
            try await client.execute(uri: "/api/v1/process/\(id)", method: .delete, headers: auth) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/api/v1/process/\(id)", method: .get, headers: auth) {
                let field = try json($0)["status"]
                #expect(field == .string("CANCELLED"))
            }
            let head = await scheduler.head
            try await client.execute(uri: "/api/v1/process/\(id)", method: .delete, headers: auth) {
                #expect($0.status == .noContent)
            }
            #expect(await scheduler.head == head)
        }
    }

    /// `/subprocess` lists a parent's children (newest first, with `parentInstanceId`); a cascade
    /// stop ends the parent and every generation below it; unknown ids are 404.
    @Test func childrenAreListedAndStoppedWithTheirParent() async throws {
        try await withGateway { client, scheduler in
            let parent = try await start(client)
            let first = await scheduler.startChild(of: parent)
            let second = await scheduler.startChild(of: parent, tags: ["b"])
            let grandchild = await scheduler.startChild(of: first)
            func children(_ id: InstanceID, _ query: String = "") async throws -> [String] {
                try await client.execute(uri: "/api/v1/process/\(id)/subprocess\(query)", method: .get, headers: auth) {
                    #expect($0.status == .ok)
                    guard case .array(let items) = try JSONDecoder().decode(JSONValue.self, from: Data(buffer: $0.body))
                    else { return [] }
                    return items.compactMap {
                        guard case .object(let o) = $0, case .string(let id)? = o["instanceId"] else { return nil }
                        #expect(o["parentInstanceId"] != nil)
                        return id
                    }
                }
            }
            // Published, not yet applied: once the last is seen, all are (in order).
            for _ in 0..<200 {
                let seen = try await client.execute(
                    uri: "/api/v1/process/\(grandchild)", method: .get, headers: auth
                ) { $0.status == .ok }
                if seen { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await children(parent) == [second.description, first.description])
            #expect(try await children(parent, "?limit=1&offset=1") == [first.description])
            #expect(try await children(parent, "?tags=b") == [second.description])
            #expect(try await children(first) == [grandchild.description])
            #expect(try await children(grandchild).isEmpty)
            try await client.execute(uri: "/api/v1/process/\(first)", method: .get, headers: auth) {
                let field = try json($0)["parentInstanceId"]
                #expect(field == .string(parent.description))
            }
            for bad in ["/api/v1/process/\(InstanceID())/subprocess", "/api/v1/process/nope/subprocess"] {
                try await client.execute(uri: bad, method: .get, headers: auth) { #expect($0.status == .notFound) }
            }
            try await client.execute(uri: "/api/v1/process/\(parent)/subprocess?limit=0", method: .get, headers: auth) {
                #expect($0.status == .badRequest)
            }

            try await client.execute(uri: "/api/v1/process/\(parent)/cascade", method: .delete, headers: auth) {
                #expect($0.status == .noContent)
            }
            for id in [parent, first, second, grandchild] {
                try await client.execute(uri: "/api/v1/process/\(id)", method: .get, headers: auth) {
                    let field = try json($0)["status"]
                    #expect(field == .string("CANCELLED"), "\(id)")
                }
            }
            let head = await scheduler.head
            try await client.execute(uri: "/api/v1/process/\(parent)/cascade", method: .delete, headers: auth) {
                #expect($0.status == .noContent)
            }
            #expect(await scheduler.head == head, "already stopped: nothing changes")
            try await client.execute(uri: "/api/v1/process/\(InstanceID())/cascade", method: .delete, headers: auth) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test func logRangesAre206AndOutOfRangeIs416() async throws {
        try await withGateway { client, scheduler in
            let id = try await start(client)
            await scheduler.finish(id, log: ["first line", "second line"])
            try await client.execute(uri: "/api/v1/process/\(id)/wait", method: .get, headers: auth) {
                #expect($0.status == .ok)
            }
            let whole = try await client.execute(uri: "/api/v1/process/\(id)/log", method: .get, headers: auth) {
                String(buffer: $0.body)
            }
            let size = whole.utf8.count
            try await client.execute(
                uri: "/api/v1/process/\(id)/log", method: .get, headers: auth + [.range: "bytes=0-9"]
            ) { response in
                #expect(response.status == .partialContent)
                #expect(response.headers[.contentRange] == "bytes 0-9/\(size)")
                #expect(String(buffer: response.body) == String(whole.prefix(10)))
            }
            try await client.execute(
                uri: "/api/v1/process/\(id)/log", method: .get, headers: auth + [.range: "bytes=-12"]
            ) {
                response in
                #expect(response.status == .partialContent)
                #expect(String(buffer: response.body) == "second line\n")
            }
            try await client.execute(
                uri: "/api/v1/process/\(id)/log", method: .get, headers: auth + [.range: "bytes=\(size + 10)-"]
            ) { response in
                #expect(response.status == .rangeNotSatisfiable)
                #expect(response.headers[.contentRange] == "bytes */\(size)")
            }
        }
    }

    /// Publications the Gateway never received leave a gap; the next one it does receive makes it
    /// catch up over the command link, and nothing is missing.
    @Test func aGapInThePublicationsIsCaughtUp() async throws {
        try await withGateway { client, scheduler in
            let id = try await start(client)
            await scheduler.losePublications(1)
            await scheduler.record(
                id, [.instanceAssigned(InstanceAssigned(executorID: ExecutorID("memory/1"), attempt: 1))])
            await scheduler.finish(InstanceID(), out: [:])  // another instance's events arrive
            await scheduler.record(id, [.instanceStarted(InstanceStarted(executorID: ExecutorID("memory/1")))])
            let caughtUp = await eventually {
                (try? await client.execute(uri: "/api/v1/process/\(id)", method: .get, headers: auth) {
                    try json($0)["status"]
                }) == .string("RUNNING")
            }
            #expect(caughtUp)
            try await client.execute(uri: "/api/v1/process/\(id)/history", method: .get, headers: auth) {
                #expect(String(buffer: $0.body).contains("STARTING"))
            }
        }
    }

    @Test func withoutASchedulerAStartIs503AndNothingIsRecorded() async throws {
        try await withGateway { client, scheduler in
            _ = try await start(client)  // the projection is ready
            await scheduler.setReachable(false)
            try await client.execute(
                uri: "/api/v1/process", method: .post, headers: auth + [.contentType: "application/octet-stream"],
                body: ByteBuffer(bytes: ZipBuilder.payload("main:\n- log: hi\n"))
            ) { response in
                #expect(response.status == .serviceUnavailable)
                let field = try json(response)["ok"]
                #expect(field == .bool(false))
            }
            #expect(await scheduler.head == 1)
        }
    }
}

extension HTTPFields {
    static func + (lhs: HTTPFields, rhs: HTTPFields) -> HTTPFields {
        var all = lhs
        all.append(contentsOf: rhs)
        return all
    }
}
