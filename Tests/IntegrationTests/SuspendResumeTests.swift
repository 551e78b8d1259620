import Foundation
import TestSupport
import Testing

/// Suspend and resume on the real binaries: a suspended instance is a durable point in the log
/// (no executor holds it); a resume with its event goes on, on any executor, from the next step,
/// with its variables and working folder as they were.
@Suite(.serialized) struct SuspendResumeTests {
    static let flow = """
        main:
        - set: {stage: one}
        - script: sh
          body: echo kept-file > note.txt
        - log: "before ${stage}"
        - suspend: approval
        - script: sh
          body: cat note.txt
        - log: "after: approved=${approved}, stage=${stage}"
        """

    func resume(_ deployment: Deployment, _ id: String, _ event: String, body: String? = nil, query: String = "")
        async throws -> (Int, String)
    {
        let (status, data) = try await deployment.request(
            "POST", "/api/v1/process/\(id)/resume/\(event)\(query)", body: body.map { Array($0.utf8) },
            headers: ["Content-Type": "application/json"])
        return (status, String(decoding: data, as: UTF8.self))
    }

    func statuses(_ deployment: Deployment, _ id: String) async throws -> [String] {
        let (_, data) = try await deployment.request("GET", "/api/v1/process/\(id)/history")
        return ((try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []).compactMap {
            $0["status"] as? String
        }
    }

    @Test func aSuspendedInstanceWaitsThenGoesOnFromTheNextStep() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(
                ZipBuilder.payload(Self.flow, main: #"{"entryPoint": "main", "out": ["approved", "stage"]}"#))
            try await deployment.waitForStatus(id, "SUSPENDED")
            let (waited, _) = try await deployment.request("GET", "/api/v1/process/\(id)/wait?timeout=300")
            #expect(waited == 408, "a suspended instance is not done")

            let (wrong, why) = try await resume(deployment, id, "other", body: "{}")
            #expect(wrong == 409 && why.contains("approval"), "\(why)")
            let (bad, _) = try await resume(deployment, id, "approval", body: "[1, 2]")
            #expect(bad == 400)
            #expect(try await deployment.status(id)["status"] as? String == "SUSPENDED", "a refusal changes nothing")

            let (ok, body) = try await resume(deployment, id, "approval", body: #"{"approved": true}"#)
            #expect(ok == 200 && body.contains(#""ok":true"#), "\(body)")
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FINISHED", "\(final)")
            let out = final["out"] as? [String: Any]
            #expect(out?["approved"] as? Bool == true && out?["stage"] as? String == "one", "\(final)")
            let log = try await deployment.log(id)
            #expect(log.contains("before one") && log.contains("kept-file"), "\(log)")
            #expect(log.contains("after: approved=true, stage=one"), "\(log)")
            let history = try await statuses(deployment, id)
            #expect(
                history == ["ENQUEUED", "STARTING", "RUNNING", "SUSPENDED", "RESUMING", "RUNNING", "FINISHED"],
                "\(history)")
            let (again, _) = try await resume(deployment, id, "approval")
            #expect(again == 409)
            // The log's status rules know the way back from SUSPENDED.
            let verified = try await accord(["log", "verify", deployment.data], bin: deployment.bin)
            #expect(verified.status == 0, "\(verified.out)\(verified.err)")
        }
    }

    /// The Scheduler is killed and its executor lost while the instance is suspended: both come
    /// back (a new executor boot), and the resume goes on there.
    @Test func aSuspensionSurvivesASchedulerKillAndAnExecutorLoss() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(ZipBuilder.payload(Self.flow))
            try await deployment.waitForStatus(id, "SUSPENDED")
            await deployment.kill("scheduler")
            await deployment.kill("executor")
            try deployment.start("scheduler")
            try deployment.start("executor")
            var resumed = 0
            for _ in 0..<100 where resumed != 200 {
                resumed = (try? await resume(deployment, id, "approval", body: #"{"approved": "later"}"#))?.0 ?? 0
                if resumed != 200 { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(resumed == 200)
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FINISHED", "\(final)")
            let log = try await deployment.log(id)
            #expect(log.contains("kept-file") && log.contains("after: approved=later, stage=one"), "\(log)")
        }
    }

    @Test func stoppingASuspendedInstanceCancelsIt() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(ZipBuilder.payload("main:\n- suspend: never\n- log: no\n"))
            try await deployment.waitForStatus(id, "SUSPENDED")
            let (stopped, _) = try await deployment.request("DELETE", "/api/v1/process/\(id)")
            #expect(stopped == 204)
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "CANCELLED")
            let (late, _) = try await resume(deployment, id, "never")
            #expect(late == 409)
        }
    }

    /// `saveAs` nests the body under a name, as the reference server's resume does.
    @Test func saveAsNestsTheVariables() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- suspend: form\n- log: \"name=${form.data.name}\"\n"))
            try await deployment.waitForStatus(id, "SUSPENDED")
            let (ok, _) = try await resume(
                deployment, id, "form", body: #"{"name": "Ada"}"#, query: "?saveAs=form.data")
            #expect(ok == 200)
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "FINISHED")
            #expect(try await deployment.log(id).contains("name=Ada"))
        }
    }

    /// A process the flow started that still runs cannot be carried across a suspension: the
    /// suspend is refused, clearly.
    @Test func aSuspendWithAProcessStillRunningIsRefused() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = "main:\n- script: sh\n  body: (sleep 30 >/dev/null 2>&1 &) ; echo started\n- suspend: e\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FAILED", "\(final)")
            #expect(
                (final["error"] as? String)?.contains("cannot suspend: a process the flow started still runs") == true)
        }
    }
}
