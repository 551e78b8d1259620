import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// Keys that belong to teams on the real binaries, two Gateways on one Scheduler: a key made
    /// through one Gateway works on the other, a revoked key is refused on both within a second,
    /// each team sees only its own instances on every route, idempotency keys are per team, and
    /// all of it survives restarts (it is in the event log); the CLI makes, lists and revokes keys,
    /// and `accord show` says which key started an instance.
    @Test func keysBelongToTeamsOnEveryGatewayAndSurviveRestarts() async throws {
        try await withDeployment { deployment in
            let second = deployment.addGateway("gateway-2")
            try await deployment.startAll()
            try deployment.start("gateway-2")
            try await deployment.waitUntilReady(port: second)
            let admin = ["ACCORD_URL": deployment.url, "ACCORD_API_KEY": deployment.key]

            // Made with the CLI through the first Gateway.
            let made = try await accord(
                ["keys", "create", "--name", "payments-ci", "--team", "payments", "--json"], bin: deployment.bin,
                environment: admin)
            #expect(made.status == 0, "\(made.err)")
            let payments = deployment.json(Data(made.out.utf8))
            let paymentsKey = try #require(payments["key"] as? String)
            let paymentsID = try #require(payments["id"] as? String)
            let (status, body) = try await deployment.request(
                "POST", "/api/v1/apikey", body: Array(#"{"name": "search-ci", "team": "search"}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect(status == 201)
            let searchKey = try #require(deployment.json(body)["key"] as? String)

            // Usable on the other Gateway within a second.
            let known = try await eventually(within: .seconds(1)) {
                try await deployment.request("GET", "/api/v2/process", key: paymentsKey, port: second).0 == 200
            }
            #expect(known, "the second gateway did not learn the new key within a second")

            let mine = try await start(deployment, key: paymentsKey, idempotencyKey: "deploy-1")
            let theirs = try await start(deployment, key: searchKey, port: second, idempotencyKey: "deploy-1")
            #expect(mine != theirs, "an Idempotency-Key is per team")
            #expect(try await start(deployment, key: paymentsKey, port: second, idempotencyKey: "deploy-1") == mine)
            _ = try await deployment.waitTerminal(mine)
            _ = try await deployment.waitTerminal(theirs)

            try await expectScoped(
                deployment, mine: mine, theirs: theirs, key: paymentsKey, ports: [deployment.port, second])
            let (_, all) = try await deployment.request("GET", "/api/v2/process", port: second)
            let everything = String(decoding: all, as: UTF8.self)
            #expect(everything.contains(mine) && everything.contains(theirs), "an admin key sees every team")

            // Revoked with the CLI: refused everywhere within a second.
            let revoked = try await accord(["keys", "revoke", paymentsID], bin: deployment.bin, environment: admin)
            #expect(revoked.status == 0, "\(revoked.err)")
            for port in [deployment.port, second] {
                let refused = try await eventually(within: .seconds(1)) {
                    try await deployment.request("GET", "/api/v2/process", key: paymentsKey, port: port).0 == 401
                }
                #expect(refused, "gateway on \(port) still accepts a revoked key after a second")
            }
            let listed = try await accord(["keys", "list"], bin: deployment.bin, environment: admin)
            #expect(listed.out.contains("search-ci") && !listed.out.contains("payments-ci"), "\(listed.out)")
            let member = try await accord(
                ["keys", "list"], bin: deployment.bin,
                environment: ["ACCORD_URL": deployment.url, "ACCORD_API_KEY": searchKey])
            #expect(member.status != 0 && member.err.contains("403"), "\(member.err)")

            // The keys are in the log: a restarted Scheduler and Gateway know them as before.
            await deployment.kill("scheduler")
            await deployment.kill("gateway-2")
            try deployment.start("scheduler")
            try deployment.start("gateway-2")
            try await deployment.waitUntilReady(port: second)
            #expect(try await deployment.request("GET", "/api/v2/process", key: paymentsKey, port: second).0 == 401)
            let (again, theirsNow) = try await deployment.request(
                "GET", "/api/v1/process/\(theirs)", key: searchKey, port: second)
            #expect(again == 200 && deployment.json(theirsNow)["status"] as? String == "FINISHED")
            #expect(
                try await deployment.request("GET", "/api/v1/process/\(mine)", key: searchKey, port: second).0 == 404)

            await deployment.stopProcesses()
            let shown = try await accord(["show", deployment.data, mine], bin: deployment.bin)
            #expect(
                shown.out.contains("started by key 'payments-ci' (\(paymentsID))")
                    && shown.out.contains("team payments"),
                "\(shown.out)")
            let verified = try await accord(["log", "verify", deployment.data], bin: deployment.bin)
            #expect(verified.status == 0, "\(verified.out)\(verified.err)")
        }
    }

    private func start(_ deployment: Deployment, key: String, port: Int? = nil, idempotencyKey: String) async throws
        -> String
    {
        let (status, data) = try await deployment.request(
            "POST", "/api/v1/process", body: helloZip(), headers: ["Idempotency-Key": idempotencyKey], key: key,
            port: port)
        guard status == 200, let id = deployment.json(data)["instanceId"] as? String else {
            throw TestFailure("start answered \(status): \(String(decoding: data, as: UTF8.self))")
        }
        return id
    }

    /// `key` sees `mine` and gets exactly the unknown-instance answer for `theirs`, on every route.
    private func expectScoped(_ deployment: Deployment, mine: String, theirs: String, key: String, ports: [Int])
        async throws
    {
        let routes = ["", "/wait?timeout=1", "/waitForCompletion?timeout=1", "/log", "/history", "/events"]
        for port in ports {
            for route in routes {
                #expect(
                    try await deployment.request("GET", "/api/v1/process/\(mine)\(route)", key: key, port: port).0
                        == 200, "own \(route)")
                let (status, body) = try await deployment.request(
                    "GET", "/api/v1/process/\(theirs)\(route)", key: key, port: port)
                // Exactly what an id that does not exist gets: existence is not leaked.
                #expect(status == 404, "\(route) on \(port): \(status)")
                #expect(deployment.json(body)["message"] as? String == "no process instance \(theirs)", "\(route)")
            }
            #expect(try await deployment.request("DELETE", "/api/v1/process/\(theirs)", key: key, port: port).0 == 404)
            let (_, listing) = try await deployment.request("GET", "/api/v2/process", key: key, port: port)
            let text = String(decoding: listing, as: UTF8.self)
            #expect(
                text.contains(mine) && !text.contains(theirs), "the listing on \(port) shows another team's instance")
            #expect(try await deployment.request("GET", "/api/v1/events", key: key, port: port).0 == 403)
        }
    }
}
