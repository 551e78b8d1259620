import Foundation
import TestSupport
import Testing
import Wire

@testable import EventLog
@testable import Model

/// `accord log verify`'s checks, each on a log damaged in one way.
@Suite struct LogVerifierTests {
    private func write(_ events: [Event], for id: InstanceID = InstanceID(), in dir: String) async throws {
        let log = try FileEventLog(directory: dir, fsync: false)
        try await log.append(events.map { event(id, $0) }).durable()
        log.close()
    }

    private let assigned = Event.instanceAssigned(InstanceAssigned(executorID: ExecutorID("e/1"), attempt: 1))
    private let started = Event.instanceStarted(InstanceStarted(executorID: ExecutorID("e/1")))
    private let finished = Event.instanceFinished(InstanceFinished(out: [:]))

    @Test func aSoundLogVerifies() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        try await write([created().event, assigned, started, finished], in: dir)
        let report = try LogVerifier.verify(directory: dir)
        #expect(report.ok)
        #expect(report.events == 4 && report.firstSeq == 1 && report.lastSeq == 4)
        #expect(report.instancesByStatus == [.finished: 1])
        #expect(report.eventsByType["InstanceStarted"] == 1)
    }

    @Test(arguments: [
        ("back", "moves back from RUNNING to STARTING"),
        ("afterTerminal", "after its terminal FINISHED"),
        ("neverCreated", "never created"),
        ("twice", "created a second time"),
    ])
    func statusRulesAreChecked(kind: String, expected: String) async throws {
        let dir = temporaryDirectory("\(#function)-\(kind)")
        defer { cleanUp(dir) }
        let events: [Event] =
            switch kind {
            case "back": [created().event, assigned, started, assigned]
            case "afterTerminal": [created().event, assigned, started, finished, started]
            case "neverCreated": [assigned]
            default: [created().event, created().event]
            }
        try await write(events, in: dir)
        let report = try LogVerifier.verify(directory: dir)
        #expect(!report.ok)
        #expect(report.failure?.reason.contains(expected) == true, "\(String(describing: report.failure))")
        #expect(report.failure?.reason.hasPrefix("sequence \(events.count):") == true)
    }

    @Test func keyEventsVerifyAsTheirOwnStream() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, fsync: false)
        try await log.append([created()] + everyKeyEvent()).durable()
        log.close()
        let report = try LogVerifier.verify(directory: dir)
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.instancesByStatus == [.enqueued: 1])
        #expect(report.eventsByType["ApiKeyCreated"] == 1 && report.eventsByType["ApiKeyRevoked"] == 1)
    }

    @Test(arguments: [
        ("revokedTwice", "revoked a second time"), ("neverCreated", "revoked but was never created"),
        ("createdTwice", "created a second time"), ("anInstancesID", "which is an instance"),
        ("aKeysID", "which is an API key"),
    ])
    func keyRulesAreChecked(kind: String, expected: String) async throws {
        let dir = temporaryDirectory("\(#function)-\(kind)")
        defer { cleanUp(dir) }
        let keys = everyKeyEvent()
        let events: [EventEnvelope] =
            switch kind {
            case "revokedTwice": keys + [keys[1]]
            case "neverCreated": [keys[1]]
            case "createdTwice": [keys[0], keys[0]]
            case "anInstancesID": [created()] + everyKeyEvent(fixedID)
            default: [keys[0], event(fixedKeyID, assigned)]
            }
        let log = try FileEventLog(directory: dir, fsync: false)
        try await log.append(events).durable()
        log.close()
        let report = try LogVerifier.verify(directory: dir)
        #expect(report.failure?.reason.contains(expected) == true, "\(String(describing: report.failure))")
    }

    @Test func aTornTailIsReportedButSound() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        try await write([created().event, assigned], in: dir)
        let segment = try #require(try EventLogReader(directory: dir).segments.last)
        let handle = try #require(FileHandle(forWritingAtPath: segment))
        handle.seekToEndOfFile()
        handle.write(Data([0x40, 0, 0, 0, 1, 2]))
        try handle.close()
        let report = try LogVerifier.verify(directory: dir)
        #expect(report.ok)
        #expect(report.events == 2)
        #expect(report.tornTail?.reason.contains("cut short") == true)
    }

    @Test func damageBeforeTheTailFailsWithItsOffset() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 200, fsync: false)
        for _ in 0..<4 { try await log.append([created(InstanceID())]).durable() }
        log.close()
        let segments = try EventLogReader(directory: dir).segments
        #expect(segments.count >= 2)
        // Flip one byte inside the first record of the first segment.
        let handle = try #require(FileHandle(forUpdatingAtPath: segments[0]))
        handle.seek(toFileOffset: UInt64(RecordFormat.segmentHeader.count + 20))
        let byte = handle.readData(ofLength: 1)
        handle.seek(toFileOffset: UInt64(RecordFormat.segmentHeader.count + 20))
        handle.write(Data([byte[0] ^ 0xFF]))
        try handle.close()
        let report = try LogVerifier.verify(directory: dir)
        #expect(!report.ok)
        #expect(report.failure?.segment == segments[0])
        #expect(report.failure?.offset == RecordFormat.segmentHeader.count)
        #expect(report.failure?.reason.contains("checksum") == true)
    }
}
