import Foundation
import TestSupport
import Testing

/// Runners started ahead of need and reused: an instance that starts no process hands its runner
/// on, and nothing of it is visible to the next; one that does ends its runner; a waiting runner
/// that dies is replaced without the instance given to it noticing.
extension DeploymentTests {
    /// The executor's runners: its child processes that run `accord-runner --instances N`, in a
    /// sandbox or not (not the sandbox check it makes at start, which is a child too).
    private func runners(_ deployment: Deployment) -> Set<Int32> {
        guard let executor = deployment.pid("executor") else { return [] }
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(executor)/task")) ?? []
        var children: Set<Int32> = []
        for task in tasks {
            let text = (try? String(contentsOfFile: "/proc/\(executor)/task/\(task)/children", encoding: .utf8)) ?? ""
            for pid in text.split(separator: " ") {
                guard let pid = Int32(pid) else { continue }
                let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
                if String(decoding: cmdline, as: UTF8.self).contains("--instances") { children.insert(pid) }
            }
        }
        return children
    }

    /// Waits until the executor has exactly `count` runners and returns them: up to 15 s, past the
    /// 10 s an idle runner beyond `--warm-runners` lives (`ExecutorCore.idleRunnerLifetime`). A
    /// waiting runner killed just as it was handed an instance leaves one such runner behind: the
    /// instance's fresh one, kept idle once it ends, beside the replacement (seen in the suite
    /// loop: two runners after 5 s).
    private func settledRunners(_ deployment: Deployment, count: Int, excluding old: Set<Int32> = []) async throws
        -> Set<Int32>
    {
        for _ in 0..<600 {
            let current = runners(deployment)
            if current.count == count, current.isDisjoint(with: old) { return current }
            try await Task.sleep(for: .milliseconds(25))
        }
        Issue.record("the executor never settled on \(count) new runner(s); it has \(runners(deployment))")
        return runners(deployment)
    }

    private func runToEnd(_ deployment: Deployment, _ flow: String) async throws -> (String, String) {
        let id = try await deployment.startInstance(ZipBuilder.payload(flow))
        let status = try await deployment.waitTerminal(id)["status"] as? String ?? "?"
        return (status, try await deployment.log(id))
    }

    @Test func aRunnerTakesInstancesOneAfterAnotherAndNothingCarriesOver() async throws {
        try await withDeployment { deployment in
            deployment.executorArguments = ["--warm-runners", "1", "--runner-instances", "4"]
            try await deployment.startAll()
            let first = try await settledRunners(deployment, count: 1)

            let (setStatus, _) = try await runToEnd(deployment, "main:\n- set:\n    secret: s3cr3t\n- log: set\n")
            #expect(setStatus == "FINISHED")
            let (readStatus, readLog) = try await runToEnd(
                deployment, "main:\n- log: \"seen=${execution.hasVariable('secret')}\"\n")
            #expect(readStatus == "FINISHED")
            #expect(readLog.contains("seen=false"), "a variable of the previous instance was visible: \(readLog)")
            #expect(runners(deployment) == first, "trivial instances should have run on the runner already started")

            // Its fourth instance is its last: a new runner takes over.
            _ = try await runToEnd(deployment, "main:\n- log: third\n")
            _ = try await runToEnd(deployment, "main:\n- log: fourth\n")
            let second = try await settledRunners(deployment, count: 1, excluding: first)

            // An instance that starts a process ends its runner.
            let (scriptStatus, scriptLog) = try await runToEnd(
                deployment, "main:\n- script: sh\n  body: echo from-a-script\n")
            #expect(scriptStatus == "FINISHED")
            #expect(scriptLog.contains("from-a-script"))
            _ = try await settledRunners(deployment, count: 1, excluding: second)
        }
    }

    @Test func instancesStillRunAfterTheirWaitingRunnerWasKilled() async throws {
        try await withDeployment { deployment in
            deployment.executorArguments = ["--warm-runners", "1"]
            try await deployment.startAll()
            for round in 0..<3 {
                let waiting = try await settledRunners(deployment, count: 1)
                for pid in waiting { Foundation.kill(pid, SIGKILL) }
                // At once: the executor may not have seen the death yet and hand it the instance.
                let (status, log) = try await runToEnd(deployment, "main:\n- log: round \(round)\n")
                #expect(status == "FINISHED")
                #expect(log.contains("round \(round)"))
            }
        }
    }
}
