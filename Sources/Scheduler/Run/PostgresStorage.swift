import Crypto
import EventLog
import Foundation
import JSON
import Model
import PostgresStore

/// Archives in the deployment's database, beside its log.
struct PostgresPayloads: PayloadStorage {
    let database: PostgresDatabase

    func put(_ bytes: [UInt8]) async throws -> PayloadRef {
        let digest = Hex.encode(SHA256.hash(data: bytes))
        try await database.putPayload(digest: digest, bytes: bytes)
        return PayloadRef(digest: digest, size: bytes.count)
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
