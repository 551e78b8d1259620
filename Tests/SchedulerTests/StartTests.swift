import EventLog
import Foundation
import Logging
import Model
import TestSupport
import Testing
import Wire

@testable import Scheduler

/// A start through the Scheduler's run loop, in process: repeats are decided once, by `decide`,
/// and answered with the first instance, concurrent or not.
@Suite struct StartTests {
    @Test func repeatsAreAnsweredWithTheFirstInstanceAndRecordedOnce() async throws {
        let root = temporaryDirectory()
        defer { cleanUp(root) }
        let log = try FileEventLog(directory: root + "/events", fsync: false)
        defer { log.close() }
        let core = try await schedulerCore(root: root, log: log, fsync: false)
        let payload = ZipBuilder.payload("main:\n- log: x\n")
        func start(request: RequestID, key: String?) -> StartInstance {
            StartInstance(
                requestID: request, entryPoint: "main", arguments: [:], timeoutMillis: nil, out: [], tags: [],
                idempotencyKey: key, principal: "team-a")
        }
        // Ten at once with one key, then the same request id again: one instance.
        let replies = await withTaskGroup(of: SchedulerReply.self) { group in
            for _ in 0..<10 {
                group.addTask { await core.start(start(request: .random(), key: "k"), payload: payload) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        var ids = Set<InstanceID>()
        var created = 0
        for reply in replies {
            guard case .started(let id, let isNew, _) = reply else {
                Issue.record("not started: \(reply)")
                continue
            }
            ids.insert(id)
            if isNew { created += 1 }
        }
        #expect(ids.count == 1 && created == 1)
        let request = RequestID.random()
        guard case .started(let first, true, _) = await core.start(start(request: request, key: nil), payload: payload),
            case .started(let again, false, _) = await core.start(start(request: request, key: nil), payload: payload)
        else {
            Issue.record("a redelivered request was not answered with its instance")
            return
        }
        #expect(first == again)
        var createdEvents = 0
        try log.scan { if case .instanceCreated = $0.event { createdEvents += 1 } }
        #expect(createdEvents == 2)
    }
}
