import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// Starts `zip` with an idempotency key until it is acknowledged (503 is all a start may answer
    /// meanwhile); returns the instance and how long it took.
    func startDuringFailover(_ deployment: Deployment, _ zip: [UInt8], key: String) async throws -> (
        String?, Duration
    ) {
        let started = ContinuousClock.now
        while started.duration(to: .now) < .seconds(30) {
            let answer = try? await deployment.request(
                "POST", "/api/v1/process", body: zip, headers: ["Idempotency-Key": key], timeout: 5)
            if let (status, data) = answer {
                if status == 200 { return (deployment.json(data)["instanceId"] as? String, started.duration(to: .now)) }
                #expect(status == 503, "a start during failover answered \(status)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return (nil, started.duration(to: .now))
    }

    /// Two Schedulers on one PostgreSQL database: one leads, the other stands by; SIGKILL the
    /// leader and the standby leads under the next epoch, with every instance the first one
    /// acknowledged, while the Gateway and the executor find it by themselves.
    @Test(.enabled(if: TestDatabase.available, "needs ACCORD_TEST_DATABASE_URL"))
    func aStandbySchedulerTakesOverWhenTheLeaderIsKilled() async throws {
        try await TestDatabase.with { database in
            try await withDeployment { deployment in
                deployment.schedulerArguments = ["--store", database.url]
                deployment.addScheduler("scheduler-standby")
                try await deployment.startAll()
                let before = try await deployment.startInstance(helloZip())
                #expect(try await deployment.waitTerminal(before)["status"] as? String == "FINISHED")

                try deployment.start("scheduler-standby")
                let standing = await eventually {
                    let log =
                        (try? String(contentsOfFile: deployment.logPath("scheduler-standby"), encoding: .utf8)) ?? ""
                    return log.contains("standing by")
                }
                #expect(standing, "\(deployment.logTails())")

                await deployment.kill("scheduler")
                let (after, failover) = try await startDuringFailover(deployment, helloZip(), key: "after-failover")
                let id = try #require(
                    after, "no start was acknowledged after the leader died\n\(deployment.logTails())")
                #expect(
                    try await deployment.waitTerminal(id)["status"] as? String == "FINISHED", "\(deployment.logTails())"
                )
                #expect(try await deployment.status(before)["status"] as? String == "FINISHED")
                #expect(try await database.integer("SELECT epoch FROM accord_log") == 2)
                #expect(
                    try await database.integer("SELECT count(*) FROM accord_events")
                        == database.integer("SELECT head FROM accord_log"))
                print("failover (SIGKILL of the leader to the next acknowledged start): \(failover)")

                // The tooling reads the same log from the database.
                let head = try await database.integer("SELECT head FROM accord_log")
                let verified = try await accord(["log", "verify", "--store", database.url], bin: deployment.bin)
                #expect(
                    verified.status == 0 && verified.out.contains("\(head) events"), "\(verified.out)\(verified.err)")
                let exported = try await accord(["log", "export", "--store", database.url], bin: deployment.bin)
                #expect(exported.out.split(separator: "\n").count == Int(head), "\(exported.err)")
                let shown = try await accord(["show", "--store", database.url, id], bin: deployment.bin)
                #expect(shown.status == 0 && shown.out.contains("FINISHED"), "\(shown.out)\(shown.err)")
                let rebuilt = try await accord(
                    ["projections", "rebuild", "--store", database.url], bin: deployment.bin)
                #expect(
                    rebuilt.status == 0 && rebuilt.out.contains("rebuilt 2 instances"), "\(rebuilt.out)\(rebuilt.err)")

                // A row changed behind the log's back is found.
                try await database.execute("DELETE FROM accord_events WHERE seq = 3")
                let damaged = try await accord(["log", "verify", "--store", database.url], bin: deployment.bin)
                #expect(damaged.status == 1 && damaged.out.contains("sequence 3: missing"), "\(damaged.out)")
            }
        }
    }

    /// A leader paused (SIGSTOP) while the standby took over appends nothing after it wakes: the
    /// start that reached it while it slept is refused, and it exits, fenced.
    @Test(.enabled(if: TestDatabase.available, "needs ACCORD_TEST_DATABASE_URL"))
    func aPausedLeaderIsFencedWhenItWakes() async throws {
        try await TestDatabase.with { database in
            try await withDeployment { deployment in
                deployment.schedulerArguments = ["--store", database.url]
                // The standby has addresses of its own: the paused leader still holds the usual ones.
                let standbyData = deployment.data + "/standby"
                deployment.addScheduler("scheduler-standby", arguments: ["--data", standbyData])
                try await deployment.startAll()
                let before = try await deployment.startInstance(helloZip())
                #expect(try await deployment.waitTerminal(before)["status"] as? String == "FINISHED")
                try deployment.start("scheduler-standby")
                let standbyLog = {
                    (try? String(contentsOfFile: deployment.logPath("scheduler-standby"), encoding: .utf8)) ?? ""
                }
                #expect(await eventually { standbyLog().contains("standing by") })

                deployment.signal("scheduler", SIGSTOP)
                #expect(
                    await eventually(within: .seconds(20)) { standbyLog().contains("leading") },
                    "\(deployment.logTails())")
                let takeover = try await database.integer("SELECT head FROM accord_log")
                #expect(try await database.integer("SELECT epoch FROM accord_log") == 2)

                // The Gateway still talks to the sleeping leader: its start waits in that socket.
                let pending = Task {
                    try? await deployment.request("POST", "/api/v1/process", body: helloZip(), timeout: 10)
                }
                try await Task.sleep(for: .milliseconds(500))
                deployment.signal("scheduler", SIGCONT)
                let answer = await pending.value
                #expect(answer?.0 != 200, "the deposed leader acknowledged a start")
                #expect(await eventually(within: .seconds(20)) { deployment.exitStatus("scheduler") != nil })
                #expect(deployment.exitStatus("scheduler") == 75, "\(deployment.logTails())")
                let schedulerLog = (try? String(contentsOfFile: deployment.logPath("scheduler"), encoding: .utf8)) ?? ""
                #expect(schedulerLog.contains("fenced") || schedulerLog.contains("no longer the leader"))
                #expect(
                    try await database.integer(
                        "SELECT count(*) FROM accord_events WHERE epoch = 1 AND seq > \(takeover)")
                        == 0)
                #expect(try await database.integer("SELECT count(*) FROM accord_events WHERE epoch = 1") == takeover)
            }
        }
    }
}

extension DeploymentTests {
    /// Schedulers on two sets of TCP addresses, as on two hosts: the Gateway and the executor are
    /// given both and talk to whichever leads, before and after the leader is killed.
    @Test(.enabled(if: TestDatabase.available, "needs ACCORD_TEST_DATABASE_URL"))
    func gatewaysAndExecutorsGivenEverySchedulerFollowTheLead() async throws {
        try await TestDatabase.with { database in
            try await withDeployment { deployment in
                try await startOnTwoSetsOfAddresses(deployment, database)
                let before = try await deployment.startInstance(helloZip())
                #expect(try await deployment.waitTerminal(before)["status"] as? String == "FINISHED")

                await deployment.kill("scheduler-a")
                let (after, failover) = try await startDuringFailover(deployment, helloZip(), key: "across-hosts")
                let id = try #require(
                    after, "no start was acknowledged after the leader died\n\(deployment.logTails())")
                #expect(
                    try await deployment.waitTerminal(id)["status"] as? String == "FINISHED", "\(deployment.logTails())"
                )
                // The Gateway's read models caught up with the new leader without a gap.
                #expect(try await deployment.status(before)["status"] as? String == "FINISHED")
                let (_, listing) = try await deployment.request("GET", "/api/v2/process?limit=10")
                #expect(String(decoding: listing, as: UTF8.self).contains(id))
                print("failover across addresses: \(failover)")
            }
        }
    }

    /// A leader paused (SIGSTOP) keeps its connections open, so a link that sent to any connected
    /// Scheduler would leave a share of the requests waiting out their timeout on it. The Gateway
    /// and the executor leave it for the Scheduler that took over: every start after the takeover
    /// is answered well within the Gateway's 10 s wait, and runs to its end.
    @Test(.enabled(if: TestDatabase.available, "needs ACCORD_TEST_DATABASE_URL"))
    func theLinksLeaveAPausedLeaderForTheOneThatTookOver() async throws {
        try await TestDatabase.with { database in
            try await withDeployment { deployment in
                try await startOnTwoSetsOfAddresses(deployment, database)
                let before = try await deployment.startInstance(helloZip())
                #expect(try await deployment.waitTerminal(before)["status"] as? String == "FINISHED")
                let standbyLog = {
                    (try? String(contentsOfFile: deployment.logPath("scheduler-b"), encoding: .utf8)) ?? ""
                }
                #expect(await eventually { standbyLog().contains("standing by") })

                deployment.signal("scheduler-a", SIGSTOP)
                #expect(
                    await eventually(within: .seconds(20)) { standbyLog().contains("leading") },
                    "\(deployment.logTails())")
                var started: [String] = []
                for n in 0..<10 {
                    // Retried only on a prompt 503 (the links may not have moved yet): never on a timeout.
                    var answer: (Int, Data)?
                    for _ in 0..<50 {
                        answer = try await deployment.request(
                            "POST", "/api/v1/process", body: helloZip(), headers: ["Idempotency-Key": "paused-\(n)"],
                            timeout: 5)
                        if answer?.0 != 503 { break }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    let (status, body) = try #require(answer)
                    #expect(status == 200, "start \(n): \(status) \(String(decoding: body, as: UTF8.self))")
                    if let id = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
                        let instance = id["instanceId"] as? String
                    {
                        started.append(instance)
                    }
                }
                #expect(started.count == 10, "\(deployment.logTails())")
                for id in started {
                    #expect(
                        try await deployment.waitTerminal(id)["status"] as? String == "FINISHED",
                        "\(deployment.logTails())"
                    )
                }
                deployment.signal("scheduler-a", SIGCONT)
                #expect(await eventually(within: .seconds(20)) { deployment.exitStatus("scheduler-a") != nil })
                #expect(deployment.exitStatus("scheduler-a") == 75, "\(deployment.logTails())")
            }
        }
    }

    /// Two Schedulers on the database, each on TCP addresses of its own as on two hosts (a leads,
    /// b stands by), and a Gateway and an executor given both.
    private func startOnTwoSetsOfAddresses(_ deployment: Deployment, _ database: TestDatabase) async throws {
        let ports = (0..<6).map { _ in Deployment.freePort() }
        func addresses(_ first: Int) -> [String] {
            [
                "--commands", "tcp://127.0.0.1:\(ports[first])", "--events", "tcp://127.0.0.1:\(ports[first + 1])",
                "--executors", "tcp://127.0.0.1:\(ports[first + 2])",
            ]
        }
        deployment.schedulerArguments = ["--store", database.url, "--insecure-transport"]
        deployment.addScheduler("scheduler-a", arguments: addresses(0))
        deployment.addScheduler("scheduler-b", arguments: addresses(3))
        let every = { (offset: Int) in "tcp://127.0.0.1:\(ports[offset]),tcp://127.0.0.1:\(ports[offset + 3])" }
        deployment.gatewayArguments += ["--scheduler", every(0), "--events", every(1), "--insecure-transport"]
        deployment.executorArguments += [
            "--scheduler", every(2), "--listen", "tcp://127.0.0.1:\(Deployment.freePort())", "--insecure-transport",
        ]
        try deployment.start("scheduler-a")
        try deployment.start("executor")
        try deployment.start("gateway")
        try await deployment.waitUntilReady()
        try deployment.start("scheduler-b")
    }
}
