import Foundation
import Model

#if canImport(Glibc)
    import Glibc
#endif

/// Opening a log folder: each segment mapped through its index when it has one that holds, else
/// walked and indexed; the last one walked, and a torn tail cut.
extension FileEventLog {
    func openSegment(path: String, nextFirstSeq: UInt64?) throws {
        let isLast = nextFirstSeq == nil
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw EventLogError("cannot open \(path): \(String(cString: strerror(errno)))") }
        let file = SegmentFile(fd: fd)
        let data = try file.map()
        guard let firstSeq = Self.firstSeq(ofSegment: (path as NSString).lastPathComponent) else {
            throw EventLogError("\(path): not a segment name")
        }
        guard firstSeq == nextSeq || (segments.isEmpty && firstSeq >= 1) else {
            throw EventLogError("\(path) starts at \(firstSeq) but the log before it ends at \(nextSeq - 1)")
        }
        if segments.isEmpty { nextSeq = firstSeq }
        // A sealed segment with an index that holds is not walked: opening reads the last one only.
        if !isLast, let indexed = SegmentIndex.read(segmentPath: path, segment: data, firstSeq: firstSeq) {
            segments.append(
                Segment(firstSeq: firstSeq, path: path, file: file, offsets: indexed, size: UInt64(data.count)))
            nextSeq = firstSeq + indexed.span
            return
        }
        if RecordFormat.isSparse(data) {
            try openSparse(path: path, file: file, data: data, firstSeq: firstSeq, nextFirstSeq: nextFirstSeq)
            return
        }
        let walk = RecordFormat.walk(data)
        let offsets = walk.offsets
        var position = walk.end
        let problem = walk.problem
        if let problem {
            // Only the very end can be torn by a crash; damage with intact records after it would
            // cut acknowledged events, so it needs a person (`accord log verify` shows where).
            guard isLast, !walk.intactAfter else {
                throw EventLogError(
                    "\(path) at byte \(position): \(problem)\(walk.intactAfter ? ", with intact records after it" : "")"
                )
            }
            let cut = UInt64(data.count - position)
            recovery = Recovery(truncatedBytes: cut, reason: "\(path) at byte \(position): \(problem)")
            if position == 0 {
                _ = ftruncate(fd, 0)
                _ = RecordFormat.segmentHeader.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                position = RecordFormat.segmentHeader.count
            } else {
                guard ftruncate(fd, off_t(position)) == 0 else {
                    throw EventLogError("cannot truncate \(path): \(String(cString: strerror(errno)))")
                }
            }
            _ = fdatasync(fd)
        }
        var recorded = RecordOffsets.owned(offsets)
        if !isLast {
            // Sealed before indexes were written, or its index did not hold: indexed now, once.
            recorded = seal(offsets, size: UInt64(position), path: path) ?? recorded
        }
        segments.append(Segment(firstSeq: firstSeq, path: path, file: file, offsets: recorded, size: UInt64(position)))
        nextSeq = firstSeq + UInt64(offsets.count)
    }

    /// A segment retention rewrote, without an index that holds: walked (every record checked and
    /// decoded for its number), then indexed. It is never the last segment, and never torn: it was
    /// written whole under a temporary name before it replaced the original.
    private func openSparse(path: String, file: SegmentFile, data: Data, firstSeq: UInt64, nextFirstSeq: UInt64?)
        throws
    {
        guard let nextFirstSeq, nextFirstSeq >= firstSeq else {
            throw EventLogError("\(path): a segment rewritten by retention must have a segment after it")
        }
        var records: [(seq: UInt64, offset: UInt64)] = []
        var failure: (any Error)?
        let walk = RecordFormat.walk(data) { offset, body in
            guard failure == nil else { return }
            do {
                let envelope = try FastEventDecoder.decode(body)
                let seq = envelope.seq
                let fits = seq >= firstSeq && seq < nextFirstSeq && seq > (records.last?.seq ?? 0)
                guard fits else {
                    throw EventLogError("sequence \(envelope.seq) does not belong at this place")
                }
                records.append((envelope.seq, UInt64(offset)))
            } catch {
                failure = EventLogError("\(path) at byte \(offset): \(error)")
            }
        }
        if let failure { throw failure }
        if let problem = walk.problem { throw EventLogError("\(path) at byte \(walk.end): \(problem)") }
        let span = nextFirstSeq - firstSeq
        try SegmentIndex.writeSparse(
            records, span: span, segmentSize: UInt64(data.count), segmentPath: path, fsync: fsyncEnabled)
        guard let indexed = SegmentIndex.read(segmentPath: path, segment: data, firstSeq: firstSeq) else {
            throw EventLogError("\(path): its index does not read back")
        }
        segments.append(Segment(firstSeq: firstSeq, path: path, file: file, offsets: indexed, size: UInt64(data.count)))
        nextSeq = nextFirstSeq
    }

    /// Writes a finished segment's index and maps it in place of the offsets in memory; nil (the
    /// offsets stay in memory, the next open walks the segment) when it cannot be written.
    func seal(_ offsets: [UInt64], size: UInt64, path: String) -> RecordOffsets? {
        do {
            try SegmentIndex.write(offsets, segmentSize: size, segmentPath: path, fsync: fsyncEnabled)
            let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
            return SegmentIndex.read(
                segmentPath: path, segment: data,
                firstSeq: Self.firstSeq(ofSegment: (path as NSString).lastPathComponent) ?? 0)
        } catch {
            return nil
        }
    }

}
