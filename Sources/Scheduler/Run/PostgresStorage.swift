import Crypto
import EventLog
import Foundation
import JSON
import Model
import PostgresStore
import Synchronization

/// Archives in the deployment's database, beside its log.
///
/// An archive this Scheduler has stored once is not sent again for ten minutes (as the file store
/// finds its file): a repeat costs no round trip. A store after that brings the row's time up to
/// now, which retention goes by (it removes only rows an hour older than its cutoff, so a row in
/// use is never one of them). A stored row that is not flushed yet
/// is flushed by the commit of the event that names it, as the first one's was. What is
/// remembered holds only while the log has not failed since (`sessions`, the log's failure count):
/// a server that crashed may have lost a row whose flush no event commit had covered yet, and it
/// ended every connection, so the log failed too.
final class PostgresPayloads: PayloadStorage {
    let database: PostgresDatabase
    private let sessions: @Sendable () -> Int
    /// Digests stored by this process in the log's current session; forgotten all at once when
    /// `remembered` is reached, or ten minutes after they were first remembered.
    private let stored = Mutex<(session: Int, since: ContinuousClock.Instant, digests: Set<String>)>((0, .now, []))
    private let remembered: Int

    init(database: PostgresDatabase, sessions: @escaping @Sendable () -> Int, remembered: Int = 4096) {
        self.database = database
        self.sessions = sessions
        self.remembered = remembered
    }

    func put(_ bytes: [UInt8]) async throws -> PayloadRef {
        let digest = Hex.encode(SHA256.hash(data: bytes))
        let ref = PayloadRef(digest: digest, size: bytes.count)
        let session = sessions()
        let now = ContinuousClock.now
        if stored.withLock({
            $0.session == session && $0.since.duration(to: now) < .seconds(600) && $0.digests.contains(digest)
        }) {
            return ref
        }
        try await database.putPayload(digest: digest, bytes: bytes)
        stored.withLock { stored in
            if stored.session != session || stored.digests.count >= remembered
                || stored.since.duration(to: now) >= .seconds(600)
            {
                stored = (session, now, [])
            }
            stored.digests.insert(digest)
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

extension PostgresPayloads {
    /// Removes (or writes into `archive` as `<digest>.zip`, then removes) every archive last
    /// stored or used an hour or more before `before` whose digest is not in `keeping`.
    func removeUnused(olderThan before: Timestamp, keeping: Set<String>, archive: String?) async throws -> Int {
        let cutoff = Date(timeIntervalSince1970: Double(before.millis) / 1000 - 3600)
        let removed = try await database.reclaimPayloads(before: cutoff, keeping: keeping)
        if let archive {
            try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
            for (digest, bytes) in removed {
                try DurableFile.replace(archive + "/" + digest + ".zip", with: bytes, fsync: true)
            }
        }
        return removed.count
    }
}
