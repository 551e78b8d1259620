import EventLog
import Foundation
import Logging
import Model
import NIOCore
import PostgresNIO

/// One deployment's tables in a PostgreSQL database, and the connections that reach them.
///
/// - `accord_log`: one row; the leader's `epoch` (raised by every Scheduler that takes over), the
///   `head` (the last committed sequence number) and the leader's lease. Every append updates it
///   on the condition that the epoch is still the appender's own: that is the fence.
/// - `accord_events`: one row per event, `body` the event's JSON exactly as the file log stores it.
/// - `accord_payloads`: archives by SHA-256; `accord_snapshots`: the Scheduler's state at a seq.
package final class PostgresDatabase: Sendable {
    package let url: PostgresURL
    let logger: Logger
    /// For reads, payloads and snapshots (the writer and the lease have connections of their own).
    let client: PostgresClient
    private let running: Task<Void, Never>

    /// Connects, and creates the tables when they are missing (safe to run from many processes at once).
    package static func open(_ url: PostgresURL, logger: Logger) async throws -> PostgresDatabase {
        let database = PostgresDatabase(url: url, logger: logger)
        do {
            try await database.migrate()
        } catch {
            await database.close()
            throw EventLogError("cannot prepare the database \(url): \(Self.describe(error))")
        }
        return database
    }

    private init(url: PostgresURL, logger: Logger) {
        self.url = url
        self.logger = logger
        let client = PostgresClient(configuration: url.clientConfiguration, backgroundLogger: logger)
        self.client = client
        running = Task { await client.run() }
    }

    /// Closes every pooled connection. The pool's shutdown waits for connections still leased,
    /// and a query on a connection the server has ended can wait forever (see `answered`): after
    /// five seconds the caller goes on and the pool winds down on its own.
    package func close() async {
        running.cancel()
        let running = running
        _ = try? await answered(within: .seconds(5), "closing the database's connections") { await running.value }
    }

    /// A connection of its own (not pooled), for the writer and the lease.
    func connect(_ purpose: String) async throws -> PostgresConnection {
        var logger = logger
        logger[metadataKey: "purpose"] = "\(purpose)"
        return try await PostgresConnection.connect(
            configuration: url.connectionConfiguration, id: Int.random(in: 1...Int(Int32.max)), logger: logger)
    }

    static let schemaVersion = 1

    package struct Setting: Equatable, Sendable {
        package var pool: String
        package var own: String
    }

    /// A server setting as the pool's connections see it, and as a connection of the log's own does.
    package func setting(_ name: String) async throws -> Setting {
        func read(_ rows: PostgresRowSequence) async throws -> String {
            for try await value in rows.decode(String.self) { return value }
            return ""
        }
        let pool = try await read(try await client.query("SELECT current_setting(\(name))", logger: logger))
        let connection = try await connect("setting")
        do {
            let own = try await read(try await connection.query("SELECT current_setting(\(name))", logger: logger))
            try await connection.close()
            return Setting(pool: pool, own: own)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// On a connection of its own (the pool starts running meanwhile).
    private func migrate() async throws {
        let migration = try await connect("migration")
        do {
            try await migrate(on: migration)
            try await migration.close()
        } catch {
            try? await migration.close()
            throw error
        }
    }

    private func migrate(on migration: PostgresConnection) async throws {
        let logger = logger
        try await migration.withTransaction(logger: logger) { connection in
            // Schedulers starting together take turns; the lock ends with the transaction.
            try await connection.query("SELECT pg_advisory_xact_lock(\(Leadership.migrationLockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS accord_log (
                    id int PRIMARY KEY CHECK (id = 1),
                    schema_version int NOT NULL,
                    epoch bigint NOT NULL,
                    head bigint NOT NULL,
                    leader text,
                    lease_until timestamptz)
                """, logger: logger)
            try await connection.query(
                """
                INSERT INTO accord_log (id, schema_version, epoch, head) VALUES (1, \(Self.schemaVersion), 0, 0)
                ON CONFLICT (id) DO NOTHING
                """, logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS accord_events (
                    seq bigint PRIMARY KEY,
                    epoch bigint NOT NULL,
                    stream uuid NOT NULL,
                    body bytea NOT NULL)
                """, logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS accord_payloads (
                    digest text PRIMARY KEY,
                    bytes bytea NOT NULL,
                    stored_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            // Where retention removed events: every number missing from accord_events lies in one
            // of these ranges (what `accord log verify` checks).
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS accord_reclaimed (
                    first bigint PRIMARY KEY,
                    last bigint NOT NULL,
                    removed int NOT NULL,
                    reclaimed_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS accord_snapshots (
                    seq bigint PRIMARY KEY,
                    body bytea NOT NULL,
                    taken_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            let rows = try await connection.query("SELECT schema_version FROM accord_log WHERE id = 1", logger: logger)
            for try await version in rows.decode(Int.self) where version != Self.schemaVersion {
                throw EventLogError(
                    "the database holds schema version \(version); this build reads version \(Self.schemaVersion)")
            }
        }
    }

    /// Where the log stands: the leader's epoch and the last committed sequence number.
    package func head() async throws -> (epoch: UInt64, head: UInt64) {
        let rows = try await client.query("SELECT epoch, head FROM accord_log WHERE id = 1", logger: logger)
        for try await (epoch, head) in rows.decode((Int64, Int64).self) { return (UInt64(epoch), UInt64(head)) }
        throw EventLogError("the database has no accord_log row")
    }

    /// Committed events with `after < seq <= through`, oldest first, at most `limit`, with their
    /// bytes as stored.
    package func events(after: UInt64, through: UInt64, limit: Int) async throws -> [(EventEnvelope, Data)] {
        guard after < through, limit > 0 else { return [] }
        let rows = try await client.query(
            """
            SELECT seq, body FROM accord_events WHERE seq > \(Int64(after)) AND seq <= \(Int64(through))
            ORDER BY seq LIMIT \(limit)
            """, logger: logger)
        // Numbers retention removed are passed over (the fenced append never leaves a gap).
        var result: [(EventEnvelope, Data)] = []
        for try await (seq, body) in rows.decode((Int64, ByteBuffer).self) {
            let bytes = Data(body.readableBytesView)
            result.append((try Self.decode(bytes, seq: UInt64(seq)), bytes))
        }
        return result
    }

    /// The committed events with these sequence numbers, in the given order; unknown ones are skipped.
    package func events(seqs: [UInt64]) async throws -> [EventEnvelope] {
        guard !seqs.isEmpty else { return [] }
        let rows = try await client.query(
            "SELECT seq, body FROM accord_events WHERE seq = ANY(\(seqs.map { Int64($0) }))", logger: logger)
        var found: [UInt64: EventEnvelope] = [:]
        for try await (seq, body) in rows.decode((Int64, ByteBuffer).self) {
            found[UInt64(seq)] = try Self.decode(Data(body.readableBytesView), seq: UInt64(seq))
        }
        return seqs.compactMap { found[$0] }
    }

    /// Every committed event from `firstSeq` through `through`, in pages, with its stored bytes;
    /// stops when `body` returns false.
    package func scan(
        from firstSeq: UInt64, through: UInt64, _ body: (EventEnvelope, Data) throws -> Bool
    ) async throws {
        var after = firstSeq > 0 ? firstSeq - 1 : 0
        while after < through {
            let page = try await events(after: after, through: through, limit: 5000)
            guard let last = page.last else { return }  // the rest of the range was reclaimed
            for (envelope, bytes) in page {
                guard try body(envelope, bytes) else { return }
            }
            after = last.0.seq
        }
    }

    static func decode(_ bytes: Data, seq: UInt64) throws -> EventEnvelope {
        try EventRecord.decode(bytes, expecting: seq, at: "accord_events row #\(seq)")
    }

    /// A PostgreSQL error with the server's message, not just its code.
    package static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

extension PostgresDatabase {
    /// The ranges retention removed events from, in order.
    package func reclaimedRanges() async throws -> [(first: UInt64, last: UInt64)] {
        let rows = try await client.query("SELECT first, last FROM accord_reclaimed ORDER BY first", logger: logger)
        var ranges: [(first: UInt64, last: UInt64)] = []
        for try await (first, last) in rows.decode((Int64, Int64).self) { ranges.append((UInt64(first), UInt64(last))) }
        return ranges
    }

    /// Removes these events, in one transaction that first takes the log's row (`FOR SHARE`, so a
    /// takeover waits for it) and checks that `epoch` still leads, and records the range they lay
    /// in. Throws `EventLogFenced` when another Scheduler leads.
    package func reclaim(seqs: [UInt64], within range: ClosedRange<UInt64>, epoch: UInt64) async throws {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT epoch FROM accord_log WHERE id = 1 FOR SHARE", logger: logger)
            for try await current in rows.decode(Int64.self) where UInt64(current) != epoch {
                throw EventLogFenced("the log's epoch is \(current), not \(epoch): another Scheduler leads")
            }
            try await connection.query(
                "DELETE FROM accord_events WHERE seq = ANY(\(seqs.map { Int64($0) }))", logger: logger)
            try await connection.query(
                """
                INSERT INTO accord_reclaimed (first, last, removed)
                VALUES (\(Int64(range.lowerBound)), \(Int64(range.upperBound)), \(seqs.count))
                ON CONFLICT (first) DO UPDATE SET last = GREATEST(accord_reclaimed.last, EXCLUDED.last),
                    removed = accord_reclaimed.removed + EXCLUDED.removed, reclaimed_at = now()
                """, logger: logger)
        }
    }

    /// Removes the archives last stored or used before `before` whose digest is not in `keeping`;
    /// returns each one's digest and bytes (for an archive).
    package func reclaimPayloads(before: Date, keeping: Set<String>) async throws -> [(String, [UInt8])] {
        let rows = try await client.query(
            """
            DELETE FROM accord_payloads WHERE stored_at < \(before) AND digest <> ALL(\(Array(keeping)))
            RETURNING digest, bytes
            """, logger: logger)
        var removed: [(String, [UInt8])] = []
        for try await (digest, bytes) in rows.decode((String, ByteBuffer).self) {
            removed.append((digest, Array(bytes.readableBytesView)))
        }
        return removed
    }

    /// `accord log verify` on the database: every event from the first on, contiguous numbering
    /// up to the head `accord_log` records, every event decoding, epochs that never go back, and
    /// the status rules (`LogVerifier.Rules`).
    package func verify() async throws -> LogVerifier.Report {
        let started = ContinuousClock.now
        var report = LogVerifier.Report()
        var rules = LogVerifier.Rules()
        let (_, head) = try await self.head()
        func fail(_ seq: UInt64, _ reason: String) {
            report.failure = EventLogReader.Problem(
                segment: "accord_events", offset: Int(seq), reason: "sequence \(seq): \(reason)", isTornTail: false)
        }
        var lastEpoch: Int64 = 0
        var after: UInt64 = 0
        let reclaimed = try await reclaimedRanges()
        /// Whether every number in first...last lies in a range retention recorded.
        func wasReclaimed(_ first: UInt64, _ last: UInt64) -> Bool {
            var next = first
            for range in reclaimed where range.first <= next && range.last >= next {
                next = range.last + 1
                if next > last { return true }
            }
            return false
        }
        if !reclaimed.isEmpty { rules = LogVerifier.Rules(trimmed: true) }
        scanning: while after < head {
            let rows = try await client.query(
                """
                SELECT seq, epoch, body FROM accord_events WHERE seq > \(Int64(after)) AND seq <= \(Int64(head))
                ORDER BY seq LIMIT 5000
                """, logger: logger)
            var count = 0
            for try await (seq, epoch, body) in rows.decode((Int64, Int64, ByteBuffer).self) {
                count += 1
                let seq = UInt64(seq)
                guard seq == after + 1 || wasReclaimed(after + 1, seq - 1) else {
                    fail(after + 1, "missing (the next event in the table is #\(seq))")
                    break scanning
                }
                after = seq
                guard epoch >= lastEpoch else {
                    fail(seq, "written under epoch \(epoch), after epoch \(lastEpoch)")
                    break scanning
                }
                lastEpoch = epoch
                let envelope: EventEnvelope
                do {
                    envelope = try Self.decode(Data(body.readableBytesView), seq: seq)
                } catch {
                    fail(seq, "\(error)")
                    break scanning
                }
                report.events += 1
                report.bytes += body.readableBytes
                report.firstSeq = report.firstSeq ?? seq
                report.lastSeq = seq
                report.eventsByType[envelope.event.typeName, default: 0] += 1
                if let reason = rules.check(envelope) {
                    fail(seq, reason)
                    break scanning
                }
            }
            if count == 0 {
                if !wasReclaimed(after + 1, head) {
                    fail(after + 1, "missing: the log's head is #\(head), the table ends at #\(after)")
                }
                break
            }
        }
        if report.failure == nil {
            let rows = try await client.query(
                "SELECT count(*) FROM accord_events WHERE seq > \(Int64(head))", logger: logger)
            for try await beyond in rows.decode(Int64.self) where beyond > 0 {
                fail(head + 1, "\(beyond) event(s) past the head #\(head) that accord_log records")
            }
        }
        report.instancesByStatus = rules.instancesByStatus
        let elapsed = started.duration(to: .now).components
        report.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        return report
    }
}
