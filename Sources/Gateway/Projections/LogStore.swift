import Foundation
import Model
import ReadModels
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The per-instance log read model: rendered text appended to one file in this gateway's cache
/// folder, with each instance's pieces indexed in memory. One file for all instances, so an
/// instance's first line costs a `pwrite`, not a file creation (which, for thousands of instances
/// a second, made the filesystem's inode allocation a visible share of all CPU). It is rebuilt
/// from the event log when the gateway starts, so nothing here is precious.
final class LogStore: Sendable {
    /// A piece of one instance's log in the file.
    private struct Chunk {
        var offset: UInt64
        var length: UInt32
    }

    /// Most instances log once or a few times: the first piece is kept inline (no allocation).
    private struct Entry {
        var first: Chunk
        var more: ContiguousArray<Chunk>?
        var size: Int
    }

    private struct State {
        var entries: [InstanceID: Entry] = [:]
        var end: UInt64 = 0
    }

    let directory: String
    private let fd: Int32
    private let state = Mutex(State())
    /// Appends come from the one event feed; this keeps them in order even if that changes.
    private let writer = Mutex(())

    init(directory: String) throws {
        self.directory = directory
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        fd = open(directory + "/logs.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw LogStoreError("cannot create \(directory)/logs.dat: \(String(cString: strerror(errno)))")
        }
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
            let chunk = Chunk(offset: offset, length: UInt32(text.count))
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
                    state.entries[id] = Entry(first: chunk, more: nil, size: text.count)
                }
            }
        }
    }

    /// The log's size in bytes (0 when nothing was written yet).
    func size(_ id: InstanceID) -> Int {
        state.withLock { $0.entries[id]?.size ?? 0 }
    }

    /// Bytes `[start, end)` of the log.
    func read(_ id: InstanceID, from start: Int, to end: Int) -> [UInt8] {
        guard end > start, let entry = state.withLock({ $0.entries[id] }) else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var position = 0
        for chunk in [entry.first] + (entry.more ?? []) {
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

/// The Gateway's log store could not be set up.
struct LogStoreError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
