import Foundation
import Synchronization
import TestSupport
import Testing
import Wire

@testable import EventLog
@testable import Model

@Suite struct FileEventLogTests {
    private func drafts(_ count: Int) -> [EventEnvelope] {
        (0..<count).map { i in
            event(
                InstanceID(),
                .logAppended(
                    LogAppended(lines: [LogLine(at: Timestamp(millis: Int64(i)), level: .info, text: "line \(i)")])))
        }
    }

    /// The commit hook is called the same way at the thousandth commit as at the first: it used to
    /// sit behind one more pair of reabstraction thunks per commit (quadratic time, and in the end
    /// a stack overflow on the writer thread of a long-running Scheduler).
    @Test func theCommitHookDoesNotGrowWithEveryCommit() async throws {
        let dir = NSTemporaryDirectory() + "accord-hook-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try FileEventLog(directory: dir, fsync: false)
        defer { log.close() }
        let depths = Mutex<[Int]>([])
        log.onCommit { _, _ in
            let depth = Thread.callStackReturnAddresses.count
            depths.withLock { $0.append(depth) }
        }
        for _ in 0..<1000 { try await log.append(drafts(1)).durable() }
        let seen = depths.withLock { $0 }
        #expect(seen.count == 1000)
        #expect(seen.first ?? 0 > 0, "no call stack to compare")
        #expect(
            seen.first == seen.last, "the hook's call stack grew from \(seen.first ?? 0) to \(seen.last ?? 0) frames")
    }

    @Test func appendsAreNumberedDurableAndReadBack() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        let ticket = log.append(drafts(3))
        #expect(ticket.envelopes.map(\.seq) == [1, 2, 3])
        try await ticket.durable()
        #expect(log.durableHead == 3)
        #expect(try log.read(after: 1, limit: 10).map(\.seq) == [2, 3])
        #expect(try log.read(seqs: [3, 1, 99]).map(\.seq) == [3, 1])
        log.close()

        let reopened = try FileEventLog(directory: dir)
        #expect(reopened.durableHead == 3)
        #expect(reopened.recovery.truncatedBytes == 0)
        let next = reopened.append(drafts(1))
        try await next.durable()
        #expect(next.envelopes.map(\.seq) == [4])
        var scanned: [UInt64] = []
        try reopened.scan { scanned.append($0.seq) }
        #expect(scanned == [1, 2, 3, 4])
        reopened.close()
    }

    /// Appends from 200 tasks at once are all made durable, each once. (That appends made during a
    /// write share the next one is `appendsMadeDuringAWriteShareTheNext`, which does not depend on
    /// how the pool happens to interleave these tasks with the fsyncs.)
    @Test func concurrentAppendsAreAllDurable() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<200 {
                group.addTask { try await log.append(drafts(1)).durable() }
            }
            try await group.waitForAll()
        }
        #expect(log.durableHead == 200)
        #expect(log.appendStats.events == 200)
        var scanned: [UInt64] = []
        try log.scan { scanned.append($0.seq) }
        #expect(scanned == Array(1...200))
        log.close()
    }

    /// A write cut off mid-record (a crash during the append) was never acknowledged: reopening cuts
    /// it and the log goes on from the last whole record.
    @Test(arguments: [1, 5, 9, 20])
    func tornTailIsTruncated(cut: Int) async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        try await log.append(drafts(5)).durable()
        log.close()
        let segment = try #require(
            try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.first)
        let path = dir + "/" + segment
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.truncate(atOffset: UInt64(size - cut))
        try handle.close()

        let reopened = try FileEventLog(directory: dir)
        #expect(reopened.durableHead == 4)
        #expect(reopened.recovery.truncatedBytes > 0)
        let next = reopened.append(drafts(1))
        try await next.durable()
        #expect(next.envelopes.first?.seq == 5)
        #expect(try reopened.read(after: 0, limit: 10).map(\.seq) == [1, 2, 3, 4, 5])
        reopened.close()
    }

    @Test func corruptLastRecordIsTruncated() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        try await log.append(drafts(3)).durable()
        log.close()
        let path =
            dir + "/"
            + (try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.sorted()
                .first!)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))

        let reopened = try FileEventLog(directory: dir)
        #expect(reopened.durableHead == 2)
        #expect(reopened.recovery.reason?.contains("checksum") == true)
        reopened.close()
    }

    /// Damage in the last segment with intact records after it is not a torn write: cutting there
    /// would drop acknowledged events, so the log refuses to open and says where.
    @Test func damageBeforeIntactRecordsRefusesToOpen() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        try await log.append(drafts(3)).durable()
        log.close()
        let path =
            dir + "/"
            + (try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.sorted()
                .first!)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[RecordFormat.segmentHeader.count + 12] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect {
            try FileEventLog(directory: dir)
        } throws: { error in
            "\(error)".contains("at byte \(RecordFormat.segmentHeader.count)")
                && "\(error)".contains("intact records after it")
        }
        let untouched = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(untouched == bytes, "opening must not have cut anything")
    }

    @Test func garbageAppendedAfterTheLastRecordIsTruncated() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        try await log.append(drafts(2)).durable()
        log.close()
        let path =
            dir + "/"
            + (try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.sorted()
                .first!)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3]))
        try handle.close()
        let reopened = try FileEventLog(directory: dir)
        #expect(reopened.durableHead == 2)
        #expect(reopened.recovery.truncatedBytes == 7)
        reopened.close()
    }

    /// Damage before the last segment is not a torn write: reading it fails instead of guessing,
    /// and once its index is gone (so it is walked) opening refuses.
    @Test func damageInAnEarlierSegmentIsRefused() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 512)
        for _ in 0..<10 { try await log.append(drafts(3)).durable() }
        log.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter {
            $0.hasPrefix("segment-") && $0.hasSuffix(".log")
        }.sorted()
        #expect(segments.count > 2)
        let path = dir + "/" + segments[0]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        // Indexed: opening does not read it, but no read of it passes for an event.
        let indexed = try FileEventLog(directory: dir)
        #expect(throws: EventLogError.self) { try indexed.read(after: 0, limit: 100) }
        #expect(throws: EventLogError.self) { try indexed.scan { _ in } }
        indexed.close()
        #expect(try !LogVerifier.verify(directory: dir).ok)
        try FileManager.default.removeItem(atPath: SegmentIndex.path(forSegment: path))
        #expect(throws: EventLogError.self) { try FileEventLog(directory: dir) }
    }

    /// What a catch-up sends: each event's JSON as stored, checked (checksum, number) but not
    /// decoded, the same events `read` decodes, across sealed segments and the last one.
    @Test func storedEventsAreWhatReadReads() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 900)
        defer { log.close() }
        for event in everyEventType() { try await log.append([event]).durable() }
        for _ in 0..<10 { try await log.append(drafts(3)).durable() }
        #expect(log.mappedSegments > 2)
        for after in [0, 5, UInt64(everyEventType().count)] {
            let read = try log.read(after: after, limit: 1000)
            let stored = try log.readStored(after: after, limit: 1000)
            #expect(stored.map(\.seq) == read.map(\.seq))
            #expect(stored.map(\.json) == (try read.map { try EventRecord.body(of: $0) }))
        }
        #expect(try log.readStored(after: 3, limit: 2).map(\.seq) == [4, 5])
        let json = Array(#"{"at":1,"data":{"out":{"seq":5}},"instanceId":"x","seq":7,"type":"T","version":1}"#.utf8)
        #expect(FileEventLog.storedSeq(json) == 7)
        #expect(FileEventLog.storedSeq(Array(#"{"at":1}"#.utf8)) == nil)
    }

    /// Reading the whole history (a new Gateway's catch-up, a replay, single events) maps no index:
    /// mapped pages count in the process's resident set, which then grew with the history.
    @Test func readingTheHistoryMapsNoIndex() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        do {
            let log = try FileEventLog(directory: dir, segmentBytes: 600)
            for _ in 0..<30 { try await log.append(drafts(2)).durable() }
            log.close()
        }
        let log = try FileEventLog(directory: dir, segmentBytes: 600)
        defer { log.close() }
        #expect(log.mappedSegments > 4)
        #expect(try log.read(after: 0, limit: 1000).map(\.seq) == Array(1...60))
        #expect(try log.read(seqs: [60, 1, 33]).map(\.seq) == [60, 1, 33])
        var seqs: [UInt64] = []
        try log.scan { seqs.append($0.seq) }
        #expect(seqs == Array(1...60))
        let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        #expect(
            !maps.split(separator: "\n").contains { $0.contains(dir) && $0.hasSuffix(".idx") }, "an index is mapped")
    }

    /// Every segment before the last is sealed with an index when the next begins: opening reads
    /// the indexes and the last segment, memory holds the last segment's offsets only, and an
    /// index that does not hold (damaged, short, of another size, missing) is rebuilt by a walk.
    @Test func sealedSegmentsAreIndexedAndNotWalked() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 600)
        for _ in 0..<30 { try await log.append(drafts(2)).durable() }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        let logs = names.filter { $0.hasSuffix(".log") }.sorted()
        #expect(logs.count > 4)
        #expect(
            Set(names.filter { $0.hasSuffix(".idx") })
                == Set(logs.dropLast().map { $0.replacingOccurrences(of: ".log", with: ".idx") }))
        #expect(log.mappedSegments == logs.count - 1)
        log.close()

        let first = dir + "/" + logs[0]
        let index = SegmentIndex.path(forSegment: first)
        let good = try Data(contentsOf: URL(fileURLWithPath: index))
        var flipped = good
        flipped[SegmentIndex.headerSize + 8] ^= 0x01
        for damaged in [flipped, good.prefix(good.count - 8), good.prefix(10), Data()] {
            try damaged.write(to: URL(fileURLWithPath: index))
            let reopened = try FileEventLog(directory: dir, segmentBytes: 600)
            #expect(try reopened.read(after: 0, limit: 1000).map(\.seq) == Array(1...60))
            #expect(reopened.mappedSegments == logs.count - 1)
            reopened.close()
            #expect(try Data(contentsOf: URL(fileURLWithPath: index)) == good, "the index was not rebuilt")
        }
        try FileManager.default.removeItem(atPath: index)
        try Data("left by a crash".utf8).write(to: URL(fileURLWithPath: index + ".tmp"))
        let reopened = try FileEventLog(directory: dir, segmentBytes: 600)
        var seqs: [UInt64] = []
        try reopened.scan { seqs.append($0.seq) }
        #expect(seqs == Array(1...60))
        #expect(try Data(contentsOf: URL(fileURLWithPath: index)) == good)
        reopened.close()
    }

    @Test func readsAcrossRolledSegments() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir, segmentBytes: 400)
        for _ in 0..<20 { try await log.append(drafts(2)).durable() }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("segment-") }.count > 3)
        #expect(try log.read(after: 0, limit: 1000).map(\.seq) == Array(1...40))
        log.close()
        let reopened = try FileEventLog(directory: dir, segmentBytes: 400)
        #expect(reopened.durableHead == 40)
        var count = 0
        try reopened.scan(from: 11) { _ in count += 1 }
        #expect(count == 30)
        reopened.close()
    }

    @Test func waitDurableReturnsOnceTheSequenceIsOnDisk() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        try await log.waitDurable(0)
        let ticket = log.append(drafts(3))
        try await log.waitDurable(3)
        #expect(log.durableHead >= 3)
        try await ticket.durable()
        try await log.waitDurable(2)
        log.close()
    }

    @Test func commitHookSeesBatchesInLogOrder() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let log = try FileEventLog(directory: dir)
        let seen = SeenSeqs()
        let mismatches = Mutex(0)
        log.onCommit { envelopes, json in
            seen.add(envelopes.map(\.seq))
            // The JSON handed along is each envelope as stored, and what a Gateway reads back
            // from the message built of it is the batch itself.
            let head = envelopes.last?.seq ?? 0
            let header = CommittedEvents.json(encodedEvents: json, head: head)
            let expected = try? EventCodec.makeEncoder().encode(CommittedEvents(events: envelopes, head: head))
            let fast = try? CommittedEvents.decode(header[...])
            if json.count != envelopes.count || Array(expected ?? Data()) != header || fast?.events != envelopes
                || fast?.head != head
            {
                mismatches.withLock { $0 += 1 }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { try await log.append(drafts(2)).durable() } }
            try await group.waitForAll()
        }
        #expect(seen.all == Array(1...100))
        #expect(mismatches.withLock { $0 } == 0)
        log.close()
    }
}

final class SeenSeqs: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var seqs: [UInt64] = []
    func add(_ more: [UInt64]) { lock.withLock { seqs += more } }
    var all: [UInt64] { lock.withLock { seqs } }
}

@Suite struct FileEventLogLockTests {
    /// One writer per log: a second opener (another Scheduler, an import) is refused while the
    /// first holds it, and welcome once it has closed.
    @Test func aSecondWriterIsRefusedUntilTheFirstCloses() throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let first = try FileEventLog(directory: dir, fsync: false)
        #expect {
            try FileEventLog(directory: dir, fsync: false)
        } throws: { "\($0)".contains("in use by another process") }
        first.close()
        let second = try FileEventLog(directory: dir, fsync: false)
        second.close()
    }

    /// A refused open closes its descriptor once. It used to close it a second time in `deinit`
    /// (a throwing init that has set every property runs it), by when another thread could hold
    /// that number: here a thread that opens a file, then checks the descriptor is still that file.
    @Test func aRefusedOpenClosesNoOneElsesFile() throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let holder = try FileEventLog(directory: dir, fsync: false)
        defer { holder.close() }
        let probe = dir + "/probe"
        try Data("probe".utf8).write(to: URL(fileURLWithPath: probe))
        var info = stat()
        stat(probe, &info)
        let inode = info.st_ino
        let stop = Atomic<Bool>(false)
        let stolen = Atomic<Int>(0)
        let checker = Thread {
            while !stop.load(ordering: .relaxed) {
                let fd = open(probe, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { continue }
                for _ in 0..<20 {
                    var seen = stat()
                    if fstat(fd, &seen) != 0 || seen.st_ino != inode {
                        stolen.add(1, ordering: .relaxed)
                        break
                    }
                }
                close(fd)
            }
        }
        checker.start()
        // 5,000: enough to see hundreds of stolen descriptors without the fix, short enough not to
        // starve the suites running beside it (the checker spins a core meanwhile).
        for _ in 0..<5_000 { _ = try? FileEventLog(directory: dir, fsync: false) }
        stop.store(true, ordering: .relaxed)
        Thread.sleep(forTimeInterval: 0.05)
        #expect(stolen.load(ordering: .relaxed) == 0, "a refused open closed another thread's file")
    }
}
