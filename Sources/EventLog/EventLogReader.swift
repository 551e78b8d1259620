import Foundation
import Model

/// Reads a data folder's event log without changing it: what the tooling (`accord log verify`,
/// `export`, `show`, `scan`) uses, offline or beside a running Scheduler. Unlike `FileEventLog`,
/// which cuts a torn tail on open, it only reports what it finds.
package struct EventLogReader {
    /// Where reading stopped early, and why.
    package struct Problem: Error, CustomStringConvertible, Sendable {
        package var segment: String
        package var offset: Int
        package var reason: String
        /// In the last segment after its last intact record: a torn write the Scheduler cuts (it was
        /// never acknowledged), not damage.
        package var isTornTail: Bool

        package init(segment: String, offset: Int, reason: String, isTornTail: Bool) {
            self.segment = segment
            self.offset = offset
            self.reason = reason
            self.isTornTail = isTornTail
        }

        package var description: String {
            "\(segment) at byte \(offset): \(reason)\(isTornTail ? " (a torn tail: never acknowledged, cut when the Scheduler opens the log)" : "")"
        }
    }

    package let directory: String
    package let segments: [String]
    /// Reading retention's archive files (`EventArchive`), not a log: each holds some events of
    /// the history, in order, and says nothing of the numbers between files.
    package let isArchive: Bool

    /// The log in `directory`; or, where `directory` is an archive file (`.log.gz`) or a folder of
    /// them with no log, those archives.
    package init(directory: String) throws {
        self.directory = directory
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder) else {
            throw EventLogError("\(directory) does not exist")
        }
        guard isFolder.boolValue else {
            guard directory.hasSuffix(".log.gz") else {
                throw EventLogError("\(directory) is neither a log folder nor an archive file (.log.gz)")
            }
            segments = [directory]
            isArchive = true
            return
        }
        let logs = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }.sorted()
            .map { directory + "/" + $0 }
        let archives = logs.isEmpty ? EventArchive.files(in: directory) : []
        segments = archives.isEmpty ? logs : archives
        isArchive = !archives.isEmpty
    }

    /// A segment's bytes: mapped, or an archive's inflated.
    private func contents(_ path: String) throws -> Data {
        if isArchive { return try EventArchive.read(path) }
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    }

    /// Where the numbers of the segment at `index` must end (the next segment's first), if known.
    private func end(after index: Int) -> UInt64? {
        guard !isArchive, index + 1 < segments.count else { return nil }
        return FileEventLog.firstSeq(ofSegment: (segments[index + 1] as NSString).lastPathComponent)
    }

    /// A segment's first sequence number (from its name), checked against where the one before ended.
    private func firstSeq(of path: String, expected: UInt64?) -> Result<UInt64, Problem> {
        if isArchive { return .success(0) }
        let name = (path as NSString).lastPathComponent
        guard let firstSeq = FileEventLog.firstSeq(ofSegment: name) else {
            return .failure(Problem(segment: path, offset: 0, reason: "not a segment name", isTornTail: false))
        }
        if let expected, firstSeq != expected {
            return .failure(
                Problem(
                    segment: path, offset: 0,
                    reason: "starts at sequence \(firstSeq) but the segment before it ends at \(expected - 1)",
                    isTornTail: false))
        }
        return .success(firstSeq)
    }

    /// The folder holding the log: `DATA/events` for a data folder, or the log folder itself.
    package static func logDirectory(forData data: String) -> String {
        FileManager.default.fileExists(atPath: data + "/events") ? data + "/events" : data
    }

    /// Calls `body` with each intact record's sequence number (by position), segment, offset and
    /// bytes, in order. Returns where it stopped early, if it did.
    package func forEachRecord(_ body: (_ seq: UInt64, _ segment: String, _ offset: Int, _ bytes: Data) throws -> Void)
        throws -> Problem?
    {
        var expectedFirst: UInt64?
        for (index, path) in segments.enumerated() {
            let firstSeq: UInt64
            switch self.firstSeq(of: path, expected: expectedFirst) {
            case .success(let seq): firstSeq = seq
            case .failure(let problem): return problem
            }
            let data = try contents(path)
            let sparse = RecordFormat.isSparse(data)
            var seq = firstSeq
            var failure: (any Error)?
            let walk = RecordFormat.walk(data) { offset, bytes in
                guard failure == nil else { return }
                do {
                    // A rewritten segment's records say their numbers; a whole one's follow their places.
                    if sparse { seq = try FastEventDecoder.decode(bytes).seq }
                    try body(seq, path, offset, bytes)
                } catch { failure = error }
                seq += 1
            }
            if let failure { throw failure }
            if let problem = walk.problem {
                let torn = index == segments.count - 1 && !walk.intactAfter
                return Problem(
                    segment: path, offset: walk.end,
                    reason: problem + (walk.intactAfter ? ", with intact records after it" : ""), isTornTail: torn)
            }
            expectedFirst = sparse ? end(after: index) : seq
        }
        return nil
    }

    /// What a record turned out to be, checked and decoded on any core.
    package enum Checked {
        case event(EventEnvelope)
        case undecodable(any Error)
        case checksumMismatch
    }

    /// Every intact record checked and decoded, in order, with where it is and its bytes (the
    /// event's stored encoding): like `forEachRecord`, but checksums and decoding run on every
    /// core, a batch of records at a time (`body` still sees them in order).
    package func forEachDecoded(
        _ body: (
            _ seq: UInt64, _ segment: String, _ offset: Int, _ bytes: Data, _ decoded: Result<EventEnvelope, any Error>
        )
            throws -> Void
    ) throws -> Problem? {
        var expectedFirst: UInt64?
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        for (index, path) in segments.enumerated() {
            let firstSeq: UInt64
            switch self.firstSeq(of: path, expected: expectedFirst) {
            case .success(let seq): firstSeq = seq
            case .failure(let problem): return problem
            }
            let data = try contents(path)
            let sparse = RecordFormat.isSparse(data)
            let bound = end(after: index)
            var previous: UInt64?
            let isLast = index == segments.count - 1
            func problem(_ reason: String, at offset: Int) -> Problem {
                let intactAfter = RecordFormat.hasIntactRecord(data, after: offset)
                return Problem(
                    segment: path, offset: offset,
                    reason: reason + (intactAfter ? ", with intact records after it" : ""),
                    isTornTail: isLast && !intactAfter)
            }
            // The frame only (lengths and bounds), sequentially; checksums and decoding in parallel.
            let read = RecordFormat.frames(data)
            if read.frames.isEmpty, let frameProblem = read.problem, read.end == 0 {
                return problem(frameProblem, at: 0)
            }
            let records = read.frames
            let batch = 8192
            var start = 0
            while start < records.count {
                let slice = Array(records[start..<min(start + batch, records.count)])
                let results = CheckedBatch(count: slice.count)
                let chunk = (slice.count + workers - 1) / workers
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let from = worker * chunk
                    let to = min(from + chunk, slice.count)
                    guard from < to else { return }
                    for i in from..<to {
                        let record = slice[i]
                        let bytes = data[record.body]
                        guard bytes.crc32() == record.crc else {
                            results.set(i, .checksumMismatch)
                            continue
                        }
                        do {
                            results.set(i, .event(try FastEventDecoder.decode(bytes)))
                        } catch {
                            results.set(i, .undecodable(error))
                        }
                    }
                }
                for (i, record) in slice.enumerated() {
                    let decoded: Result<EventEnvelope, any Error>
                    var seq = firstSeq + UInt64(start + i)
                    switch results.get(i) {
                    case .checksumMismatch: return problem("a record's checksum does not match", at: record.offset)
                    case .event(let envelope):
                        decoded = .success(envelope)
                        if sparse {
                            // Retention removed some numbers: the rest still rise, within the span.
                            seq = envelope.seq
                            let fits = seq >= firstSeq && seq > (previous ?? 0) && seq < (bound ?? .max)
                            if !fits {
                                return problem(
                                    "sequence \(seq) is out of order in a rewritten segment", at: record.offset)
                            }
                        }
                    case .undecodable(let error): decoded = .failure(error)
                    }
                    previous = seq
                    try body(seq, path, record.offset, data[record.body], decoded)
                }
                start += batch
            }
            if let frameProblem = read.problem { return problem(frameProblem, at: read.end) }
            expectedFirst = sparse ? bound : firstSeq + UInt64(records.count)
        }
        return nil
    }

    /// Every intact event, decoded, in order (stops quietly at a torn tail; throws on damage).
    package func forEachEvent(_ body: (EventEnvelope) throws -> Void) throws {
        try forEachEvent { envelope, _ in try body(envelope) }
    }

    /// Every intact event with its bytes as stored, in order.
    package func forEachEvent(_ body: (EventEnvelope, Data) throws -> Void) throws {
        if let problem = try forEachDecoded({ seq, segment, offset, bytes, decoded in
            let envelope: EventEnvelope
            do {
                envelope = try decoded.get()
            } catch {
                throw Problem(
                    segment: segment, offset: offset, reason: "the event does not decode: \(error)", isTornTail: false)
            }
            guard envelope.seq == seq else {
                throw Problem(
                    segment: segment, offset: offset, reason: "sequence \(envelope.seq) where \(seq) belongs",
                    isTornTail: false)
            }
            try body(envelope, bytes)
        }), !problem.isTornTail {
            throw problem
        }
    }
}

/// Results written by several threads, each to its own index, read after they are done.
private final class CheckedBatch: @unchecked Sendable {
    // @unchecked: each slot is written by exactly one thread before `concurrentPerform` returns;
    // raw storage, so no exclusivity check sees the concurrent writes to different slots.
    private let slots: UnsafeMutableBufferPointer<EventLogReader.Checked>

    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: .checksumMismatch)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    func set(_ index: Int, _ result: EventLogReader.Checked) { slots[index] = result }

    func get(_ index: Int) -> EventLogReader.Checked { slots[index] }
}
