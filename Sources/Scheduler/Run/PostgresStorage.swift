import Crypto
import EventLog
import Foundation
import JSON
import Model
import PostgresStore
import Synchronization

/// Archives in the deployment's database, beside its log.
///
/// An archive this Scheduler has stored once is not sent again (as the file store finds its file):
/// a repeat costs no round trip. Rows are never deleted, and a stored row that is not flushed yet
/// is flushed by the commit of the event that names it, as the first one's was.
final class PostgresPayloads: PayloadStorage {
    let database: PostgresDatabase
    /// Digests stored by this process; forgotten all at once when `remembered` is reached.
    private let stored = Mutex<Set<String>>([])
    private let remembered: Int

    init(database: PostgresDatabase, remembered: Int = 4096) {
        self.database = database
        self.remembered = remembered
    }

    func put(_ bytes: [UInt8]) async throws -> PayloadRef {
        let digest = Hex.encode(SHA256.hash(data: bytes))
        let ref = PayloadRef(digest: digest, size: bytes.count)
        if stored.withLock({ $0.contains(digest) }) { return ref }
        try await database.putPayload(digest: digest, bytes: bytes)
        stored.withLock { stored in
            if stored.count >= remembered { stored.removeAll(keepingCapacity: true) }
            stored.insert(digest)
        }
        return ref
    }

    func get(_ ref: PayloadRef) async throws -> [UInt8] {
        guard let bytes = try await database.payload(digest: ref.digest) else {
            throw EventLogError("payload \(ref.digest) is missing from the database")
        }
        return bytes
    }
}

/// Snapshots in the deployment's database, so a standby that takes over starts from the newest one.
struct PostgresSnapshots: SnapshotStorage {
    let database: PostgresDatabase

    func seqs() async throws -> [UInt64] { try await database.snapshotSeqs() }
    func read(seq: UInt64) async throws -> Data? { try await database.snapshot(seq: seq) }
    func write(seq: UInt64, _ data: Data) async throws { try await database.putSnapshot(seq: seq, body: data) }
}
