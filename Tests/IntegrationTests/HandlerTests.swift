import Foundation
import TestSupport
import Testing

/// Handler flows (`onFailure`, `onCancel`, `onTimeout`) on the real binaries: each runs after its
/// instance ended that way, with the instance's variables and `lastError`, in the same log; the
/// instance keeps its terminal status; a handler runs at most once, across an executor's loss and
/// a Scheduler's restart.
@Suite(.serialized) struct HandlerTests {
    /// The history's reasons, oldest first.
    func reasons(_ deployment: Deployment, _ id: String) async throws -> [String] {
        let (_, data) = try await deployment.request("GET", "/api/v1/process/\(id)/history")
        let entries = (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
        return entries.compactMap { $0["reason"] as? String }
    }

    /// Waits until the history records the handler's end; returns that reason.
    func handlerEnd(_ deployment: Deployment, _ id: String, timeout: Duration = .seconds(60)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let end = try await reasons(deployment, id).first(where: {
                $0.contains(" handler finished") || $0.contains(" handler failed")
            }) {
                return end
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("no handler end in the history of \(id): \(try await reasons(deployment, id))")
    }

    func eventTypes(_ deployment: Deployment, _ id: String) async throws -> [String] {
        let (_, data) = try await deployment.request("GET", "/api/v1/process/\(id)/events")
        return ((try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []).compactMap {
            $0["type"] as? String
        }
    }

    /// Waits until the instance's log contains `text`.
    func waitForLog(_ deployment: Deployment, _ id: String, _ text: String) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await deployment.log(id).contains(text) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("'\(text)' never appeared in the log of \(id)")
    }

    func occurrences(_ text: String, in log: String) -> Int { log.components(separatedBy: text).count - 1 }

    @Test func onFailureRunsWithTheVariablesAsTheyWereAndLastError() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = """
                main:
                - set:
                    color: blue
                - log: main ran
                - throw: boom
                - log: never
                onFailure:
                - log: "handler sees ${color}, ${lastError.message} and ${greeting}"
                """
            let id = try await deployment.startInstance(
                ZipBuilder.payload(flow, main: #"{"entryPoint": "main", "arguments": {"greeting": "hi"}}"#))
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FAILED")
            #expect(try await handlerEnd(deployment, id) == "onFailure handler finished")
            let log = try await deployment.log(id)
            #expect(log.contains("handler sees blue, boom and hi"), "\(log)")
            #expect(!log.contains("never"))
            #expect(try await deployment.status(id)["status"] as? String == "FAILED", "terminal is final")
            let types = try await eventTypes(deployment, id)
            #expect(
                types.filter { $0.hasPrefix("Handler") } == [
                    "HandlersDeclared", "HandlerAssigned", "HandlerStarted", "HandlerEnded",
                ], "\(types)")
            let history = try await reasons(deployment, id)
            #expect(history.filter { $0.contains("handler") }.count == 2, "\(history)")
        }
    }

    /// A handler that fails is recorded as failed; the instance's status does not move.
    @Test func aFailingHandlerIsRecordedAndTheStatusStays() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = "main:\n- throw: first\nonFailure:\n- throw: \"second: ${lastError.message}\"\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FAILED")
            #expect(final["error"] as? String == "first")
            #expect(try await handlerEnd(deployment, id) == "onFailure handler failed: second: first")
            let status = try await deployment.status(id)
            #expect(status["status"] as? String == "FAILED" && status["error"] as? String == "first")
        }
    }

    @Test func onCancelRunsAfterAStop() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = """
                main:
                - set:
                    step: sleeping
                - ${sleep.ms(60000)}
                onCancel:
                - log: "cancelled: ${lastError.message}"
                onFailure:
                - log: wrong handler
                """
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            try await deployment.waitForStatus(id, "RUNNING")
            // The handlers are declared once the runner has read the payload.
            let declared = ContinuousClock.now + .seconds(20)
            while try await !eventTypes(deployment, id).contains("HandlersDeclared"), ContinuousClock.now < declared {
                try await Task.sleep(for: .milliseconds(50))
            }
            let (stopped, _) = try await deployment.request("DELETE", "/api/v1/process/\(id)")
            #expect(stopped == 204)
            #expect(try await handlerEnd(deployment, id) == "onCancel handler finished")
            let log = try await deployment.log(id)
            #expect(log.contains("cancelled: stopped by a client"), "\(log)")
            #expect(!log.contains("wrong handler"))
            #expect(try await deployment.status(id)["status"] as? String == "CANCELLED")
        }
    }

    @Test func onTimeoutRunsAfterTheTimeoutAndAHandlerHasATimeoutOfItsOwn() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = """
                main:
                - ${sleep.ms(60000)}
                onTimeout:
                - log: "timed out: ${lastError.message}"
                - ${sleep.ms(60000)}
                - log: never
                """
            let started = ContinuousClock.now
            let id = try await deployment.startInstance(
                ZipBuilder.payload(flow, main: #"{"entryPoint": "main", "timeout": "PT1S", "handlerTimeout": 2}"#))
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "TIMED_OUT")
            let end = try await handlerEnd(deployment, id)
            #expect(
                end.hasPrefix("onTimeout handler failed: the onTimeout handler ran longer than its timeout (2000 ms)"))
            #expect(started.duration(to: .now) < .seconds(30))
            let log = try await deployment.log(id)
            #expect(log.contains("timed out: the process ran longer than its timeout"), "\(log)")
            #expect(!log.contains("never"))
        }
    }

    /// The instance's executor dies while it runs: the instance fails, and its onFailure runs
    /// once, on the executor that comes back (another boot).
    @Test func anInstanceLostWithItsExecutorRunsItsHandlerOnce() async throws {
        try await withDeployment { deployment in
            deployment.schedulerArguments = ["--executor-loss-timeout", "2"]
            try await deployment.startAll()
            let flow =
                "main:\n- log: main began\n- ${sleep.ms(60000)}\nonFailure:\n- log: \"handler: ${lastError.message}\"\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            try await waitForLog(deployment, id, "main began")
            await deployment.kill("executor")
            let final = try await deployment.waitTerminal(id, timeout: .seconds(30))
            #expect((final["error"] as? String)?.contains("executor lost") == true)
            try deployment.start("executor")
            #expect(try await handlerEnd(deployment, id) == "onFailure handler finished")
            let log = try await deployment.log(id)
            #expect(occurrences("handler: executor lost", in: log) == 1, "\(log)")
        }
    }

    /// The handler's own executor dies midway: the handler is not run again (at most once), and
    /// its end says why.
    @Test func aHandlerWhoseExecutorDiesMidwayIsNeverRunTwice() async throws {
        try await withDeployment { deployment in
            deployment.schedulerArguments = ["--executor-loss-timeout", "2"]
            try await deployment.startAll()
            let flow = "main:\n- throw: boom\nonFailure:\n- log: handler began\n- ${sleep.ms(60000)}\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            try await waitForLog(deployment, id, "handler began")
            await deployment.kill("executor")
            try deployment.start("executor")
            let end = try await handlerEnd(deployment, id)
            #expect(end.hasPrefix("onFailure handler failed: executor lost"), "\(end)")
            // Long enough for a wrong second dispatch to have begun on the new executor.
            try await Task.sleep(for: .seconds(2))
            let log = try await deployment.log(id)
            #expect(occurrences("handler began", in: log) == 1, "\(log)")
            #expect(try await eventTypes(deployment, id).filter { $0 == "HandlerStarted" }.count == 1)
        }
    }

    /// The Scheduler is killed while a handler runs, and restarted: the handler goes on where it
    /// runs, its end is recorded, and it is not started again.
    @Test func aSchedulerRestartDoesNotRunAHandlerTwice() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow =
                "main:\n- throw: boom\nonFailure:\n- log: handler began\n- ${sleep.ms(3000)}\n- log: handler done\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            try await waitForLog(deployment, id, "handler began")
            await deployment.kill("scheduler")
            try deployment.start("scheduler")
            #expect(try await handlerEnd(deployment, id) == "onFailure handler finished")
            let log = try await deployment.log(id)
            #expect(occurrences("handler began", in: log) == 1 && log.contains("handler done"), "\(log)")
        }
    }

    /// A handler runs after its instance ended: it cannot suspend.
    @Test func aHandlerCannotSuspend() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flow = "main:\n- throw: boom\nonFailure:\n- suspend: later\n"
            let id = try await deployment.startInstance(ZipBuilder.payload(flow))
            _ = try await deployment.waitTerminal(id)
            let end = try await handlerEnd(deployment, id)
            #expect(end.contains("onFailure handler failed: cannot suspend: a handler flow"), "\(end)")
            #expect(try await deployment.status(id)["status"] as? String == "FAILED")
        }
    }

    /// A bad `handlerTimeout` is a precise 400, and nothing is started.
    @Test func aBadHandlerTimeoutIsRefused() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            for bad in [#""soon""#, "-5", "0", "[1]"] {
                let zip = ZipBuilder.payload(
                    "main:\n- log: hi\n", main: #"{"entryPoint": "main", "handlerTimeout": \#(bad)}"#)
                let (status, body) = try await deployment.request("POST", "/api/v1/process", body: zip)
                #expect(status == 400, "\(bad)")
                #expect(String(decoding: body, as: UTF8.self).contains("handlerTimeout"), "\(bad)")
            }
            let (_, listing) = try await deployment.request("GET", "/api/v2/process")
            #expect((try JSONSerialization.jsonObject(with: listing) as? [Any])?.isEmpty == true)
        }
    }
}
