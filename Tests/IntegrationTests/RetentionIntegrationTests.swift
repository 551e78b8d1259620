import EventLog
import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// Retention on the real binaries: instances that ended longer ago than the window leave every
    /// answer, the log (archived, verifiable) and the payload store; a live instance whose start is
    /// as old is untouched; the read models rebuilt from the trimmed log equal the Gateway's, and
    /// restarts change nothing. (The window is 3 s, so passes keep trimming while the test looks:
    /// every check holds whatever a later pass removes, and the last ones run with retention off.)
    @Test func retentionForgetsOldInstancesAndKeepsLiveOnes() async throws {
        try await withDeployment { deployment in
            deployment.schedulerArguments = [
                "--retention", "3s", "--retention-every", "1s", "--segment-bytes", "4096",
            ]
            try await deployment.startAll()

            var old: [String] = []
            for _ in 0..<8 {
                old.append(try await deployment.startInstance(ZipBuilder.payload("main:\n- log: \"old one\"\n")))
            }
            for id in old { _ = try await deployment.waitTerminal(id) }
            // Live through the whole test: started with the old ones, stopped at the end.
            let live = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- log: \"before\"\n- script: sh\n  body: sleep 120\n- log: \"after\"\n"))
            try await deployment.waitForStatus(live, "RUNNING")

            // New instances meanwhile seal segments, so the old ones' can be rewritten.
            let recentPayload = ZipBuilder.payload("main:\n- log: \"recent\"\n")
            let gone = try await eventually(within: .seconds(60), every: .milliseconds(200)) {
                _ = try await deployment.startInstance(recentPayload)
                for id in old {
                    guard try await deployment.request("GET", "/api/v1/process/\(id)").0 == 404 else { return false }
                }
                return true
            }
            #expect(gone, "old instances still answer\n\(deployment.logTails())")
            #expect(try await deployment.status(live)["status"] as? String == "RUNNING")
            #expect(try await deployment.log(live).contains("before"))
            let listed = try await deployment.request("GET", "/api/v2/process?limit=1000")
            let listedIDs = Set(
                ((try? JSONSerialization.jsonObject(with: listed.1)) as? [[String: Any]] ?? []).compactMap {
                    $0["instanceId"] as? String
                })
            #expect(listedIDs.isDisjoint(with: old))
            #expect(listedIDs.contains(live))

            // The log verifies; what left it is in the archive, which verifies too; so did the old
            // payload, while the live instance's stays.
            let bin = deployment.bin
            let verified = try await accord(["log", "verify", deployment.data], bin: bin)
            #expect(verified.status == 0, "\(verified)")
            let archive = deployment.data + "/archive"
            let archived = try await accord(["log", "verify", archive], bin: bin)
            #expect(archived.status == 0 && !archived.out.contains(" 0 events"), "\(archived)")
            let exported = try await accord(["log", "export", archive], bin: bin)
            // The log's first instance stays in the log (its first event names the log), forgotten by
            // the read models all the same; every other old one is in the archive.
            #expect(
                old.dropFirst().allSatisfy { exported.out.contains($0) }, "an old instance is missing from the archive")
            #expect(!exported.out.contains(old[0]))
            let oldDigest = try #require(Self.payloadDigest(of: old[1], in: exported.out))
            let liveDigest = try #require(
                Self.payloadDigest(of: live, in: try await accord(["log", "export", deployment.data], bin: bin).out))
            #expect(FileManager.default.fileExists(atPath: "\(archive)/payloads/\(oldDigest).zip"))
            #expect(!FileManager.default.fileExists(atPath: "\(deployment.data)/payloads/\(oldDigest).zip"))
            #expect(FileManager.default.fileExists(atPath: "\(deployment.data)/payloads/\(liveDigest).zip"))

            // Retention off from here, so the history holds still for the comparisons.
            await deployment.kill("scheduler", signal: SIGTERM)
            deployment.schedulerArguments = ["--segment-bytes", "4096"]
            try deployment.start("scheduler")
            try await deployment.waitUntilReady()
            #expect(try await deployment.request("DELETE", "/api/v1/process/\(live)").0 == 204)
            #expect(try await deployment.waitTerminal(live)["status"] as? String == "CANCELLED")
            #expect(try await deployment.log(live).contains("before"))

            // The Gateway's read models equal the fold of the trimmed log.
            let env = ["ACCORD_API_KEY": deployment.key]
            let rebuilt = try await accord(
                ["projections", "rebuild", deployment.data, "--url", deployment.url], bin: bin, environment: env)
            #expect(rebuilt.status == 0 && rebuilt.out.contains("no differences"), "\(rebuilt)")

            // Restarts: the Scheduler replays the trimmed log, the Gateway reloads its store.
            await deployment.kill("scheduler")
            await deployment.kill("gateway")
            try deployment.start("scheduler")
            try deployment.start("gateway")
            try await deployment.waitUntilReady()
            #expect(try await deployment.request("GET", "/api/v1/process/\(old[0])").0 == 404)
            #expect(try await deployment.status(live)["status"] as? String == "CANCELLED")
            let after = try await deployment.startInstance(recentPayload)
            #expect(try await deployment.waitTerminal(after)["status"] as? String == "FINISHED")
        }
    }

    /// The payload digest of `id`'s `InstanceCreated` in `accord log export`'s JSON lines.
    static func payloadDigest(of id: String, in export: String) -> String? {
        for line in export.split(separator: "\n") where line.contains(id) && line.contains("InstanceCreated") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let data = object["data"] as? [String: Any], let payload = data["payload"] as? [String: Any]
            else { continue }
            return payload["digest"] as? String
        }
        return nil
    }
}
