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
        if access(final, F_OK) == 0 { return ref }
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
