import Events
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The per-instance log read model, rendered to one file per instance in this gateway's cache
/// folder. It is rebuilt from the event log when the gateway starts, so nothing here is precious.
final class LogStore: Sendable {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    private func path(_ id: InstanceID) -> String { directory + "/" + id.description + ".log" }

    func append(_ id: InstanceID, _ lines: [LogLine]) {
        let text = Array(LogRendering.render(lines).utf8)
        let fd = open(path(id), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        text.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress!.advanced(by: offset), raw.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// The log's size in bytes (0 when nothing was written yet).
    func size(_ id: InstanceID) -> Int {
        var info = stat()
        return stat(path(id), &info) == 0 ? Int(info.st_size) : 0
    }

    /// Bytes `[start, end)` of the log.
    func read(_ id: InstanceID, from start: Int, to end: Int) -> [UInt8] {
        guard end > start else { return [] }
        let fd = open(path(id), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: end - start)
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, end - start, off_t(start)) }
        return got > 0 ? Array(buffer.prefix(got)) : []
    }
}
