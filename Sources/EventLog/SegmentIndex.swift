import CZlib
import Foundation
import Support
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Where each record of one segment starts: in memory for the segment being written, and in the
/// segment's sealed index file (`segment-<first>.idx`, read in blocks through `IndexFile`, never
/// held whole) for every segment before it. So the log's memory follows the last segment, not the
/// history, and an open checks the records of the last segment only (`accord log verify` still
/// checks every one).
///
/// A segment that retention rewrote (`RecordFormat.sparseSegmentHeader`) no longer holds every
/// number of its span: its index pairs each record's sequence number with its offset.
enum RecordOffsets {
    case owned([UInt64])
    /// A sealed segment's index file; offsets (8 bytes each) start at `SegmentIndex.headerSize`.
    case mapped(IndexFile, count: Int)
    /// A rewritten segment's index file: (sequence, offset) pairs of 16 bytes, `span` numbers
    /// covered from the segment's first (the ones missing were removed by retention).
    case sparse(IndexFile, count: Int, span: UInt64)

    /// The records present.
    var count: Int {
        switch self {
        case .owned(let offsets): offsets.count
        case .mapped(_, let count), .sparse(_, let count, _): count
        }
    }

    var isEmpty: Bool { count == 0 }

    /// How many sequence numbers the segment covers, present or removed.
    var span: UInt64 {
        if case .sparse(_, _, let span) = self { return span }
        return UInt64(count)
    }

    var isSparse: Bool {
        if case .sparse = self { return true }
        return false
    }

    /// The `index`th record present: its sequence number and offset.
    func record(_ index: Int, firstSeq: UInt64) -> (seq: UInt64, offset: UInt64) {
        switch self {
        case .owned(let offsets): (firstSeq + UInt64(index), offsets[index])
        case .mapped(let data, _): (firstSeq + UInt64(index), data.loadLE64(at: SegmentIndex.headerSize + index * 8))
        case .sparse(let data, _, _):
            (
                data.loadLE64(at: SegmentIndex.headerSize + index * 16),
                data.loadLE64(at: SegmentIndex.headerSize + index * 16 + 8)
            )
        }
    }

    /// The index of the first record present whose number is `seq` or more (`count` if none).
    func firstRecord(atOrAfter seq: UInt64, firstSeq: UInt64) -> Int {
        guard seq > firstSeq else { return 0 }
        guard isSparse else { return Int(min(seq - firstSeq, UInt64(count))) }
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if record(mid, firstSeq: firstSeq).seq < seq { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Where the record numbered `seq` starts, if it is present.
    func offset(of seq: UInt64, firstSeq: UInt64) -> UInt64? {
        let index = firstRecord(atOrAfter: seq, firstSeq: firstSeq)
        guard index < count else { return nil }
        let found = record(index, firstSeq: firstSeq)
        return found.seq == seq ? found.offset : nil
    }

    /// Appends to the segment being written (a sealed one never grows).
    mutating func append(contentsOf new: [UInt64]) {
        guard case .owned(var offsets) = self else { preconditionFailure("a sealed segment grew") }
        self = .owned([])
        offsets += new
        self = .owned(offsets)
    }
}

/// A sealed segment's index file: a header (magic with the kind, record count, the segment's size
/// in bytes, the numbers it spans, CRC-32 of the entries, CRC-32 of the header before it), then
/// one entry per record, little-endian: its offset (a whole segment), or its number and offset (a
/// segment retention rewrote).
///
/// Written to a temporary name, synced, then renamed: a crash leaves a whole index or none, never
/// a torn one. An index is used only if its checksums hold, its kind is the segment's, its entries
/// rise within a segment of exactly the file's size, and its first and last offsets land on intact
/// records, the last ending the file; otherwise the segment is walked (every record checked) and
/// its index written again. Checking an index reads its entries, not the events; the records are
/// checked as they are read.
enum SegmentIndex {
    static let denseMagic = Array("ACCORDIDX2\nD\0\0\0\0".utf8)
    static let sparseMagic = Array("ACCORDIDX2\nS\0\0\0\0".utf8)
    static let headerSize = 48

    static func path(forSegment path: String) -> String { String(path.dropLast(".log".count)) + ".idx" }

    /// The index of a whole segment: each record's offset.
    static func write(_ offsets: [UInt64], segmentSize: UInt64, segmentPath: String, fsync: Bool) throws {
        var body: [UInt8] = []
        body.reserveCapacity(offsets.count * 8)
        for offset in offsets { append(offset, to: &body) }
        try write(
            magic: denseMagic, count: offsets.count, span: UInt64(offsets.count), body: body,
            segmentSize: segmentSize, segmentPath: segmentPath, fsync: fsync)
    }

    /// The index of a rewritten segment: each record's number and offset, `span` numbers covered.
    static func writeSparse(
        _ records: [(seq: UInt64, offset: UInt64)], span: UInt64, segmentSize: UInt64, segmentPath: String,
        fsync: Bool
    ) throws {
        var body: [UInt8] = []
        body.reserveCapacity(records.count * 16)
        for record in records {
            append(record.seq, to: &body)
            append(record.offset, to: &body)
        }
        try write(
            magic: sparseMagic, count: records.count, span: span, body: body, segmentSize: segmentSize,
            segmentPath: segmentPath, fsync: fsync)
    }

    private static func write(
        magic: [UInt8], count: Int, span: UInt64, body: [UInt8], segmentSize: UInt64, segmentPath: String, fsync: Bool
    ) throws {
        var bytes = magic
        append(UInt64(count), to: &bytes)
        append(segmentSize, to: &bytes)
        append(span, to: &bytes)
        append32(body.crc32(), to: &bytes)
        append32(bytes.crc32(), to: &bytes)
        bytes += body
        try DurableFile.replace(path(forSegment: segmentPath), with: bytes, fsync: fsync)
    }

    /// The offsets of the segment whose mapped bytes are `segment`, if its index holds and fits.
    static func read(segmentPath: String, segment: Data, firstSeq: UInt64) -> RecordOffsets? {
        let indexPath = path(forSegment: segmentPath)
        let fd = open(indexPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: headerSize)
        guard header.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, headerSize, 0) }) == headerSize,
            header.prefix(44).crc32() == header.loadLE32(at: 44)
        else { return nil }
        let magic = Array(header.prefix(denseMagic.count))
        let sparse = magic == sparseMagic
        guard sparse || magic == denseMagic, sparse == RecordFormat.isSparse(segment) else { return nil }
        let count = Int(header.loadLE64(at: 16))
        let span = header.loadLE64(at: 32)
        let width = sparse ? 16 : 8
        guard header.loadLE64(at: 24) == UInt64(segment.count), count >= 0, count <= segment.count,
            sparse ? UInt64(count) <= span : (UInt64(count) == span && count > 0),
            lseek(fd, 0, SEEK_END) == off_t(headerSize + count * width),
            entriesHold(
                fd, count: count, width: width, size: UInt64(segment.count), firstSeq: firstSeq, span: span,
                crc: header.loadLE32(at: 40)),
            let data = IndexFile(path: indexPath)
        else { return nil }
        let offsets: RecordOffsets = sparse ? .sparse(data, count: count, span: span) : .mapped(data, count: count)
        if count == 0 { return segment.count == RecordFormat.segmentHeader.count ? offsets : nil }
        guard let first = RecordFormat.frame(in: segment, at: Int(offsets.record(0, firstSeq: firstSeq).offset)),
            RecordFormat.isIntact(first, in: segment),
            let last = RecordFormat.frame(in: segment, at: Int(offsets.record(count - 1, firstSeq: firstSeq).offset)),
            RecordFormat.isIntact(last, in: segment), last.body.upperBound == segment.count
        else { return nil }
        return offsets
    }

    /// Streams the entries (through a buffer, not a mapping: the check leaves nothing resident):
    /// their checksum matches, offsets rise inside the segment, and numbers rise inside its span.
    private static func entriesHold(
        _ fd: Int32, count: Int, width: Int, size: UInt64, firstSeq: UInt64, span: UInt64, crc expected: UInt32
    ) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var crc = CZlib.crc32(0, nil, 0)
        var previous: (seq: UInt64, offset: UInt64)?
        var position = headerSize
        var left = count * width
        while left > 0 {
            let want = min(left, buffer.count - buffer.count % width)
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(position)) }
            guard got == want else { return false }
            crc = buffer.withUnsafeBytes { CZlib.crc32(crc, $0.bindMemory(to: Bytef.self).baseAddress, uInt(want)) }
            for at in stride(from: 0, to: want, by: width) {
                let seq = width == 16 ? buffer.loadLE64(at: at) : firstSeq + UInt64((position - headerSize + at) / 8)
                let offset = buffer.loadLE64(at: at + width - 8)
                guard offset < size, seq >= firstSeq, seq - firstSeq < span else { return false }
                if let previous, offset <= previous.offset || seq <= previous.seq { return false }
                previous = (seq, offset)
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

/// Files written whole or not at all: to a temporary name, synced, renamed, the folder synced.
package enum DurableFile {
    package static func replace(_ path: String, with bytes: [UInt8], fsync: Bool) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EventLogError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
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
        let synced = written && (!fsync || fdatasync(fd) == 0)
        let reason = String(cString: strerror(errno))
        close(fd)
        guard synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw EventLogError("cannot write \(path): \(reason)")
        }
        if fsync { syncFolder(of: path) }
    }

    /// Makes a rename or a new name in `path`'s folder durable.
    package static func syncFolder(of path: String) {
        let fd = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = Glibc.fsync(fd)
            close(fd)
        }
    }
}

/// A sealed index's entries, read from its file by `pread` in blocks kept in one small cache that
/// every index shares. Not mapped: the pages of a mapped file count in the process's resident set
/// once touched, and a Gateway that folds the whole history through the Scheduler touches every
/// index (ten million instances: 230 indexes, 460 MiB). The descriptor is held, so an index that
/// retention replaced on disk is still read as it was by whoever still holds the old segment.
final class IndexFile: Sendable {
    private let fd: Int32
    private let id = IndexFile.ids.add(1, ordering: .relaxed).newValue

    private static let ids = Atomic<UInt64>(0)
    static let blockSize = 1 << 16
    /// Blocks kept, across every index: 4 MiB.
    static let cachedBlocks = 64
    private static let cache = Mutex(BlockCache())

    /// Least recently used blocks, by index and block number.
    struct BlockCache {
        var blocks: [Key: (bytes: [UInt8], used: UInt64)] = [:]
        var clock: UInt64 = 0

        struct Key: Hashable {
            var index: UInt64
            var block: Int
        }

        mutating func get(_ key: Key) -> [UInt8]? {
            guard let found = blocks[key] else { return nil }
            clock += 1
            blocks[key]!.used = clock
            return found.bytes
        }

        mutating func put(_ key: Key, _ bytes: [UInt8]) {
            if blocks.count >= IndexFile.cachedBlocks, let oldest = blocks.min(by: { $0.value.used < $1.value.used }) {
                blocks[oldest.key] = nil
            }
            clock += 1
            blocks[key] = (bytes, clock)
        }

        mutating func forget(_ index: UInt64) { blocks = blocks.filter { $0.key.index != index } }
    }

    init?(path: String) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
    }

    deinit {
        close(fd)
        Self.cache.withLock { $0.forget(id) }
    }

    /// The little-endian number at `position` (entries are 8-byte aligned: none spans two blocks).
    func loadLE64(at position: Int) -> UInt64 {
        let key = BlockCache.Key(index: id, block: position / Self.blockSize)
        let bytes: [UInt8]
        if let cached = Self.cache.withLock({ $0.get(key) }) {
            bytes = cached
        } else {
            var read = [UInt8](repeating: 0, count: Self.blockSize)
            let got = read.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress, $0.count, off_t(key.block * Self.blockSize))
            }
            read.removeLast(Self.blockSize - max(0, got))
            Self.cache.withLock { $0.put(key, read) }
            bytes = read
        }
        let within = position % Self.blockSize
        // The index was checked whole when the log opened; a short read now is a file that changed under it.
        precondition(within + 8 <= bytes.count, "the index \(fd) is shorter than when it was checked")
        return bytes.loadLE64(at: within)
    }
}
