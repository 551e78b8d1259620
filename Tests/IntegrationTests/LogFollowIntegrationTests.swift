import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// `accord logs --follow` on the real binaries: a line reaches it while the instance still
    /// runs (it sleeps until the test stops it, so nothing here races a clock), the command ends
    /// with the instance, and it made one request for the whole log: no waits, no ranged re-reads
    /// (the Gateway's own request counts say so).
    @Test func theToolFollowsALogAsItIsPushed() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        try await deployment.startAll()
        let id = try await deployment.startInstance(
            ZipBuilder.payload("main:\n- log: first\n- ${sleep.ms(60000)}\n- log: never\n"))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: deployment.bin + "/accord")
        process.arguments = ["logs", "--follow", id]
        var environment = ProcessInfo.processInfo.environment
        environment["ACCORD_CONFIG"] = "/nonexistent"
        environment["ACCORD_URL"] = deployment.url
        environment["ACCORD_API_KEY"] = deployment.key
        process.environment = environment
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The reads below block: a tool that never gets its line, or never ends, is ended here,
        // so the test fails on its expectations instead of hanging the suite.
        let deadline = Task {
            try await Task.sleep(for: .seconds(60))
            process.terminate()
        }
        defer {
            deadline.cancel()
            if process.isRunning { process.terminate() }
        }

        // Read until the first line is in; the instance must still be running then.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("first") {
            let piece = out.fileHandleForReading.availableData
            guard !piece.isEmpty else { break }
            seen += piece
        }
        let whileRunning = try await deployment.status(id)["status"] as? String
        #expect(whileRunning == "RUNNING", "the first line should arrive while the instance runs")
        let (stopped, _) = try await deployment.request("DELETE", "/api/v1/process/\(id)")
        #expect(stopped == 204)
        seen += out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: seen, as: UTF8.self)
        #expect(process.terminationStatus == 0)
        #expect(text.contains("[INFO ] first") && !text.contains("never"), "\(text)")

        let (_, metrics) = try await deployment.request("GET", "/metrics")
        let counts = String(decoding: metrics, as: UTF8.self).split(separator: "\n").filter {
            $0.hasPrefix("hb_requests{") && $0.contains("/api/v1/process/{id}/")
        }
        let logRequests = counts.filter { $0.contains("{id}/log\"") }.compactMap { Int($0.split(separator: " ").last!) }
        #expect(logRequests.reduce(0, +) == 1, "\(counts)")
        #expect(!counts.contains { $0.contains("{id}/wait") }, "\(counts)")
    }
}
