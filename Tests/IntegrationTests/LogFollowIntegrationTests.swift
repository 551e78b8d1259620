import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// `accord logs --follow` on the real binaries: a line reaches it while the instance still
    /// runs (it sleeps until the test stops it, so nothing here races a clock), the command ends
    /// with the instance, and it made one request for the whole log: no waits, no ranged re-reads
    /// (the Gateway's own request counts say so).
    @Test func theToolFollowsALogAsItIsPushed() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let id = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- log: first\n- ${sleep.ms(60000)}\n- log: never\n"))

            var environment = ProcessInfo.processInfo.environment
            environment["ACCORD_CONFIG"] = "/nonexistent"
            environment["ACCORD_URL"] = deployment.url
            environment["ACCORD_API_KEY"] = deployment.key
            let output = deployment.data + "/follow.out"
            let follower = try Child(
                deployment.bin + "/accord", ["logs", "--follow", id], environment: environment, output: output,
                errors: deployment.data + "/follow.err")
            // A tool that never gets its line, or never ends, is ended here, so the test fails on its
            // expectations instead of hanging the suite.
            defer { follower.signal(SIGKILL) }
            func seen() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

            // The first line is in while the instance still runs.
            #expect(await eventually { seen().contains("first") || !follower.isRunning }, "\(seen())")
            let whileRunning = try await deployment.status(id)["status"] as? String
            #expect(whileRunning == "RUNNING", "the first line should arrive while the instance runs")
            let (stopped, _) = try await deployment.request("DELETE", "/api/v1/process/\(id)")
            #expect(stopped == 204)
            let status = await follower.exit(within: Liveness.deadline)
            #expect(status == 0, "the tool ended with \(status.map(String.init) ?? "nothing within the deadline")")
            let text = seen()
            #expect(text.contains("[INFO ] first") && !text.contains("never"), "\(text)")

            let (_, metrics) = try await deployment.request("GET", "/metrics")
            let counts = String(decoding: metrics, as: UTF8.self).split(separator: "\n").filter {
                $0.hasPrefix("hb_requests{") && $0.contains("/api/v1/process/{id}/")
            }
            let logRequests = counts.filter { $0.contains("{id}/log\"") }.compactMap {
                Int($0.split(separator: " ").last!)
            }
            #expect(logRequests.reduce(0, +) == 1, "\(counts)")
            #expect(!counts.contains { $0.contains("{id}/wait") }, "\(counts)")
        }
    }
}
