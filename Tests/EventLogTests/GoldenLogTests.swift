import Foundation
import JSON
import Model
import TestSupport
import Testing

@testable import EventLog

/// A log written by this version of the file log, kept as a fixture (`Golden/log-1`): every later
/// version must open it, read the same events back and verify it. A change to the record format
/// or to an event's encoding that breaks today's logs fails here.
@Suite struct GoldenLogTests {
    /// Four instances, one for each way an instance ends, with logs and steps.
    static func history() -> [EventEnvelope] {
        var envelopes: [EventEnvelope] = []
        let ends: [Event] = [
            .instanceFinished(InstanceFinished(out: ["result": .int(42), "name": .string("world")])),
            .instanceFailed(InstanceFailed(error: "boom", out: [:])),
            .instanceCancelled(InstanceCancelled(reason: "stopped by a client")),
            .instanceTimedOut(InstanceTimedOut(error: "the instance ran longer than its timeout")),
        ]
        for (n, end) in ends.enumerated() {
            let id = InstanceID("0d0a817d-4af8-496c-b6ef-3888ad2386e\(n)")!
            let at = Int64(1_764_380_000_000 + n * 1000)
            envelopes.append(created(id, at: at, key: n == 0 ? "golden" : nil))
            envelopes.append(
                event(id, .instanceAssigned(InstanceAssigned(executorID: fixedExecutor, attempt: 1)), at: at + 1))
            envelopes.append(event(id, .instanceStarted(InstanceStarted(executorID: fixedExecutor)), at: at + 2))
            envelopes.append(
                event(
                    id,
                    .logAppended(
                        LogAppended(lines: [LogLine(at: Timestamp(millis: at + 3), level: .info, text: "step \(n)")])),
                    at: at + 3))
            envelopes.append(
                event(
                    id,
                    .stepsRecorded(
                        StepsRecorded(steps: [
                            StepRecord(
                                flow: "main", step: "log", file: "processes/main.yml", line: 2, column: 3,
                                startedAt: Timestamp(millis: at + 3), durationMicros: 42, outcome: .ok)
                        ])), at: at + 4))
            envelopes.append(event(id, end, at: at + 5))
        }
        return envelopes
    }

    private var golden: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/log-1")
    }

    @Test func aLogWrittenByThisVersionStillOpensReadsAndVerifies() async throws {
        if let record = ProcessInfo.processInfo.environment["ACCORD_RECORD_GOLDEN_LOG"] {
            // Recording a new fixture (only when the format changes on purpose): a fresh folder.
            let log = try FileEventLog(directory: record, fsync: false)
            try await log.append(Self.history()).durable()
            log.close()
        }
        // A copy: opening a log may take its lock and cut a torn tail; the fixture stays as it is.
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: golden.path, toPath: dir)

        let report = try LogVerifier.verify(directory: dir)
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.events == 24 && report.firstSeq == 1 && report.lastSeq == 24)
        #expect(report.instancesByStatus == [.finished: 1, .failed: 1, .cancelled: 1, .timedOut: 1])

        let log = try FileEventLog(directory: dir, fsync: false)
        defer { log.close() }
        var read: [EventEnvelope] = []
        try log.scan { read.append($0) }
        var expected = Self.history()
        for index in expected.indices { expected[index].seq = UInt64(index + 1) }
        #expect(read == expected)
    }
}
