import Foundation
import Logging
import PostgresStore
import Synchronization
import TestSupport
import Testing

@testable import Scheduler

/// A repeated archive costs no round trip, but only within the log's session: after the log
/// failed (the server may have crashed and lost a row not flushed yet), an archive is stored again.
@Suite(.enabled(if: TestDatabase.available, "needs ACCORD_TEST_DATABASE_URL (make test starts a server)"))
struct PostgresPayloadsTests {
    final class Sessions: Sendable { let count = Atomic<Int>(0) }

    @Test func aRepeatIsNotSentAgainUntilTheLogFails() async throws {
        try await TestDatabase.with { test in
            let database = try await PostgresDatabase.open(try PostgresURL(test.url), logger: Logger(label: "test"))
            let sessions = Sessions()
            let payloads = PostgresPayloads(database: database, sessions: { sessions.count.load(ordering: .relaxed) })
            let archive = Array("an archive".utf8)
            let ref = try await payloads.put(archive)
            #expect(try await payloads.get(ref) == archive)

            // The row is lost behind the Scheduler's back: a repeat in the same session is not sent.
            try await test.execute("DELETE FROM accord_payloads")
            #expect(try await payloads.put(archive) == ref)
            #expect(try await test.integer("SELECT count(*) FROM accord_payloads") == 0)

            // Once the log has failed, nothing remembered is trusted: the repeat is stored again.
            sessions.count.store(1, ordering: .relaxed)
            #expect(try await payloads.put(archive) == ref)
            #expect(try await test.integer("SELECT count(*) FROM accord_payloads") == 1)
            #expect(try await payloads.get(ref) == archive)
            await database.close()
        }
    }
}
