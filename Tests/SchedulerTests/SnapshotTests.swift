import EventLog
import Foundation
import JSON
import Logging
import Model
import Testing
import Wire

@testable import Scheduler

/// A snapshot is the state, exactly: loading one and replaying the rest of the log gives what
/// replaying the whole log gives, and the store only ever offers a snapshot the log covers.
@Suite struct SnapshotTests {
    let executor = ExecutorID("e/1")
    let payload = PayloadRef(digest: "00", size: 1)

    /// A day of decisions: starts (some with keys), assignments, reports, stops, a requeue.
    func history(count: Int) -> [EventEnvelope] {
        var state = SchedulerState()
        var log: [EventEnvelope] = []
        func record(_ decision: Decision) {
            for var e in decision.events {
                e.seq = state.head + 1
                state.apply(e)
                log.append(e)
            }
        }
        let now = Timestamp(millis: 1_000)
        var reportSeq: UInt64 = 0
        for n in 0..<count {
            let id = InstanceID()
            let start = StartInstance(
                requestID: RequestID("r\(n)"), entryPoint: "main", arguments: ["n": .int(Int64(n))],
                timeoutMillis: n % 3 == 0 ? 5_000 : nil, out: [], tags: ["t\(n % 4)"],
                idempotencyKey: n % 2 == 0 ? "k\(n)" : nil, principal: "p")
            record(Decide.decide(.start(start, payload: payload, newID: id), state: state, now: now))
            if n % 5 == 4 { continue }  // left waiting in the queue
            record(Decide.decide(.assign(id, executor), state: state, now: now))
            if n % 11 == 3 {  // its executor went away before it ran: dispatched again
                record(Decide.decide(.requeue(id, reason: "executor lost"), state: state, now: now))
                record(Decide.decide(.assign(id, executor), state: state, now: now))
            }
            reportSeq += 1
            record(
                Decide.decide(
                    .report(executor, Report(seq: reportSeq, instanceID: id, kind: .started, at: now)), state: state,
                    now: now))
            if n % 7 == 0 {
                record(Decide.decide(.cancel(id, RequestID("c\(n)")), state: state, now: now))
            } else if n % 3 != 1 {
                reportSeq += 1
                record(
                    Decide.decide(
                        .report(executor, Report(seq: reportSeq, instanceID: id, kind: .finished(out: [:]), at: now)),
                        state: state, now: now))
            }
        }
        return log
    }

    @Test(arguments: [0, 1, 37, 150])
    func snapshotPlusTailEqualsTheWholeLog(cut: Int) throws {
        let log = history(count: 40)
        var whole = SchedulerState()
        log.forEach { whole.apply($0) }

        var before = SchedulerState()
        log.prefix(cut).forEach { before.apply($0) }
        let data = try JSONEncoder().encode(SchedulerSnapshot(seq: before.head, state: before))
        var restored = try JSONDecoder().decode(SchedulerSnapshot.self, from: data).state
        #expect(restored == before)
        log.dropFirst(cut).forEach { restored.apply($0) }
        #expect(restored == whole)
        var drained = restored.queue
        var expected = whole.queue
        while let next = expected.pop() { #expect(drained.pop() == next) }
    }

    @Test func theStoreKeepsTwoAndNeverOffersOneAheadOfTheLog() async throws {
        let dir = NSTemporaryDirectory() + "accord-snapshots-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try SnapshotStore(directory: dir, fsync: false)
        let logger = Logger(label: "test")
        var state = SchedulerState()
        for (index, event) in history(count: 10).enumerated() {
            state.apply(event)
            if index % 10 == 9 { try await store.write(SchedulerSnapshot(seq: state.head, state: state)) }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(files.count == 2, "\(files)")
        let newest = try #require(await store.latest(atMost: .max, logger: logger))
        #expect(newest.seq == state.head - state.head % 10)
        let older = try #require(await store.latest(atMost: newest.seq - 1, logger: logger))
        #expect(older.seq < newest.seq)
        #expect(await store.latest(atMost: older.seq - 1, logger: logger) == nil)

        // A damaged newest snapshot is skipped for the one before it.
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: dir + "/scheduler-\(newest.seq).json"))
        #expect(await store.latest(atMost: .max, logger: logger)?.seq == older.seq)
    }
}
