#if canImport(Glibc)
    import Glibc
#endif

extension ZipArchive {
    /// Unpacks every entry under `directory` (which must exist), within the archive's limits.
    /// Paths were checked when the archive was opened; files are created exclusively and never
    /// through a link.
    package func extract(to directory: String) throws {
        var budget = limits.maxUnpackedBytes
        var made: Set<String> = []
        for entry in entries {
            let target = directory + "/" + entry.path
            if entry.isDirectory {
                try makeDirectories(entry.path, in: directory, made: &made)
                continue
            }
            if let slash = entry.path.lastIndex(of: "/") {
                try makeDirectories(String(entry.path[..<slash]), in: directory, made: &made)
            }
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

    /// Makes the folders of `relative` (a checked entry path) under `directory`, each once.
    private func makeDirectories(_ relative: String, in directory: String, made: inout Set<String>) throws {
        var current = ""
        for part in relative.split(separator: "/") {
            current += current.isEmpty ? String(part) : "/" + part
            guard made.insert(current).inserted else { continue }
            if mkdir(directory + "/" + current, 0o755) != 0 && errno != EEXIST {
                throw ZipError.corrupt("cannot create folder '\(current)': \(String(cString: strerror(errno)))")
            }
        }
    }
}
