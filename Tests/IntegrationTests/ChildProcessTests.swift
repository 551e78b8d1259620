import Foundation
import TestSupport
import Testing

/// Child processes on the real binaries: `- task: concord` starts another flow of the same payload
/// as an instance of its own (`parentInstanceId`); `sync: true` waits for it suspended (no executor
/// held) and goes on with its `outVars`, or fails with it; `/subprocess` lists a parent's children
/// and `DELETE .../cascade` stops a whole family.
@Suite(.serialized) struct ChildProcessTests {
    static let flows = """
        main:
        - log: "parent starts"
        - task: concord
          in:
            action: start
            entryPoint: child
            arguments: {name: "${who}"}
            sync: true
            outVars: [greeting]
          out: job
        - log: "child said ${job.greeting} as ${job.id}"
        - set: {childGreeting: "${job.greeting}"}
        child:
        - log: "child runs for ${name}"
        - set: {greeting: "hello ${name}"}
        failing:
        - throw: "child broke"
        sleeper:
        - script: sh
          body: sleep 300
        """

    func json(_ data: Data) -> Any? { try? JSONSerialization.jsonObject(with: data) }

    func children(_ deployment: Deployment, _ id: String) async throws -> [[String: Any]] {
        let (status, data) = try await deployment.request("GET", "/api/v1/process/\(id)/subprocess")
        #expect(status == 200)
        return json(data) as? [[String: Any]] ?? []
    }

    @Test func aSyncChildRunsAndItsOutVarsComeBack() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(
                ZipBuilder.payload(
                    Self.flows, main: #"{"entryPoint": "main", "arguments": {"who": "Ada"}, "out": ["childGreeting"]}"#)
            )
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FINISHED", "\(final)")
            #expect((final["out"] as? [String: Any])?["childGreeting"] as? String == "hello Ada", "\(final)")
            #expect(final["parentInstanceId"] == nil)

            let listed = try await children(deployment, id)
            #expect(listed.count == 1, "\(listed)")
            let childID = try #require(listed.first?["instanceId"] as? String)
            let child = try await deployment.status(childID)
            #expect(child["parentInstanceId"] as? String == id, "\(child)")
            #expect(child["status"] as? String == "FINISHED")
            #expect((child["out"] as? [String: Any])?["greeting"] as? String == "hello Ada", "\(child)")
            let log = try await deployment.log(id)
            #expect(log.contains("Started a child process: \(childID)"), "\(log)")
            #expect(log.contains("child said hello Ada as \(childID)"), "\(log)")
            #expect(try await deployment.log(childID).contains("child runs for Ada"))

            // The parent waited suspended, and the Scheduler resumed it when the child ended.
            let (_, historyData) = try await deployment.request("GET", "/api/v1/process/\(id)/history")
            let entries = json(historyData) as? [[String: Any]] ?? []
            let history = entries.compactMap { $0["status"] as? String }
            #expect(
                history == ["ENQUEUED", "STARTING", "RUNNING", "SUSPENDED", "RESUMING", "RUNNING", "FINISHED"],
                "\(history)")
            let reasons = entries.compactMap { $0["reason"] as? String }
            #expect(reasons.contains("waiting for its child process \(childID)"), "\(reasons)")
            #expect(reasons.contains("its child process \(childID) ended FINISHED"), "\(reasons)")
            // A child has no children; an unknown instance has no listing.
            #expect(try await children(deployment, childID).isEmpty)
            let (unknown, _) = try await deployment.request("GET", "/api/v1/process/\(UUID())/subprocess")
            #expect(unknown == 404)
            let verified = try await accord(["log", "verify", deployment.data], bin: deployment.bin)
            #expect(verified.status == 0, "\(verified.out)\(verified.err)")
        }
    }

    /// A child that fails fails its waiting parent's step (an `error:` block sees why), unless
    /// `ignoreFailures`; a child started without `sync` runs on its own.
    @Test func aFailingChildFailsTheStepUnlessIgnored() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flows =
                Self.flows + """

                    strict:
                    - task: concord
                      in: {action: start, entryPoint: failing, sync: true}
                    - log: never
                    handled:
                    - try:
                      - task: concord
                        in: {action: start, entryPoint: failing, sync: true}
                      error:
                      - log: "caught: ${lastError.message}"
                    - task: concord
                      in: {action: start, entryPoint: failing, sync: true, ignoreFailures: true}
                      out: ignored
                    - task: concord
                      in: {action: fork, entryPoint: child, arguments: {name: forked}}
                      out: async
                    - log: "went on past ${ignored.id}; started ${async.id} = ${jobs[0]}"
                    """
            let strict = try await deployment.startInstance(
                ZipBuilder.payload(flows, main: #"{"entryPoint": "strict"}"#))
            let failed = try await deployment.waitTerminal(strict)
            #expect(failed["status"] as? String == "FAILED", "\(failed)")
            let error = failed["error"] as? String ?? ""
            #expect(error.contains("Child process ") && error.contains("FAILED (error: child broke)"), "\(failed)")
            #expect(!(try await deployment.log(strict)).contains("never"))

            let handled = try await deployment.startInstance(
                ZipBuilder.payload(flows, main: #"{"entryPoint": "handled"}"#))
            let done = try await deployment.waitTerminal(handled)
            #expect(done["status"] as? String == "FINISHED", "\(done)")
            let log = try await deployment.log(handled)
            #expect(log.contains("caught: Child process") && log.contains("FAILED (error: child broke)"), "\(log)")
            #expect(log.contains("went on past "), "\(log)")
            let listed = try await children(deployment, handled)
            #expect(listed.count == 3, "\(listed)")
            let forked = try #require(listed.first?["instanceId"] as? String, "newest first: the fork")
            #expect(log.contains("started \(forked) = \(forked)"), "\(log)")
            #expect(try await deployment.waitTerminal(forked)["status"] as? String == "FINISHED")
            #expect(try await deployment.log(forked).contains("child runs for forked"))
        }
    }

    /// Asking for what Accord does not have is a clear failure at the step, not a silent skip.
    @Test func unsupportedParametersFailClearly() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = "main:\n- task: concord\n  in: {action: start, payload: other, sync: true}\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FAILED")
            #expect((final["error"] as? String)?.contains("'payload' is not supported") == true, "\(final)")
            #expect(try await children(deployment, id).isEmpty, "nothing was started")
        }
    }

    /// `DELETE .../cascade` stops a parent, its child and its grandchild; a plain `DELETE` of a
    /// parent leaves its children running.
    @Test func aCascadeStopsThreeGenerations() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flows = """
                main:
                - task: concord
                  in: {action: start, entryPoint: middle}
                - script: sh
                  body: sleep 300
                middle:
                - task: concord
                  in: {action: start, entryPoint: leaf, sync: true}
                leaf:
                - script: sh
                  body: sleep 300
                """
            let root = try await deployment.startInstance(ZipBuilder.payload(flows))
            func only(_ parent: String) async throws -> String {
                for _ in 0..<200 {
                    if let id = try await children(deployment, parent).first?["instanceId"] as? String { return id }
                    try await Task.sleep(for: .milliseconds(100))
                }
                Issue.record("no child of \(parent)")
                throw CancellationError()
            }
            let middle = try await only(root)
            let leaf = try await only(middle)
            try await deployment.waitForStatus(root, "RUNNING")
            try await deployment.waitForStatus(middle, "SUSPENDED")
            try await deployment.waitForStatus(leaf, "RUNNING")

            let (stopped, _) = try await deployment.request("DELETE", "/api/v1/process/\(root)/cascade")
            #expect(stopped == 204)
            for id in [root, middle, leaf] {
                #expect(try await deployment.waitTerminal(id)["status"] as? String == "CANCELLED", "\(id)")
            }
            let (again, _) = try await deployment.request("DELETE", "/api/v1/process/\(root)/cascade")
            #expect(again == 204, "already stopped: nothing changes")
            let (unknown, _) = try await deployment.request("DELETE", "/api/v1/process/\(UUID())/cascade")
            #expect(unknown == 404)

            // Without cascade, only the parent stops.
            let second = try await deployment.startInstance(ZipBuilder.payload(flows))
            let secondMiddle = try await only(second)
            let secondLeaf = try await only(secondMiddle)
            try await deployment.waitForStatus(second, "RUNNING")
            let (plain, _) = try await deployment.request("DELETE", "/api/v1/process/\(second)")
            #expect(plain == 204)
            #expect(try await deployment.waitTerminal(second)["status"] as? String == "CANCELLED")
            try await deployment.waitForStatus(secondLeaf, "RUNNING")
            #expect(try await deployment.status(secondMiddle)["status"] as? String == "SUSPENDED")
            // A cascade from the stopped parent still reaches the family it left running.
            let (late, _) = try await deployment.request("DELETE", "/api/v1/process/\(second)/cascade")
            #expect(late == 204)
            for id in [secondMiddle, secondLeaf] {
                #expect(try await deployment.waitTerminal(id)["status"] as? String == "CANCELLED", "\(id)")
            }
        }
    }

    /// A parent waiting for its child survives a Scheduler SIGKILL: the child ends after the
    /// restart, and the rebuilt Scheduler resumes the parent with its outcome.
    @Test func aWaitingParentIsResumedAfterASchedulerKill() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flows = """
                main:
                - task: concord
                  in: {action: start, entryPoint: slow, sync: true, outVars: [done]}
                  out: job
                - log: "child done=${job.done}"
                slow:
                - script: sh
                  body: sleep 3
                - set: {done: "finished"}
                """
            let id = try await deployment.startInstance(ZipBuilder.payload(flows))
            try await deployment.waitForStatus(id, "SUSPENDED")
            await deployment.kill("scheduler")
            try deployment.start("scheduler")
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FINISHED", "\(final)")
            #expect(try await deployment.log(id).contains("child done=finished"))
            // The waiting parent cannot be resumed by a client.
            let other = try await deployment.startInstance(ZipBuilder.payload(flows))
            try await deployment.waitForStatus(other, "SUSPENDED")
            let child = try #require(try await children(deployment, other).first?["instanceId"] as? String)
            let (refused, body) = try await deployment.request(
                "POST", "/api/v1/process/\(other)/resume/child:\(child)", body: Array("{}".utf8),
                headers: ["Content-Type": "application/json"])
            #expect(refused == 409, "\(String(decoding: body, as: UTF8.self))")
            #expect(try await deployment.waitTerminal(other)["status"] as? String == "FINISHED")
        }
    }
}
