import EventLog
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Payload archives and Scheduler snapshots, in the same database as the log, so that a Scheduler
/// on any host finds what the one before it stored.
extension PostgresDatabase {
    /// Stores an archive under its digest, once; a second store of the same content only brings
    /// its time up to now when that is more than a minute old (retention goes by that time).
    package func putPayload(digest: String, bytes: [UInt8]) async throws {
        try await client.query(
            """
            INSERT INTO accord_payloads (digest, bytes) VALUES (\(digest), \(ByteBuffer(bytes: bytes)))
            ON CONFLICT (digest) DO UPDATE SET stored_at = now()
                WHERE accord_payloads.stored_at < now() - interval '1 minute'
            """, logger: logger)
    }

    package func payload(digest: String) async throws -> [UInt8]? {
        let rows = try await client.query(
            "SELECT bytes FROM accord_payloads WHERE digest = \(digest)", logger: logger)
        for try await bytes in rows.decode(ByteBuffer.self) { return Array(bytes.readableBytesView) }
        return nil
    }

    /// The snapshots' sequence numbers, newest first.
    package func snapshotSeqs() async throws -> [UInt64] {
        let rows = try await client.query("SELECT seq FROM accord_snapshots ORDER BY seq DESC", logger: logger)
        var seqs: [UInt64] = []
        for try await seq in rows.decode(Int64.self) { seqs.append(UInt64(seq)) }
        return seqs
    }

    package func snapshot(seq: UInt64) async throws -> Data? {
        let rows = try await client.query(
            "SELECT body FROM accord_snapshots WHERE seq = \(Int64(seq))", logger: logger)
        for try await body in rows.decode(ByteBuffer.self) { return Data(body.readableBytesView) }
        return nil
    }

    /// Stores a snapshot and keeps only the newest `keep`, in one transaction.
    package func putSnapshot(seq: UInt64, body: Data, keep: Int = 2) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                """
                INSERT INTO accord_snapshots (seq, body) VALUES (\(Int64(seq)), \(ByteBuffer(bytes: body)))
                ON CONFLICT (seq) DO UPDATE SET body = EXCLUDED.body, taken_at = now()
                """, logger: logger)
            try await connection.query(
                """
                DELETE FROM accord_snapshots WHERE seq NOT IN
                    (SELECT seq FROM accord_snapshots ORDER BY seq DESC LIMIT \(keep))
                """, logger: logger)
        }
    }
}
