#if canImport(Glibc)
    import Glibc
#endif

extension ZipArchive {
    /// Unpacks every entry under `directory` (which must exist). Paths were checked when the
    /// archive was opened; files are created exclusively and never through a link.
    package func extract(to directory: String) throws {
        var budget = ZipLimits().maxUnpackedBytes
        for entry in entries {
            let target = directory + "/" + entry.path
            if entry.isDirectory {
                try makeDirectories(target)
                continue
            }
            if let slash = target.lastIndex(of: "/") { try makeDirectories(String(target[..<slash])) }
            let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw ZipError.corrupt("cannot create '\(entry.path)': \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            try inflate(entry, budget: &budget) { chunk throws in
                var offset = 0
                while offset < chunk.count {
                    let n = write(fd, chunk.baseAddress!.advanced(by: offset), chunk.count - offset)
                    guard n > 0 else {
                        throw ZipError.corrupt("cannot write '\(entry.path)': \(String(cString: strerror(errno)))")
                    }
                    offset += n
                }
            }
        }
    }

    private func makeDirectories(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/", omittingEmptySubsequences: false) {
            current +=
                (current.isEmpty && path.hasPrefix("/") && part.isEmpty)
                ? "/" : (current.isEmpty || current == "/" ? "" : "/") + part
            if part.isEmpty { continue }
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw ZipError.corrupt("cannot create folder '\(current)': \(String(cString: strerror(errno)))")
            }
        }
    }
}
