import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JSON
import Model
import TestSupport
import Testing

@testable import Gateway

/// `/api/v1/apikey` and team scoping, in process: every answer of API.md "API keys and teams".
extension RouterTests {
    /// Makes a key through the API with the configured (admin) key; its id and secret.
    func makeKey(
        _ client: some TestClientProtocol, name: String, team: String?, admin: Bool = false
    ) async throws -> (id: String, secret: String) {
        var body: [String: JSONValue] = ["name": .string(name), "admin": .bool(admin)]
        if let team { body["team"] = .string(team) }
        return try await client.execute(
            uri: "/api/v1/apikey", method: .post, headers: auth + [.contentType: "application/json"],
            body: ByteBuffer(data: try JSONEncoder().encode(JSONValue.object(body)))
        ) { response in
            #expect(response.status == .created, "\(String(buffer: response.body))")
            let answer = try json(response)
            #expect(answer["ok"] == .bool(true))
            #expect(answer["name"] == .string(name))
            #expect(answer["team"] == (team.map { .string($0) } ?? .null))
            let id = try #require(answer["id"]?.stringValue)
            let secret = try #require(answer["key"]?.stringValue)
            #expect(secret.count >= 40)
            return (id, secret)
        }
    }

    func bearer(_ secret: String) -> HTTPFields { [.authorization: "Bearer \(secret)"] }

    @Test func anAdminMakesListsAndRevokesKeysAndTheSecretIsShownOnce() async throws {
        try await withGateway { client, scheduler in
            let made = try await makeKey(client, name: "ci-bot", team: "payments")
            // The log holds the hash, never the secret.
            let recorded = await scheduler.log.last
            guard case .apiKeyCreated(let created)? = recorded?.event else {
                Issue.record("no ApiKeyCreated: \(String(describing: recorded))")
                return
            }
            #expect(created.hash == Hex.encode(APIKeys.digest(made.secret)))
            #expect(!"\(String(describing: recorded))".contains(made.secret))
            try await client.execute(uri: "/api/v1/apikey", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(!text.contains(made.secret) && !text.contains(created.hash))
                let keys = try JSONDecoder().decode([[String: JSONValue]].self, from: Data(buffer: response.body))
                #expect(keys.count == 1)
                #expect(Set(keys.first?.keys.map { $0 } ?? []) == ["id", "name", "team", "admin", "createdAt"])
                #expect(keys.first?["id"] == .string(made.id))
                #expect(keys.first?["admin"] == .bool(false))
            }
            // The new key works at once.
            try await client.execute(uri: "/api/v2/process", method: .get, headers: bearer(made.secret)) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/api/v1/apikey/\(made.id)", method: .delete, headers: auth) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/api/v2/process", method: .get, headers: bearer(made.secret)) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            }
            // Revoked: gone from the list, and a second revocation is a 404.
            try await client.execute(uri: "/api/v1/apikey", method: .get, headers: auth) {
                #expect(String(buffer: $0.body) == "[]")
            }
            try await client.execute(uri: "/api/v1/apikey/\(made.id)", method: .delete, headers: auth) {
                #expect($0.status == .notFound)
            }
            // Its name is free again.
            _ = try await makeKey(client, name: "ci-bot", team: "payments")
        }
    }

    @Test func badKeyRequestsAre4xxAndRecordNothing() async throws {
        try await withGateway { client, scheduler in
            let json: HTTPFields = auth + [.contentType: "application/json"]
            let cases: [(String, String, HTTPFields, HTTPResponse.Status)] = [
                ("not JSON", "name=x", json, .badRequest),
                ("an array", "[]", json, .badRequest),
                ("no name", #"{"team": "payments"}"#, json, .badRequest),
                ("a number for a name", #"{"name": 7, "team": "payments"}"#, json, .badRequest),
                ("a short name", #"{"name": "ab", "team": "payments"}"#, json, .badRequest),
                ("a name with a slash", #"{"name": "a/b/c", "team": "payments"}"#, json, .badRequest),
                ("a member key without a team", #"{"name": "ci-bot"}"#, json, .badRequest),
                ("a bad team", #"{"name": "ci-bot", "team": "../x"}"#, json, .badRequest),
                ("admin not a boolean", #"{"name": "ci-bot", "team": "t-1", "admin": "yes"}"#, json, .badRequest),
                ("an unknown field", #"{"name": "ci-bot", "team": "t-1", "teem": "x"}"#, json, .badRequest),
                (
                    "a ZIP", #"{"name": "ci-bot", "team": "t-1"}"#, auth + [.contentType: "application/zip"],
                    .unsupportedMediaType
                ),
                ("too big", String(repeating: " ", count: 70_000) + "{}", json, .contentTooLarge),
            ]
            for (what, body, headers, status) in cases {
                try await client.execute(
                    uri: "/api/v1/apikey", method: .post, headers: headers, body: ByteBuffer(string: body)
                ) { response in
                    #expect(response.status == status, "\(what): \(String(buffer: response.body))")
                    let ok = try self.json(response)["ok"]
                    #expect(ok == .bool(false), "\(what)")
                }
            }
            #expect(await scheduler.head == 0)
            for id in ["not-a-uuid", "\(InstanceID())"] {
                try await client.execute(uri: "/api/v1/apikey/\(id)", method: .delete, headers: auth) {
                    #expect($0.status == .notFound, "\(id)")
                }
            }
            _ = try await makeKey(client, name: "ci-bot", team: "payments")
            try await client.execute(
                uri: "/api/v1/apikey", method: .post, headers: json,
                body: ByteBuffer(string: #"{"name": "ci-bot", "team": "other"}"#)
            ) { #expect($0.status == .conflict) }
            #expect(await scheduler.head == 1)
        }
    }

    @Test func aMemberKeyCannotManageKeysNorReadTheWholeStream() async throws {
        try await withGateway { client, scheduler in
            let member = try await makeKey(client, name: "ci-bot", team: "payments")
            let head = await scheduler.head
            let headers = bearer(member.secret) + [.contentType: "application/json"]
            try await client.execute(
                uri: "/api/v1/apikey", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"name": "sneaky", "team": "payments", "admin": true}"#)
            ) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/api/v1/apikey", method: .get, headers: headers) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/apikey/\(member.id)", method: .delete, headers: headers) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/api/v1/events", method: .get, headers: headers) {
                #expect($0.status == .forbidden)
            }
            #expect(await scheduler.head == head)
            // A recorded admin key may.
            let admin = try await makeKey(client, name: "ops-admin", team: nil, admin: true)
            try await client.execute(uri: "/api/v1/apikey", method: .get, headers: bearer(admin.secret)) {
                #expect($0.status == .ok)
            }
        }
    }

    /// Another team's instance is answered as one that does not exist, on every route; listings
    /// leave it out; admins see everything.
    @Test func aTeamSeesItsOwnInstancesOnly() async throws {
        try await withGateway { client, scheduler in
            let payments = try await makeKey(client, name: "payments-ci", team: "payments")
            let search = try await makeKey(client, name: "search-ci", team: "search")
            let mine = try await start(client, as: payments.secret)
            let theirs = try await start(client, as: search.secret)
            await scheduler.finish(theirs, log: ["secret of search"])
            let byConfiguredKey = try await start(client)
            #expect(await scheduler.starts.map(\.0.team) == ["payments", "search", nil])
            let routes: [(String, HTTPRequest.Method)] = [
                ("", .get), ("/wait?timeout=1", .get), ("/waitForCompletion?timeout=1", .get), ("/log", .get),
                ("/history", .get), ("/events", .get), ("", .delete),
            ]
            for hidden in [theirs, byConfiguredKey] {
                for (suffix, method) in routes {
                    try await client.execute(
                        uri: "/api/v1/process/\(hidden)\(suffix)", method: method, headers: bearer(payments.secret)
                    ) { response in
                        #expect(response.status == .notFound, "\(method) \(suffix)")
                        #expect(
                            String(buffer: response.body) == #"{"message":"no process instance \#(hidden)","ok":false}"#
                        )
                    }
                }
            }
            try await client.execute(uri: "/api/v1/process/\(theirs)", method: .get, headers: bearer(search.secret)) {
                #expect(String(buffer: $0.body).contains("FINISHED"), "not cancelled by the other team")
            }
            try await client.execute(uri: "/api/v2/process", method: .get, headers: bearer(payments.secret)) {
                let text = String(buffer: $0.body)
                #expect(text.contains(mine.description))
                #expect(!text.contains(theirs.description) && !text.contains(byConfiguredKey.description))
            }
            for (suffix, method) in routes.dropLast() {
                try await client.execute(
                    uri: "/api/v1/process/\(mine)\(suffix)", method: method, headers: bearer(payments.secret)
                ) { #expect([.ok, .requestTimeout].contains($0.status), "own \(suffix)") }
            }
            try await client.execute(uri: "/api/v1/process/\(mine)", method: .delete, headers: bearer(payments.secret))
            {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/api/v2/process", method: .get, headers: auth) {
                let text = String(buffer: $0.body)
                for id in [mine, theirs, byConfiguredKey] { #expect(text.contains(id.description)) }
            }
            try await client.execute(uri: "/api/v1/process/\(theirs)/log", method: .get, headers: auth) {
                #expect(String(buffer: $0.body).contains("secret of search"))
            }
        }
    }

    @Test func idempotencyKeysAreScopedPerTeam() async throws {
        try await withGateway { client, scheduler in
            let a1 = try await makeKey(client, name: "payments-1", team: "payments")
            let a2 = try await makeKey(client, name: "payments-2", team: "payments")
            let b = try await makeKey(client, name: "search-1", team: "search")
            let once: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "deploy-42"]
            let first = try await start(client, as: a1.secret, headers: once)
            #expect(try await start(client, as: a2.secret, headers: once) == first, "the same team: the same instance")
            let other = try await start(client, as: b.secret, headers: once)
            #expect(other != first, "another team's key is its own")
            #expect(await scheduler.starts.count == 3)
        }
    }

    /// Starts the hello-world payload with a recorded key.
    func start(_ client: some TestClientProtocol, as secret: String, headers: HTTPFields = [:]) async throws
        -> InstanceID
    {
        let zip = ZipBuilder.payload("main:\n- log: hi\n")
        return try await client.execute(
            uri: "/api/v1/process", method: .post,
            headers: bearer(secret) + headers + [.contentType: "application/octet-stream"], body: ByteBuffer(bytes: zip)
        ) { response in
            #expect(response.status == .ok)
            return try #require(try json(response)["instanceId"]?.stringValue.flatMap(InstanceID.init))
        }
    }
}
