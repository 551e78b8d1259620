import CZlib
import Foundation
import Model
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// What one reclaim removed.
package struct ReclaimReport: Sendable, Equatable {
    /// Events removed from the log (and archived, when an archive was given).
    package var events = 0
    /// Segments rewritten (file log) or delete batches committed (PostgreSQL).
    package var rewrites = 0
    /// Bytes the log held before and after, over what was rewritten.
    package var bytesBefore: UInt64 = 0
    package var bytesAfter: UInt64 = 0
    /// The archive files written.
    package var archives: [String] = []

    package init() {}
}

/// The history a log can give up: the part retention looks at, and the removal itself.
///
/// Only events older than a cutoff are ever candidates, and never the log's first event (it
/// names the log: a Gateway tells one log from another by it) nor the rest of its stream. A removal is all or nothing per
/// rewrite (a segment, or a batch of rows): a crash in the middle leaves the log as it was before
/// that rewrite or after it, and the archive holds everything removed before it leaves the log.
package protocol RetainingLog: Sendable {
    /// Calls `body` with the events a reclaim with this cutoff would look at (the sealed history
    /// older than `before`, and the events beside it), in log order.
    func scanReclaimable(before: Timestamp, _ body: (EventEnvelope) throws -> Void) async throws

    /// Removes, among the events `scanReclaimable` shows, those `remove` picks (the first event
    /// and every other event of its stream always stay, so that a fold of what is left still
    /// sees that instance whole), writing them to `archive` first when one is given.
    func reclaim(before: Timestamp, archive: EventArchive?, remove: @Sendable (EventEnvelope) -> Bool) async throws
        -> ReclaimReport
}

/// Where retention puts the events it removes: compressed files in a folder, one per rewrite,
/// named by the day of their first event and their number range
/// (`events-2026-11-03-<first>-<last>.log.gz`). Each is a gzip stream of a rewritten segment
/// (`RecordFormat`: header, then length, CRC-32 and JSON per event), so the tool reads and
/// verifies it as it reads the log. Written under a temporary name, synced, then renamed.
package struct EventArchive: Sendable {
    package let directory: String
    package let fsync: Bool

    package init(directory: String, fsync: Bool = true) throws {
        self.directory = directory
        self.fsync = fsync
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Writes one archive file holding `events` (bodies as stored), in order; returns its path.
    @discardableResult
    package func write(_ events: [(seq: UInt64, at: Timestamp, body: Data)]) throws -> String? {
        guard let first = events.first, let last = events.last else { return nil }
        var bytes = RecordFormat.sparseSegmentHeader
        for event in events { RecordFormat.append(body: event.body, to: &bytes) }
        let day = String(first.at.iso8601.prefix(10))
        let path = directory + String(format: "/events-%@-%020llu-%020llu.log.gz", day, first.seq, last.seq)
        try DurableFile.replace(path, with: try Gzip.compress(bytes), fsync: fsync)
        return path
    }

    /// The archive files in `directory`, oldest numbers first.
    package static func files(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("events-") && $0.hasSuffix(".log.gz") }
            .sorted { numbers(of: $0).lexicographicallyPrecedes(numbers(of: $1)) }.map { directory + "/" + $0 }
    }

    private static func numbers(of name: String) -> [UInt64] {
        name.dropLast(".log.gz".count).split(separator: "-").suffix(2).compactMap { UInt64($0) }
    }

    /// An archive file's bytes: a rewritten segment.
    package static func read(_ path: String) throws -> Data {
        guard let compressed = FileManager.default.contents(atPath: path) else {
            throw EventLogError("cannot read \(path)")
        }
        return try Gzip.decompress(compressed, what: path)
    }
}

/// gzip streams through zlib (the design's compression library).
enum Gzip {
    static func compress(_ bytes: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        // 15 window bits + 16: a gzip header and trailer.
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw EventLogError("zlib would not start compressing") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
        var input = bytes
        let status = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw EventLogError("compressing an archive failed (\(status))") }
        return Array(output.prefix(Int(stream.total_out)))
    }

    static func decompress(_ data: Data, what: String) throws -> Data {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw EventLogError("zlib would not start reading \(what)")
        }
        defer { inflateEnd(&stream) }
        var input = [UInt8](data)
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var status: Int32 = Z_OK
        input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { target -> Int in
                    stream.next_out = target.baseAddress
                    stream.avail_out = uInt(target.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return target.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk.prefix(produced))
            } while status == Z_OK
        }
        guard status == Z_STREAM_END, stream.avail_in == 0 else {
            throw EventLogError("\(what) is not a whole gzip stream (zlib \(status))")
        }
        return output
    }
}

extension FileEventLog: RetainingLog {
    /// The sealed segments whose first event is older than `before`, oldest first (the segment
    /// being written is never one of them). Segments are in time order, so they are a prefix.
    /// Each is mapped only when it is read: a pass holds one segment at a time.
    private func reclaimable(before: Timestamp) throws -> [Segment] {
        lock.lock()
        let sealed = Array(segments.dropLast())
        lock.unlock()
        var found: [Segment] = []
        for segment in sealed {
            if !segment.offsets.isEmpty {
                let (seq, offset) = segment.offsets.record(0, firstSeq: segment.firstSeq)
                let first = try readRecord(segment.fd, at: offset, expecting: seq, in: segment.path)
                if first.at >= before { break }
            }
            found.append(segment)
        }
        return found
    }

    /// Every record of a mapped segment, checked and decoded, with its bytes.
    private func records(of segment: Segment, in data: Data, _ body: (EventEnvelope, RecordFormat.Frame) throws -> Void)
        throws
    {
        for slot in 0..<segment.offsets.count {
            let (seq, offset) = segment.offsets.record(slot, firstSeq: segment.firstSeq)
            guard let frame = RecordFormat.frame(in: data, at: Int(offset)), RecordFormat.isIntact(frame, in: data)
            else { throw EventLogError("\(segment.path) at byte \(offset): a record is damaged") }
            try body(
                EventRecord.decode(
                    data.subdata(in: frame.body), expecting: seq, at: "\(segment.path) at byte \(offset)"),
                frame)
        }
    }

    package func scanReclaimable(before: Timestamp, _ body: (EventEnvelope) throws -> Void) throws {
        for segment in try reclaimable(before: before) {
            try records(of: segment, in: try segment.file.map()) { envelope, _ in try body(envelope) }
        }
    }

    /// Rewrites each reclaimable segment that holds events to remove: the archive first, then the
    /// new index, then the segment itself (written aside, synced, renamed over the old one). A
    /// crash before the rename leaves the old segment, whose index no longer fits and is rebuilt
    /// by a walk; the next pass removes the same events again. Appends go on meanwhile: only
    /// sealed segments are touched, and readers keep the file they started with.
    package func reclaim(before: Timestamp, archive: EventArchive?, remove: @Sendable (EventEnvelope) -> Bool) throws
        -> ReclaimReport
    {
        var report = ReclaimReport()
        let firstStream = try read(seqs: [1]).first?.instanceID
        for segment in try reclaimable(before: before) {
            let data = try segment.file.map()
            var kept: [(seq: UInt64, frame: RecordFormat.Frame)] = []
            var removed: [(seq: UInt64, at: Timestamp, body: Data)] = []
            try records(of: segment, in: data) { envelope, frame in
                if envelope.instanceID != firstStream && remove(envelope) {
                    removed.append((envelope.seq, envelope.at, data.subdata(in: frame.body)))
                } else {
                    kept.append((envelope.seq, frame))
                }
            }
            guard !removed.isEmpty else { continue }
            if let archive, let path = try archive.write(removed) { report.archives.append(path) }
            var bytes = RecordFormat.sparseSegmentHeader
            var index: [(seq: UInt64, offset: UInt64)] = []
            for (seq, frame) in kept {
                index.append((seq, UInt64(bytes.count)))
                bytes += data[frame.offset..<frame.end]
            }
            try SegmentIndex.writeSparse(
                index, span: segment.offsets.span, segmentSize: UInt64(bytes.count), segmentPath: segment.path,
                fsync: fsyncEnabled)
            try DurableFile.replace(segment.path, with: bytes, fsync: fsyncEnabled)
            try swapIn(segment, size: UInt64(bytes.count))
            report.events += removed.count
            report.rewrites += 1
            report.bytesBefore += UInt64(data.count)
            report.bytesAfter += UInt64(bytes.count)
        }
        return report
    }

    /// Puts the rewritten file in the place of `old` in the segment list.
    private func swapIn(_ old: Segment, size: UInt64) throws {
        let fd = Glibc.open(old.path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw EventLogError("cannot open \(old.path): \(String(cString: strerror(errno)))") }
        let file = SegmentFile(fd: fd)
        let data = try file.map()
        guard let offsets = SegmentIndex.read(segmentPath: old.path, segment: data, firstSeq: old.firstSeq),
            offsets.span == old.offsets.span
        else { throw EventLogError("\(old.path): the rewritten segment's index does not read back") }
        lock.lock()
        defer { lock.unlock() }
        guard let place = segments.firstIndex(where: { $0.firstSeq == old.firstSeq }) else { return }
        segments[place] = Segment(firstSeq: old.firstSeq, path: old.path, file: file, offsets: offsets, size: size)
    }
}
