import Foundation

/// A size-limited tmpfs mounted for a test, to run out of space on purpose. Needs root (CI and the
/// development machine run as root); elsewhere `mount` returns nil and the caller says why it skips.
package final class SmallFilesystem {
    package let path: String

    private init(path: String) { self.path = path }

    package static func mount(at path: String, bytes: Int) -> SmallFilesystem? {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let status = run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path])
        guard status == 0 else {
            print("note: cannot mount a tmpfs at \(path) (exit status \(status)); the disk-full test needs root")
            return nil
        }
        return SmallFilesystem(path: path)
    }

    /// Writes a file until the filesystem is full; returns its path.
    @discardableResult
    package func fill(leaving bytes: Int = 0) -> String {
        let filler = path + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        if bytes > 0 {
            var info = stat()
            fstat(fd, &info)
            _ = ftruncate(fd, max(0, info.st_size - off_t(bytes)))
        }
        return filler
    }

    package func unmount() {
        _ = SmallFilesystem.run("/bin/umount", ["-l", path])
    }

    private static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
