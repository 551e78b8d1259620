import EventLog
import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// Retention on the real binaries: instances that ended longer ago than the window leave every
    /// answer, the log (archived, verifiable) and the payload store; a live instance whose start is
    /// as old is untouched and ends with its whole log; the read models rebuilt from the trimmed
    /// log equal the Gateway's, and restarts change nothing.
    @Test func retentionForgetsOldInstancesAndKeepsLiveOnes() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        deployment.schedulerArguments = [
            "--retention", "3s", "--retention-every", "1s", "--segment-bytes", "4096",
        ]
        try await deployment.startAll()

        let oldPayload = ZipBuilder.payload("main:\n- log: \"old one\"\n")
        var old: [String] = []
        for _ in 0..<8 { old.append(try await deployment.startInstance(oldPayload)) }
        for id in old { _ = try await deployment.waitTerminal(id) }
        // Live through the whole window: started before the old ones are trimmed, ends after.
        let live = try await deployment.startInstance(
            ZipBuilder.payload("main:\n- log: \"before\"\n- script: sh\n  body: sleep 6\n- log: \"after\"\n"))
        try await deployment.waitForStatus(live, "RUNNING")

        // New instances meanwhile seal segments, so the old ones' can be rewritten.
        let recentPayload = ZipBuilder.payload("main:\n- log: \"recent\"\n")
        var recent: [String] = []
        let gone = try await eventually(within: .seconds(30), every: .milliseconds(200)) {
            recent.append(try await deployment.startInstance(recentPayload))
            for id in old {
                guard try await deployment.request("GET", "/api/v1/process/\(id)").0 == 404 else { return false }
            }
            return true
        }
        #expect(gone, "old instances still answer\n\(deployment.logTails())")
        let status = try await deployment.waitTerminal(live)
        #expect(status["status"] as? String == "FINISHED")
        let liveLog = try await deployment.log(live)
        #expect(liveLog.contains("before") && liveLog.contains("after"), "\(liveLog)")
        for id in recent.suffix(3) { _ = try await deployment.waitTerminal(id) }
        let listed = try await deployment.request("GET", "/api/v2/process?limit=1000")
        let listedIDs = Set(
            ((try? JSONSerialization.jsonObject(with: listed.1)) as? [[String: Any]] ?? []).compactMap {
                $0["instanceId"] as? String
            })
        #expect(listedIDs.isDisjoint(with: old))
        #expect(listedIDs.contains(live))

        // The log verifies; what left it is in the archive, which verifies too; so did the payload.
        let bin = deployment.bin
        let verified = try accord(["log", "verify", deployment.data], bin: bin)
        #expect(verified.status == 0, "\(verified)")
        let archive = deployment.data + "/archive"
        let archived = try accord(["log", "verify", archive], bin: bin)
        #expect(archived.status == 0 && !archived.out.contains(" 0 events"), "\(archived)")
        let exported = try accord(["log", "export", archive], bin: bin)
        // The log's first instance stays in the log (its first event names the log), forgotten by
        // the read models all the same; every other old one is in the archive.
        #expect(old.dropFirst().allSatisfy { exported.out.contains($0) }, "an old instance is missing from the archive")
        #expect(!exported.out.contains(old[0]))
        let payloads = try FileManager.default.contentsOfDirectory(atPath: archive + "/payloads")
        #expect(payloads.count == 1, "\(payloads)")

        // The Gateway's read models equal the fold of the trimmed log.
        let env = ["ACCORD_API_KEY": deployment.key]
        let rebuilt = try accord(
            ["projections", "rebuild", deployment.data, "--url", deployment.url], bin: bin, environment: env)
        #expect(rebuilt.status == 0 && rebuilt.out.contains("no differences"), "\(rebuilt)")

        // Restarts: the Scheduler replays the trimmed log, the Gateway reloads its store.
        deployment.kill("scheduler")
        deployment.kill("gateway")
        try deployment.start("scheduler")
        try deployment.start("gateway")
        try await deployment.waitUntilReady()
        #expect(try await deployment.request("GET", "/api/v1/process/\(old[0])").0 == 404)
        #expect(try await deployment.status(live)["status"] as? String == "FINISHED")
        let after = try await deployment.startInstance(recentPayload)
        #expect(try await deployment.waitTerminal(after)["status"] as? String == "FINISHED")
    }
}
