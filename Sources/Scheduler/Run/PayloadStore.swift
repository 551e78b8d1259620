import Crypto
import Dispatch
import EventLog
import Foundation
import JSON
import Model

#if canImport(Glibc)
    import Glibc
#endif

/// Where archives are kept, content-addressed by SHA-256. A payload is durable before the event
/// that names it is appended.
protocol PayloadStorage: Sendable {
    /// Stores `bytes` (once per distinct content) and returns its reference.
    func put(_ bytes: [UInt8]) async throws -> PayloadRef
    /// The stored archive.
    func get(_ ref: PayloadRef) async throws -> [UInt8]
}

/// Archives as files beside the file log (file and folder fsynced). Blocking file work runs on its
/// own queue, never on the cooperative pool.
final class PayloadStore: PayloadStorage {
    private let directory: String
    private let fsyncEnabled: Bool
    private let queue = DispatchQueue(label: "accord.payloads", attributes: .concurrent)
    /// A start that finds its archive stored touches it under this lock, and retention checks an
    /// archive's age and removes it under it: an archive a start has just found is never removed.
    private let reuse = NSLock()

    init(directory: String, fsync: Bool) throws {
        self.directory = directory
        self.fsyncEnabled = fsync
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Stores `bytes` (once per distinct content) and returns its reference.
    func put(_ bytes: [UInt8]) async throws -> PayloadRef {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.putBlocking(bytes) })
            }
        }
    }

    /// The stored archive.
    func get(_ ref: PayloadRef) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        guard let data = FileManager.default.contents(atPath: self.path(ref.digest)) else {
                            throw EventLogError("payload \(ref.digest) is missing from \(self.directory)")
                        }
                        return [UInt8](data)
                    })
            }
        }
    }

    private func path(_ digest: String) -> String { directory + "/" + digest + ".zip" }

    private func putBlocking(_ bytes: [UInt8]) throws -> PayloadRef {
        let digest = Hex.encode(SHA256.hash(data: bytes))
        let ref = PayloadRef(digest: digest, size: bytes.count)
        let final = path(digest)
        reuse.lock()
        // Found: its time is brought up to now, so retention (which goes by age) keeps it.
        let found = utimensat(AT_FDCWD, final, nil, 0) == 0
        reuse.unlock()
        if found { return ref }
        let temporary = final + ".tmp-" + UUID().uuidString
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EventLogError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var ok = bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress!.advanced(by: offset), raw.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        if ok && fsyncEnabled { ok = fdatasync(fd) == 0 }
        let reason = String(cString: strerror(errno))
        close(fd)
        guard ok, rename(temporary, final) == 0 else {
            unlink(temporary)
            throw EventLogError("cannot store a payload: \(reason)")
        }
        if fsyncEnabled {
            let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 {
                _ = fsync(dir)
                close(dir)
            }
        }
        return ref
    }
}

extension PayloadStore {
    /// Removes (or moves into `archive`) every stored archive last stored or used before `before`
    /// whose digest is not in `keeping`. Returns how many went.
    func removeUnused(olderThan before: Timestamp, keeping: Set<String>, archive: String?) throws -> Int {
        if let archive { try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true) }
        var removed = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".zip") {
            let digest = String(name.dropLast(".zip".count))
            guard !keeping.contains(digest) else { continue }
            let file = path(digest)
            reuse.lock()
            defer { reuse.unlock() }
            var info = stat()
            guard stat(file, &info) == 0,
                Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000 < before.millis
            else { continue }
            let gone = archive.map { rename(file, $0 + "/" + name) == 0 } ?? (unlink(file) == 0)
            if gone { removed += 1 }
        }
        if removed > 0 && fsyncEnabled {
            DurableFile.syncFolder(of: path("x"))
            if let archive { DurableFile.syncFolder(of: archive + "/x") }
        }
        return removed
    }
}
