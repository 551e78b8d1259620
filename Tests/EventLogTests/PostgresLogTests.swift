import Dispatch
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import EventLog
@testable import Model
@testable import PostgresStore

/// What only the PostgreSQL log has: leaders, their leases, the epoch fence, and a lost connection.
@Suite(
    .enabled(if: TestDatabase.available, "needs ACCORD_TEST_DATABASE_URL (make test starts a server)"),
    .timeLimit(.minutes(1)))
struct PostgresLogTests {
    let logger = Logger(label: "postgres-test")

    private func open(_ test: TestDatabase) async throws -> PostgresDatabase {
        try await PostgresDatabase.open(try PostgresURL(test.url), logger: logger)
    }

    /// A leader paused while another took over appends nothing when it wakes: its write is fenced
    /// by the epoch, and it refuses every append after.
    @Test func aDeposedLeadersWritesAreFencedByTheEpoch() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let first = try await Leadership.acquire(database, holder: "first", logger: logger) { _ in }
            let fencedCalls = Mutex(0)
            let old = try await PostgresEventLog(
                database: database, epoch: first.epoch, logger: logger,
                onFenced: { _ in fencedCalls.withLock { $0 += 1 } }
            )
            try await old.append(drafts(3)).durable()

            // The new leader takes over as it would after the lease ran out (here: released).
            await first.release()
            let second = try await Leadership.acquire(database, holder: "second", logger: logger) { _ in }
            #expect(second.epoch == first.epoch + 1)
            #expect(second.head == 3)
            let new = try await PostgresEventLog(database: database, epoch: second.epoch, logger: logger)

            // The old one wakes and writes: nothing lands, and it stays refused.
            await #expect(throws: EventLogError.self) { try await old.append(drafts(2)).durable() }
            #expect(fencedCalls.withLock { $0 } == 1)
            #expect(old.failed != nil)
            await #expect(throws: EventLogFenced.self) { try await old.recover() }
            await #expect(throws: EventLogError.self) { try await old.append(drafts(1)).durable() }

            let next = new.append(drafts(2))
            try await next.durable()
            #expect(next.envelopes.map(\.seq) == [4, 5])
            #expect(try await test.integer("SELECT count(*) FROM accord_events WHERE epoch = \(first.epoch)") == 3)
            #expect(try await test.integer("SELECT count(*) FROM accord_events") == 5)
            #expect(try await test.integer("SELECT head FROM accord_log") == 5)

            await old.close()
            await new.close()
            await second.release()
            await database.close()
        }
    }

    /// A second Scheduler stands by until the leader lets go, then leads under the next epoch.
    @Test func aStandbyLeadsOnceTheLeaderLetsGo() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let leader = try await Leadership.acquire(database, holder: "leader", logger: logger) { _ in }
            let stoodBy = Mutex(false)
            let standby = Task {
                try await Leadership.acquire(
                    database, holder: "standby", logger: logger, standingBy: { stoodBy.withLock { $0 = true } }
                ) { _ in }
            }
            #expect(await eventually { stoodBy.withLock { $0 } })
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await test.integer("SELECT epoch FROM accord_log") == Int64(leader.epoch))
            await leader.release()
            let next = try await standby.value
            #expect(next.epoch == leader.epoch + 1)
            await next.release()
            await database.close()
        }
    }

    /// The standby above, when the leader's lease runs out while it stands by (a loaded machine
    /// starved the leader's renewals in CI): the standby ends the leader's session and leads;
    /// the old leader's release and everything after it still end.
    @Test func aStandbyThatEndsAStalledLeaderLeadsAndEverythingStops() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let leader = try await Leadership.acquire(
                database, holder: "leader", timing: .init(lease: .milliseconds(300), renewEvery: .seconds(30)),
                logger: logger
            ) { _ in }
            let standby = Task {
                try await Leadership.acquire(
                    database, holder: "standby", timing: .init(lease: .seconds(2), renewEvery: .milliseconds(100)),
                    logger: logger
                ) { _ in }
            }
            let next = try await standby.value
            #expect(next.epoch == leader.epoch + 1)
            await leader.release()
            await next.release()
            await database.close()
        }
    }

    /// A standby's check of the lease never ends its own session: granted the lock, it holds it
    /// for a moment under the old leader's lease row, long expired, and a check that ran then
    /// ended the new leader's own session. The same check does end any other holder.
    @Test func aStandbyNeverEndsItsOwnSession() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let holder = try await Leadership.acquire(
                database, holder: "new", timing: .init(lease: .milliseconds(1), renewEvery: .seconds(30)),
                logger: logger
            ) { _ in }
            try await Task.sleep(for: .milliseconds(50))
            // This database's lock only: the server holds every parallel test's.
            let held = """
                FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::int8 = 0
                    AND objid::int8 = \(Leadership.lockKey)
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                """
            let locks = "SELECT count(*) " + held
            let pid = try await test.integer("SELECT pid " + held)
            try await Leadership.endExpiredLeader(database, sparing: Int32(pid), logger: logger)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await test.integer(locks) == 1, "the spared session was ended")
            try await Leadership.endExpiredLeader(database, sparing: 0, logger: logger)
            #expect(try await eventually(within: .seconds(10)) { try await test.integer(locks) == 0 })
            await holder.release()
            await database.close()
        }
    }

    /// A leader that stops renewing (paused, cut off) loses the lead once its lease runs out: the
    /// standby ends its session, takes over, and the old one hears it lost.
    @Test func aLeaderWhoseLeaseRunsOutIsReplaced() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let lost = Mutex<String?>(nil)
            // Renews far less often than its lease lasts: as if paused after taking the lead.
            let silent = try await Leadership.acquire(
                database, holder: "silent", timing: .init(lease: .milliseconds(500), renewEvery: .seconds(30)),
                logger: logger
            ) { reason in lost.withLock { $0 = reason } }
            let started = ContinuousClock.now
            let next = try await Leadership.acquire(
                database, holder: "standby", timing: .init(lease: .seconds(2), renewEvery: .milliseconds(100)),
                logger: logger
            ) { _ in }
            #expect(next.epoch == silent.epoch + 1)
            #expect(started.duration(to: .now) >= .milliseconds(300), "took over before the lease ran out")
            #expect(try await test.integer("SELECT count(*) FROM accord_log WHERE leader = 'standby'") == 1)
            await next.release()
            await silent.release()
            await database.close()
        }
    }

    /// A write whose connection is cut is refused, and after `recover` the log goes on from where
    /// the database says it ends, with no gap.
    @Test func aLostConnectionRefusesThenRecoversWithoutAGap() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let leadership = try await Leadership.acquire(database, holder: "leader", logger: logger) { _ in }
            let log = try await PostgresEventLog(database: database, epoch: leadership.epoch, logger: logger)
            try await log.append(drafts(2)).durable()
            try await test.execute(
                """
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = '' AND pid <> pg_backend_pid()
                    AND query LIKE '%accord_events%'
                """)
            // Whichever write meets the cut connection fails; the ones before it may have landed.
            var refused = false
            for _ in 0..<50 where !refused {
                do { try await log.append(drafts(1)).durable() } catch { refused = true }
            }
            #expect(refused, "no write met the terminated connection")
            #expect(log.failed != nil)
            try await log.recover()
            #expect(log.failed == nil)
            let head = log.durableHead
            let next = log.append(drafts(1))
            try await next.durable()
            #expect(next.envelopes.map(\.seq) == [head + 1])
            var scanned: [UInt64] = []
            try await log.scan(from: 1) { scanned.append($0.seq) }
            #expect(scanned == Array(1...(head + 1)))
            await log.close()
            await leadership.release()
            await database.close()
        }
    }

    @Test func payloadsAndSnapshotsAreKeptInTheDatabase() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            let bytes = (0..<100_000).map { UInt8($0 % 251) }
            try await database.putPayload(digest: "abc", bytes: bytes)
            try await database.putPayload(digest: "abc", bytes: bytes)
            #expect(try await database.payload(digest: "abc") == bytes)
            #expect(try await database.payload(digest: "missing") == nil)
            for seq in [10, 20, 30] as [UInt64] {
                try await database.putSnapshot(seq: seq, body: Data("snapshot \(seq)".utf8))
            }
            #expect(try await database.snapshotSeqs() == [30, 20])
            #expect(try await database.snapshot(seq: 30) == Data("snapshot 30".utf8))
            #expect(try await database.snapshot(seq: 10) == nil)
            await database.close()
        }
    }

    /// The appends' connections flush every commit; only the pool (payloads, snapshots, reads)
    /// leaves its flush to the event commit that follows (PostgresURL.clientConfiguration).
    @Test func eventsCommitSynchronouslyAndOnlyThePoolDoesNot() async throws {
        try await TestDatabase.with { test in
            let database = try await open(test)
            #expect(try await database.setting("synchronous_commit") == .init(pool: "off", own: "on"))
            await database.close()
        }
    }

    @Test func urlsAreReadStrictly() throws {
        let url = try PostgresURL("postgres://accord:s%40cret@db.example:6543/events")
        #expect(url.host == "db.example")
        #expect(url.port == 6543)
        #expect(url.user == "accord")
        #expect(url.password == "s@cret")
        #expect(url.database == "events")
        #expect(url.description == "postgres://accord:***@db.example:6543/events")
        let socket = try PostgresURL("postgresql://accord@/events?host=/run/postgresql")
        #expect(socket.socketDirectory == "/run/postgresql")
        for bad in [
            "mysql://a@b/c", "postgres://host/db", "postgres://a@host/", "postgres://a@host/db?sslmode=require",
            "postgres://a@/db", "postgres://a@/db?host=relative",
        ] {
            #expect(throws: PostgresURLError.self, "\(bad)") { try PostgresURL(bad) }
        }
        #expect(PostgresURL.redact("postgres://a:secret@h/d") == "postgres://a:***@h/d")
    }
}

/// The deadline every query on the writer's and the lease's connections has.
@Suite struct DeadlineTests {
    @Test func anAnswerInTimeIsReturnedAndOneThatNeverComesIsAnError() async throws {
        #expect(try await answered(within: .seconds(30), "quick") { 42 } == 42)
        let started = ContinuousClock.now
        await #expect(throws: EventLogError.self) {
            try await answered(within: .milliseconds(100), "never") {
                // Ignores cancellation for 20 s, as a query on a dead connection does for ever (20 s,
                // not less: the bound below must hold on a machine that keeps this test waiting).
                await withCheckedContinuation { continuation in
                    DispatchQueue.global().asyncAfter(deadline: .now() + 20) { continuation.resume() }
                }
                return 0
            }
        }
        #expect(started.duration(to: .now) < .seconds(20), "the deadline waited for the operation")
        await #expect(throws: URLError.self) {
            try await answered(within: .seconds(30), "failing") { () async throws -> Int in throw URLError(.badURL) }
        }
    }
}
