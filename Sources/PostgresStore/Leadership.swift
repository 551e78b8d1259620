import EventLog
import Foundation
import Logging
import PostgresNIO

/// Which of the Schedulers on one database leads: the one holding the deployment's advisory lock,
/// with a lease it renews.
///
/// The lock makes a dead leader's successor quick: PostgreSQL releases it the moment the leader's
/// session ends (a killed process, a closed socket), and a standby blocked on it takes over at
/// once. The lease covers a leader that is alive but silent (paused, or cut off from the
/// database, whose session PostgreSQL would keep for minutes): once it runs out, a standby ends
/// that session itself. Taking the lead raises the epoch, which fences every write the old
/// leader still attempts (`PostgresEventLog`).
package final class Leadership: Sendable {
    /// The advisory lock of the leader (per database, so deployments in separate databases never meet).
    static let lockKey: Int64 = 0x4143_4344  // "ACCD"
    static let migrationLockKey: Int64 = 0x4143_434D  // "ACCM"

    package let epoch: UInt64
    /// The last committed sequence number when this process took the lead.
    package let head: UInt64
    private let connection: PostgresConnection
    private let renewing: Task<Void, Never>
    private let logger: Logger

    package struct Timing: Sendable {
        /// How long a lease lasts without renewal.
        package var lease: Duration
        /// How often the leader renews it, and a standby looks at it.
        package var renewEvery: Duration

        package init(lease: Duration = .seconds(2), renewEvery: Duration = .milliseconds(400)) {
            self.lease = lease
            self.renewEvery = renewEvery
        }
    }

    /// Waits until this process leads, then renews the lease until it stops or loses it.
    /// `onLost` is called (once) when a renewal fails or finds another epoch: the caller must
    /// stop acting as the leader at once.
    package static func acquire(
        _ database: PostgresDatabase, holder: String, timing: Timing = Timing(), logger: Logger,
        standingBy: @Sendable () -> Void = {}, onLost: @escaping @Sendable (String) -> Void
    ) async throws -> Leadership {
        let connection = try await database.connect("leadership")
        do {
            let acquired = try await connection.query(
                "SELECT pg_try_advisory_lock(\(lockKey))", logger: logger
            ).decode(Bool.self).reduce(false) { $0 || $1 }
            if !acquired {
                standingBy()
                let own = try await connection.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self)
                    .reduce(0) { $1 }
                try await waitForLock(connection, own: own, database, timing: timing, logger: logger)
            }
            let lease = Self.seconds(timing.lease)
            let rows = try await connection.query(
                """
                UPDATE accord_log SET epoch = epoch + 1, leader = \(holder),
                    lease_until = now() + make_interval(secs => \(lease))
                WHERE id = 1 RETURNING epoch, head
                """, logger: logger)
            for try await (epoch, head) in rows.decode((Int64, Int64).self) {
                return Leadership(
                    epoch: UInt64(epoch), head: UInt64(head), connection: connection, timing: timing, logger: logger,
                    onLost: onLost)
            }
            throw EventLogError("the database has no accord_log row")
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Blocks on the lock; meanwhile, ends the session of a leader whose lease ran out.
    private static func waitForLock(
        _ connection: PostgresConnection, own: Int32, _ database: PostgresDatabase, timing: Timing, logger: Logger
    ) async throws {
        // The watcher is a task of its own, not a child: a child whose query does not end when
        // cancelled would hold the group, and this standby, open after it holds the lock.
        let watcher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: timing.renewEvery)
                if Task.isCancelled { return }
                do {
                    try await endExpiredLeader(database, sparing: own, logger: logger)
                } catch {
                    if Task.isCancelled { return }
                    logger.warning(
                        "cannot check the leader's lease", metadata: ["error": "\(PostgresDatabase.describe(error))"])
                }
            }
        }
        defer { watcher.cancel() }
        // The rows are read, so this returns once the lock is held, not once the query is sent.
        _ = try await connection.query("SELECT true FROM pg_advisory_lock(\(lockKey))", logger: logger)
            .decode(Bool.self).reduce(false) { $0 || $1 }
    }

    /// When the lease has run out, terminates the session that still holds the lock (the leader
    /// is paused or unreachable; its writes are fenced by the epoch the next leader takes), never
    /// `sparing`: this standby's own session, which may hold the lock by now, before it has
    /// written its lease (the row still shows the old leader's, long expired). Without that, a
    /// check that ran in that moment ended the new leader's own session (seen in the suite loop:
    /// aLeaderWhoseLeaseRunsOutIsReplaced failed with a closed connection).
    static func endExpiredLeader(_ database: PostgresDatabase, sparing: Int32, logger: Logger) async throws {
        let rows = try await database.client.query(
            """
            SELECT l.pid, a.leader FROM pg_locks l, accord_log a
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid::int8 = 0 AND l.objid::int8 = \(Int64(lockKey))
                AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND a.id = 1 AND a.lease_until < now() AND l.pid <> \(sparing)
            """, logger: logger)
        for try await (pid, leader) in rows.decode((Int32, String?).self) {
            logger.warning(
                "the leader's lease ran out: ending its database session to take over",
                metadata: ["leader": "\(leader ?? "?")", "pid": "\(pid)"])
            try await database.client.query("SELECT pg_terminate_backend(\(pid))", logger: logger)
        }
    }

    private init(
        epoch: UInt64, head: UInt64, connection: PostgresConnection, timing: Timing, logger: Logger,
        onLost: @escaping @Sendable (String) -> Void
    ) {
        self.epoch = epoch
        self.head = head
        self.connection = connection
        self.logger = logger
        let lease = Self.seconds(timing.lease)
        renewing = Task {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: timing.renewEvery)
                } catch { return }
                do {
                    guard !connection.isClosed else { throw EventLogError("the database ended the session") }
                    // A renewal that takes as long as the lease has failed: a standby may lead by now.
                    let renewed = try await answered(within: timing.lease, "renewing the lease") {
                        try await connection.query(
                            """
                            UPDATE accord_log SET lease_until = now() + make_interval(secs => \(lease))
                            WHERE id = 1 AND epoch = \(Int64(epoch)) RETURNING 1
                            """, logger: logger
                        ).decode(Int32.self).reduce(0) { $0 + $1 }
                    }
                    if renewed == 0 {
                        onLost("another Scheduler took the lead (this one had epoch \(epoch))")
                        return
                    }
                } catch {
                    if Task.isCancelled { return }
                    onLost("the lease could not be renewed: \(PostgresDatabase.describe(error))")
                    return
                }
            }
        }
    }

    /// Gives the lead up at once (a standby takes over without waiting for the lease).
    package func release() async {
        renewing.cancel()
        _ = await renewing.value
        let (connection, epoch, logger) = (connection, epoch, logger)
        if !connection.isClosed {
            _ = try? await answered(within: .seconds(2), "giving the lead up") {
                try await connection.query(
                    "UPDATE accord_log SET lease_until = now() WHERE id = 1 AND epoch = \(Int64(epoch))",
                    logger: logger)
            }
        }
        // Closing ends the session, which is what lets a standby blocked on the lock lead; a close
        // that does not answer (a server that ended the session itself) must not hold the caller.
        _ = try? await answered(within: .seconds(2), "closing the leader's session") {
            try await connection.close()
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
