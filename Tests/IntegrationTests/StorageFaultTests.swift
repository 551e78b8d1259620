import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// The Scheduler's log on a tiny filesystem that fills up: starts are answered 503 (and leave
    /// no instance behind), the Scheduler logs why, and once space returns it takes starts again
    /// by itself, with every earlier instance intact.
    @Test func aFullDiskAnswers503AndRecoversWhenSpaceReturns() async throws {
        try await withDeployment { deployment in
            guard let fs = SmallFilesystem.mount(at: deployment.data + "/events", bytes: 4 << 20) else { return }
            // Detached at once, gone once the Scheduler stopped after this has let go of its files.
            defer { fs.unmount() }
            try await deployment.startAll()
            let before = try await deployment.startInstance(helloZip())
            #expect(try await deployment.waitTerminal(before)["status"] as? String == "FINISHED")

            // An instance that ends while the disk is full still ends FINISHED once space returns.
            // (Whether its refused report could be taken for a duplicate depends on timing here;
            // LogFailureTests pins that case.)
            let slow = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- ${sleep.ms(800)}\n- log: slow done\n"))
            try await deployment.waitForStatus(slow, "RUNNING")
            let slowStarted = ContinuousClock.now

            // Starts until the log runs out of room (the segment's last page may take a few more):
            // each one acknowledged before that is real, and from the first 503 on, every start is.
            let filler = fs.fill()
            var acknowledged: [String] = []
            var refusals = 0
            for n in 0..<200 where refusals < 3 {
                let (status, body) = try await deployment.request(
                    "POST", "/api/v1/process", body: helloZip(), headers: ["Idempotency-Key": "full-\(n)"])
                if status == 200, let id = deployment.json(body)["instanceId"] as? String {
                    #expect(refusals == 0, "a start was acknowledged after the log refused one")
                    acknowledged.append(id)
                } else {
                    #expect(status == 503, "\(status): \(String(decoding: body, as: UTF8.self))")
                    refusals += 1
                }
            }
            #expect(refusals == 3, "the log never filled up")
            let schedulerLog = (try? String(contentsOfFile: deployment.logPath("scheduler"), encoding: .utf8)) ?? ""
            #expect(schedulerLog.contains("No space left on device"), "\(deployment.logTails())")

            // The slow instance's end (and the executor's retries) happen while nothing can be written.
            try await Task.sleep(until: slowStarted + .milliseconds(1500))
            try FileManager.default.removeItem(atPath: filler)
            var recovered: String?
            let deadline = ContinuousClock.now + .seconds(15)
            while recovered == nil, ContinuousClock.now < deadline {
                let (status, body) = try await deployment.request(
                    "POST", "/api/v1/process", body: helloZip(), headers: ["Idempotency-Key": "after-space-returns"])
                if status == 200 { recovered = deployment.json(body)["instanceId"] as? String }
                try await Task.sleep(for: .milliseconds(300))
            }
            let id = try #require(
                recovered, "no start was accepted within 15 s of space returning\n\(deployment.logTails())")
            for started in acknowledged + [id, slow] {
                #expect(try await deployment.waitTerminal(started)["status"] as? String == "FINISHED")
            }
            #expect(try await deployment.log(slow).contains("slow done"))
            let (_, list) = try await deployment.request("GET", "/api/v2/process?limit=100")
            let ids = ((try? JSONSerialization.jsonObject(with: list)) as? [[String: Any]] ?? []).compactMap {
                $0["instanceId"] as? String
            }
            #expect(Set(ids) == Set([before, slow, id] + acknowledged), "\(ids)")
        }
    }
}

extension DeploymentTests {
    /// An instance no executor takes is reported in the Scheduler's log and in `/metrics` once it
    /// has waited past the warning time, and stops counting once an executor takes it.
    @Test func anInstanceWaitingForAnExecutorIsReported() async throws {
        try await withDeployment { deployment in
            deployment.schedulerArguments = ["--enqueued-warning", "1"]
            try deployment.start("scheduler")
            try deployment.start("gateway")
            try await deployment.waitUntilReady()
            let id = try await deployment.startInstance(helloZip())
            try await Task.sleep(for: .milliseconds(1500))
            let (_, before) = try await deployment.request("GET", "/metrics")
            #expect(String(decoding: before, as: UTF8.self).contains("accord_queue_overdue_count 1"))
            let schedulerLog = (try? String(contentsOfFile: deployment.logPath("scheduler"), encoding: .utf8)) ?? ""
            #expect(schedulerLog.contains("waited for an executor too long") && schedulerLog.contains(id))

            try deployment.start("executor")
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "FINISHED")
            let (_, after) = try await deployment.request("GET", "/metrics")
            #expect(String(decoding: after, as: UTF8.self).contains("accord_queue_overdue_count 0"))
        }
    }
}
