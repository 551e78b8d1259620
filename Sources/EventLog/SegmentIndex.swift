import CZlib
import Foundation
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// Where each record of one segment starts: in memory for the segment being written, and in the
/// segment's sealed index file (`segment-<first>.idx`, mapped, not read into memory) for every
/// segment before it. So the log's memory follows the last segment, not the history, and an open
/// checks the records of the last segment only (`accord log verify` still checks every one).
enum RecordOffsets {
    case owned([UInt64])
    /// The index file's bytes; the offsets start at `SegmentIndex.headerSize`.
    case mapped(Data, count: Int)

    var count: Int {
        switch self {
        case .owned(let offsets): offsets.count
        case .mapped(_, let count): count
        }
    }

    var isEmpty: Bool { count == 0 }

    subscript(slot: Int) -> UInt64 {
        switch self {
        case .owned(let offsets): offsets[slot]
        case .mapped(let data, _): data.loadLE64(at: SegmentIndex.headerSize + slot * 8)
        }
    }

    /// Appends to the segment being written (a sealed one never grows).
    mutating func append(contentsOf new: [UInt64]) {
        guard case .owned(var offsets) = self else { preconditionFailure("a sealed segment grew") }
        self = .owned([])
        offsets += new
        self = .owned(offsets)
    }
}

/// A sealed segment's index file: a header (magic, record count, the segment's size in bytes,
/// CRC-32 of the offsets, CRC-32 of the header before it), then each record's offset,
/// little-endian.
///
/// Written once, when the log moves on to the next segment, to a temporary name, synced, then
/// renamed: a crash leaves a whole index or none, never a torn one. An index is used only if its
/// checksums hold, its offsets rise within a segment of exactly the file's size, and its first
/// and last offsets land on intact records, the last ending the file; otherwise the segment is
/// walked (every record checked) and its index written again. Checking an index reads 8 bytes per
/// event, not the events themselves; the records are checked as they are read.
enum SegmentIndex {
    static let magic = Array("ACCORDIDX1\n\0\0\0\0\0".utf8)
    static let headerSize = 40

    static func path(forSegment path: String) -> String { String(path.dropLast(".log".count)) + ".idx" }

    static func write(_ offsets: [UInt64], segmentSize: UInt64, segmentPath: String, fsync: Bool) throws {
        var body: [UInt8] = []
        body.reserveCapacity(offsets.count * 8)
        for offset in offsets { append(offset, to: &body) }
        var bytes = magic
        append(UInt64(offsets.count), to: &bytes)
        append(segmentSize, to: &bytes)
        append32(body.crc32(), to: &bytes)
        append32(bytes.crc32(), to: &bytes)
        bytes += body
        let final = path(forSegment: segmentPath)
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EventLogError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        guard written, !fsync || fdatasync(fd) == 0, rename(temporary, final) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw EventLogError("cannot write \(final): \(reason)")
        }
    }

    /// The offsets of the segment whose mapped bytes are `segment`, if its index holds and fits.
    static func read(segmentPath: String, segment: Data) -> RecordOffsets? {
        let indexPath = path(forSegment: segmentPath)
        let fd = open(indexPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: headerSize)
        guard header.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, headerSize, 0) }) == headerSize,
            Array(header.prefix(magic.count)) == magic, header.prefix(36).crc32() == header.loadLE32(at: 36)
        else { return nil }
        let count = Int(header.loadLE64(at: 16))
        guard header.loadLE64(at: 24) == UInt64(segment.count), count > 0,
            lseek(fd, 0, SEEK_END) == off_t(headerSize + count * 8),
            offsetsHold(fd, count: count, size: UInt64(segment.count), crc: header.loadLE32(at: 32)),
            let data = try? Data(contentsOf: URL(fileURLWithPath: indexPath), options: .alwaysMapped)
        else { return nil }
        let offsets = RecordOffsets.mapped(data, count: count)
        guard let first = RecordFormat.frame(in: segment, at: Int(offsets[0])),
            RecordFormat.isIntact(first, in: segment),
            let last = RecordFormat.frame(in: segment, at: Int(offsets[count - 1])),
            RecordFormat.isIntact(last, in: segment), last.body.upperBound == segment.count
        else { return nil }
        return offsets
    }

    /// Streams the offsets (through a buffer, not a mapping: the check leaves nothing resident):
    /// their checksum matches and they rise, inside the segment.
    private static func offsetsHold(_ fd: Int32, count: Int, size: UInt64, crc expected: UInt32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var crc = CZlib.crc32(0, nil, 0)
        var previous: UInt64 = 0
        var position = headerSize
        var left = count * 8
        while left > 0 {
            let want = min(left, buffer.count)
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(position)) }
            guard got == want else { return false }
            crc = buffer.withUnsafeBytes { CZlib.crc32(crc, $0.bindMemory(to: Bytef.self).baseAddress, uInt(want)) }
            for at in stride(from: 0, to: want, by: 8) {
                let offset = buffer.loadLE64(at: at)
                guard offset >= previous, offset < size, position + at == headerSize || offset > previous else {
                    return false
                }
                previous = offset
            }
            position += want
            left -= want
        }
        return UInt32(crc) == expected
    }

    private static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * k))) }
    }

    private static func append32(_ value: UInt32, to bytes: inout [UInt8]) {
        for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * k))) }
    }
}
