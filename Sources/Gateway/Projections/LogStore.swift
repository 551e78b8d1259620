import CSupport
import Foundation
import Model
import ReadModels
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The per-instance log read model: rendered text appended to one file, `logs.dat`, in this
/// Gateway's folder, with the pieces of each instance in memory while it is hot and in the
/// `ReadStore` once it has ended. One file for all instances, so an instance's first line costs a
/// `pwrite`, not a file creation (which, for thousands of instances a second, made the
/// filesystem's inode allocation a visible share of all CPU). The file outlives a restart: the
/// store says which bytes belong to whom (bytes written after the store's head are written again
/// when the events are folded again, and the old ones are left unused).
final class LogStore: Sendable {
    /// Most instances log once or a few times: the first piece is kept inline (no allocation).
    private struct Entry {
        var first: LogChunk
        var more: ContiguousArray<LogChunk>?
        var size: Int

        init(_ chunks: [LogChunk]) {
            first = chunks[0]
            more = chunks.count > 1 ? ContiguousArray(chunks.dropFirst()) : nil
            size = chunks.reduce(0) { $0 + Int($1.length) }
        }

        var chunks: [LogChunk] { [first] + (more.map(Array.init) ?? []) }
    }

    private struct State {
        var entries: [InstanceID: Entry] = [:]
        var end: UInt64 = 0
    }

    let path: String
    private let fd: Int32
    private let state = Mutex(State())
    /// Appends come from the one event feed; this keeps them in order even if that changes.
    private let writer = Mutex(())
    /// Where the pieces of instances that are not in memory are found.
    private let cold: @Sendable (InstanceID) -> [LogChunk]?

    /// Opens (or creates) `path`, keeping what it holds.
    init(path: String, cold: @escaping @Sendable (InstanceID) -> [LogChunk]? = { _ in nil }) throws {
        self.path = path
        self.cold = cold
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw LogStoreError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        let end = lseek(fd, 0, SEEK_END)
        state.withLock { $0.end = UInt64(max(end, 0)) }
    }

    deinit { close(fd) }

    func append(_ id: InstanceID, _ lines: [LogLine]) {
        let text = Array(LogRendering.render(lines).utf8)
        guard !text.isEmpty else { return }
        writer.withLock { _ in
            let offset = state.withLock { $0.end }
            let written = text.withUnsafeBytes { raw -> Bool in
                var done = 0
                while done < raw.count {
                    let n = pwrite(
                        fd, raw.baseAddress!.advanced(by: done), raw.count - done, off_t(offset) + off_t(done))
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return false }
                    done += n
                }
                return true
            }
            guard written else { return }
            let chunk = LogChunk(offset: offset, length: UInt32(text.count))
            state.withLock { state in
                state.end = offset + UInt64(text.count)
                if state.entries[id] != nil {
                    // In place: a chatty instance has thousands of pieces.
                    state.entries[id]!.size += text.count
                    if state.entries[id]!.more == nil {
                        state.entries[id]!.more = [chunk]
                    } else {
                        state.entries[id]!.more!.append(chunk)
                    }
                } else {
                    state.entries[id] = Entry([chunk])
                }
            }
        }
    }

    /// The pieces of a hot instance's log (empty when it has logged nothing).
    func chunks(_ id: InstanceID) -> [LogChunk] { state.withLock { $0.entries[id]?.chunks ?? [] } }

    /// Makes an instance hot again with the pieces the store had.
    func restore(_ id: InstanceID, _ chunks: [LogChunk]) {
        guard !chunks.isEmpty else { return }
        state.withLock { state in if state.entries[id] == nil { state.entries[id] = Entry(chunks) } }
    }

    /// Forgets a hot instance's pieces (the store has them).
    func evict(_ id: InstanceID) { _ = state.withLock { $0.entries.removeValue(forKey: id) } }

    /// Gives these bytes (the logs of instances retention removed) back to the filesystem: holes
    /// are punched, so offsets stay as they are and the file takes only the disk that live and
    /// kept logs use. A filesystem without holes keeps the bytes.
    func release(_ released: ByteRanges) {
        writer.withLock { _ in
            for range in released.merged() {
                if accord_punch_hole(fd, off_t(range.start), off_t(range.end - range.start)) != 0, errno == EOPNOTSUPP {
                    return
                }
            }
        }
    }

    /// Empties the file and forgets everything.
    func reset() {
        writer.withLock { _ in
            _ = ftruncate(fd, 0)
            state.withLock { $0 = State() }
        }
    }

    /// Makes everything written so far durable (before the store records that it was written).
    func sync() throws {
        guard fdatasync(fd) == 0 else {
            throw LogStoreError("cannot sync \(path): \(String(cString: strerror(errno)))")
        }
    }

    private func entry(_ id: InstanceID) -> Entry? {
        if let hot = state.withLock({ $0.entries[id] }) { return hot }
        guard let chunks = cold(id), !chunks.isEmpty else { return nil }
        return Entry(chunks)
    }

    /// The log's size in bytes (0 when nothing was written yet).
    func size(_ id: InstanceID) -> Int { entry(id)?.size ?? 0 }

    /// Bytes `[start, end)` of the log.
    func read(_ id: InstanceID, from start: Int, to end: Int) -> [UInt8] {
        guard end > start, let entry = entry(id) else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var position = 0
        for chunk in entry.chunks {
            let chunkEnd = position + Int(chunk.length)
            defer { position = chunkEnd }
            let from = max(start, position)
            let to = min(end, chunkEnd)
            guard from < to else {
                if position >= end { break }
                continue
            }
            let count = to - from
            let before = out.count
            out += repeatElement(0, count: count)
            let got = out.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress!.advanced(by: before), count, off_t(chunk.offset) + off_t(from - position))
            }
            guard got == count else { return Array(out.prefix(before + max(got, 0))) }
        }
        return out
    }
}

/// Byte ranges of `logs.dat`, joined as they are added when one continues the last (pieces of
/// consecutive instances usually do), so that the ranges of ten million removed logs take a few
/// entries, not one per piece.
struct ByteRanges: Sendable {
    private(set) var ranges: [(start: UInt64, end: UInt64)] = []

    init() {}

    mutating func add(_ piece: LogChunk) {
        guard piece.length > 0 else { return }
        let end = piece.offset + UInt64(piece.length)
        if let last = ranges.last, piece.offset == last.end {
            ranges[ranges.count - 1].end = end
        } else {
            ranges.append((piece.offset, end))
        }
    }

    mutating func add(_ pieces: [LogChunk]) { for piece in pieces { add(piece) } }

    /// Sorted, overlapping and adjacent ranges joined (a filesystem block shared by two removed
    /// logs is freed only by one hole across both).
    func merged() -> [(start: UInt64, end: UInt64)] {
        var result: [(start: UInt64, end: UInt64)] = []
        for range in ranges.sorted(by: { $0.start < $1.start }) {
            if let last = result.last, range.start <= last.end {
                result[result.count - 1].end = max(last.end, range.end)
            } else {
                result.append(range)
            }
        }
        return result
    }
}

/// The Gateway's log store could not be set up.
struct LogStoreError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
