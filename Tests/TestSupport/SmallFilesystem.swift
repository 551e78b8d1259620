import Foundation

/// A size-limited tmpfs mounted for a test, to run out of space on purpose (by the system calls, not
/// a `mount` process a test would wait for). Needs root (CI and the development machine run as
/// root); elsewhere `mount` returns nil and the caller says why it skips.
package final class SmallFilesystem {
    package let path: String

    private init(path: String) { self.path = path }

    package static func mount(at path: String, bytes: Int) -> SmallFilesystem? {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Glibc.mount("tmpfs", path, "tmpfs", 0, "size=\(bytes)") == 0 else {
            print(
                "note: cannot mount a tmpfs at \(path) (\(String(cString: strerror(errno)))); the disk-full test needs root"
            )
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

    /// Detaches it at once; it goes when the last file open on it is closed (`umount -l`).
    package func unmount() {
        _ = umount2(path, Int32(MNT_DETACH))
    }
}
