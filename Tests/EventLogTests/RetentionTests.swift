import Foundation
import TestSupport
import Testing

@testable import EventLog
@testable import Model

/// Retention on the file log: sealed segments rewritten without the events a pass removes, the
/// numbers left with holes that every reader walks across, the removed events archived, and a
/// crash at any step of a rewrite leaving a log that opens and verifies.
@Suite struct RetentionTests {
    /// Instances of three events each (created, a log line, finished), every one `millis` apart in
    /// time; returns their ids in order.
    private func fill(_ log: FileEventLog, instances: Int, from start: Int64 = 1_000) async throws -> [InstanceID] {
        var ids: [InstanceID] = []
        for n in 0..<instances {
            let id = InstanceID()
            ids.append(id)
            let at = start + Int64(n) * 10
            try await log.append([
                event(id, created(id).event, at: at),
                event(
                    id,
                    .logAppended(LogAppended(lines: [LogLine(at: Timestamp(millis: at), level: .info, text: "n\(n)")])),
                    at: at + 1),
                event(id, .instanceFinished(InstanceFinished(out: [:])), at: at + 2),
            ]).durable()
        }
        return ids
    }

    private func allEvents(_ log: FileEventLog) throws -> [EventEnvelope] {
        var events: [EventEnvelope] = []
        try log.scan { events.append($0) }
        return events
    }

    /// Everything the reader API shows must agree: scan, read(after:) page by page, read(seqs:).
    private func expectReadersAgree(_ log: FileEventLog, _ expected: [UInt64]) throws {
        #expect(try allEvents(log).map(\.seq) == expected)
        var paged: [UInt64] = []
        var after: UInt64 = 0
        while true {
            let page = try log.read(after: after, limit: 7)
            guard let last = page.last else { break }
            paged += page.map(\.seq)
            after = last.seq
        }
        #expect(paged == expected)
        #expect(try log.read(seqs: Array(1...log.durableHead)).map(\.seq) == expected)
    }

    @Test func aReclaimRemovesTheChosenEventsAndEveryReaderWalksAcrossTheHoles() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false)
        let ids = try await fill(log, instances: 40)
        let expired = Set(ids.prefix(20))
        let before = Timestamp(millis: 1_000 + 20 * 10)
        let archive = try EventArchive(directory: dir + "-archive", fsync: false)
        defer { cleanUp(dir + "-archive") }
        #expect(try LogVerifier.verify(directory: dir).ok)
        let all = try allEvents(log)

        let report = try log.reclaim(before: before, archive: archive) { expired.contains($0.instanceID) }
        // The log's first event and its instance stay (it names the log); the segment being
        // written is never touched.
        let keptSeqs = all.filter {
            $0.instanceID == ids[0] || !expired.contains($0.instanceID) || $0.seq >= lastSegmentFirst(dir)
        }
        .map(\.seq)
        #expect(report.events == all.count - keptSeqs.count)
        #expect(report.events > 40)
        #expect(report.bytesAfter < report.bytesBefore)
        try expectReadersAgree(log, keptSeqs)
        #expect(try LogVerifier.verify(directory: dir).ok)

        // The archive holds exactly what left, readable and verifiable by the tool's reader.
        var archived: [UInt64] = []
        try EventLogReader(directory: dir + "-archive").forEachEvent { archived.append($0.seq) }
        #expect(archived == all.map(\.seq).filter { !keptSeqs.contains($0) })
        #expect(try LogVerifier.verify(directory: dir + "-archive").ok)

        // A second pass with the same choice has nothing left to do; appends go on after it.
        #expect(try log.reclaim(before: before, archive: archive) { expired.contains($0.instanceID) }.events == 0)
        _ = try await fill(log, instances: 2, from: 9_000)
        let head = log.durableHead
        log.close()

        // Reopened from the rewritten segments' indexes, and again after losing every index.
        for dropIndexes in [false, true] {
            if dropIndexes {
                for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".idx") {
                    try FileManager.default.removeItem(atPath: dir + "/" + name)
                }
            }
            let reopened = try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false)
            #expect(reopened.durableHead == head)
            try expectReadersAgree(reopened, keptSeqs + Array((keptSeqs.last! + 1)...head))
            reopened.close()
        }
        #expect(try LogVerifier.verify(directory: dir).ok)
    }

    private func lastSegmentFirst(_ dir: String) -> UInt64 {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".log") }.sorted().last.flatMap { FileEventLog.firstSeq(ofSegment: $0) } ?? 0
    }

    /// Only sealed segments whose first event is older than the cutoff are looked at.
    @Test func onlyTheSealedHistoryBeforeTheCutoffIsReclaimable() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false)
        defer { log.close() }
        _ = try await fill(log, instances: 30)
        var seen: [EventEnvelope] = []
        try log.scanReclaimable(before: Timestamp(millis: 1_100)) { seen.append($0) }
        #expect(!seen.isEmpty)
        #expect(seen.first?.seq == 1)
        // Whole segments: the last one looked at starts before the cutoff, the next does not.
        #expect(seen.dropLast().allSatisfy { $0.at.millis < 1_200 })
        #expect(try allEvents(log).count > seen.count)
        var none: [EventEnvelope] = []
        try log.scanReclaimable(before: Timestamp(millis: 0)) { none.append($0) }
        #expect(none.isEmpty)
        // Removing everything still keeps the first instance whole.
        _ = try log.reclaim(before: Timestamp(millis: .max), archive: nil) { _ in true }
        #expect(try log.read(after: 0, limit: 3).map(\.seq) == [1, 2, 3])
        #expect(try LogVerifier.verify(directory: dir).ok)
    }

    /// A crash between the steps of a rewrite: the new index written but not the segment, or a
    /// segment written aside and never renamed. The log opens with every event it had, verifies,
    /// and the next pass does the work.
    @Test func aCrashInTheMiddleOfARewriteLosesNothing() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false)
        let ids = try await fill(log, instances: 30)
        let all = try allEvents(log).map(\.seq)
        log.close()
        let first =
            dir + "/"
            + (try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".log") }.sorted()[0])
        let original = try Data(contentsOf: URL(fileURLWithPath: first))

        // Step 1 done (a sparse index for a rewrite), step 2 not: the old segment with the new index.
        let scratch = temporaryDirectory("scratch")
        defer { cleanUp(scratch) }
        try FileManager.default.copyItem(atPath: dir, toPath: scratch)
        let other = try FileEventLog(directory: scratch, segmentBytes: 2_000, fsync: false)
        _ = try other.reclaim(before: Timestamp(millis: .max), archive: nil) { $0.instanceID == ids[1] }
        other.close()
        let rewrittenIndex = try Data(
            contentsOf: URL(
                fileURLWithPath: SegmentIndex.path(forSegment: scratch + "/" + (first as NSString).lastPathComponent)))
        try rewrittenIndex.write(to: URL(fileURLWithPath: SegmentIndex.path(forSegment: first)))
        // And a rewritten segment left under its temporary name.
        try Data(RecordFormat.sparseSegmentHeader).write(to: URL(fileURLWithPath: first + ".tmp"))

        let reopened = try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false)
        #expect(try allEvents(reopened).map(\.seq) == all)
        #expect(try Data(contentsOf: URL(fileURLWithPath: first)) == original)
        // The first instance stays whole (its creation names the log); the second goes.
        #expect(
            try reopened.reclaim(before: Timestamp(millis: .max), archive: nil) { $0.instanceID == ids[0] }.events == 0)
        let report = try reopened.reclaim(before: Timestamp(millis: .max), archive: nil) { $0.instanceID == ids[1] }
        #expect(report.events == 3)
        #expect(try allEvents(reopened).map(\.seq) == all.filter { !(4...6).contains($0) })
        reopened.close()
        #expect(try LogVerifier.verify(directory: dir).ok)
    }

    /// A rewritten segment that is damaged is refused, not silently read past.
    @Test func damageInARewrittenSegmentIsFound() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false)
        let ids = try await fill(log, instances: 30)
        _ = try log.reclaim(before: Timestamp(millis: .max), archive: nil) { $0.instanceID == ids[1] }
        log.close()
        let first =
            dir + "/"
            + (try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".log") }.sorted()[0])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: first))
        #expect(RecordFormat.isSparse(bytes))
        bytes[bytes.count - 5] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: first))
        #expect(try !LogVerifier.verify(directory: dir).ok)
        try FileManager.default.removeItem(atPath: SegmentIndex.path(forSegment: first))
        #expect(throws: EventLogError.self) { try FileEventLog(directory: dir, segmentBytes: 2_000, fsync: false) }
    }
}
