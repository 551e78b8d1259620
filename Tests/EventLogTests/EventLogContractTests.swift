import Foundation
import Logging
import PostgresStore
import Synchronization
import TestSupport
import Testing

@testable import EventLog
@testable import Model

/// Which implementation a contract test runs against.
enum LogKind: String, CaseIterable, CustomTestStringConvertible {
    case file, postgres
    var testDescription: String { rawValue }

    /// PostgreSQL only where a server is given (always under `make test`; CI=true without one fails).
    static var available: [LogKind] { TestDatabase.available ? [.file, .postgres] : [.file] }
}

/// An open log and what it takes to reopen it as a restart (file) or the next leader (PostgreSQL) would.
final class LogUnderTest: @unchecked Sendable {
    // @unchecked: used from one test task at a time.
    let kind: LogKind
    private(set) var log: any EventLog
    let directory: String?
    let database: PostgresDatabase?
    private var leadership: Leadership?
    var segmentBytes: UInt64 = 64 << 20
    private static let logger = Logger(label: "contract")

    private init(
        kind: LogKind, log: any EventLog, directory: String?, database: PostgresDatabase?, leadership: Leadership?
    ) {
        self.kind = kind
        self.log = log
        self.directory = directory
        self.database = database
        self.leadership = leadership
    }

    /// Runs `body` with a new, empty log of `kind`, and removes it afterwards.
    static func with(
        _ kind: LogKind, fsync: Bool = false, segmentBytes: UInt64 = 64 << 20,
        _ body: (LogUnderTest) async throws -> Void
    ) async throws {
        switch kind {
        case .file:
            let directory = temporaryDirectory("contract")
            defer { cleanUp(directory) }
            let under = LogUnderTest(
                kind: kind, log: try FileEventLog(directory: directory, segmentBytes: segmentBytes, fsync: fsync),
                directory: directory,
                database: nil, leadership: nil)
            under.segmentBytes = segmentBytes
            try await body(under)
            await under.close()
        case .postgres:
            try await TestDatabase.with { test in
                let database = try await PostgresDatabase.open(try PostgresURL(test.url), logger: logger)
                let leadership = try await Leadership.acquire(database, holder: "contract", logger: logger) { _ in }
                let log = try await PostgresEventLog(database: database, epoch: leadership.epoch, logger: logger)
                let under = LogUnderTest(
                    kind: kind, log: log, directory: nil, database: database, leadership: leadership)
                do {
                    try await body(under)
                } catch {
                    await under.close()
                    await database.close()
                    throw error
                }
                await under.close()
                await database.close()
            }
        }
    }

    func reopen() async throws {
        await close()
        if let directory {
            log = try FileEventLog(directory: directory, segmentBytes: segmentBytes, fsync: false)
        } else if let database {
            let next = try await Leadership.acquire(database, holder: "contract", logger: Self.logger) { _ in }
            leadership = next
            log = try await PostgresEventLog(database: database, epoch: next.epoch, logger: Self.logger)
        }
    }

    func close() async {
        await log.close()
        await leadership?.release()
        leadership = nil
    }
}

func drafts(_ count: Int, _ id: InstanceID = InstanceID()) -> [EventEnvelope] {
    (0..<count).map { i in
        event(
            id,
            .logAppended(
                LogAppended(lines: [LogLine(at: Timestamp(millis: Int64(i)), level: .info, text: "line \(i)")]))
        )
    }
}

/// What every event log promises, run against the file log and the PostgreSQL log alike.
@Suite struct EventLogContractTests {
    @Test(arguments: LogKind.available)
    func appendsAreNumberedInCallOrderAndReadBack(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind) { under in
            let log = under.log
            let first = log.append(drafts(3))
            let second = log.append(drafts(2))
            #expect(first.envelopes.map(\.seq) == [1, 2, 3])
            #expect(second.envelopes.map(\.seq) == [4, 5])
            try await second.durable()
            try await first.durable()
            #expect(log.durableHead == 5)
            #expect(try await log.read(after: 1, limit: 2).map(\.seq) == [2, 3])
            #expect(try await log.read(after: 5, limit: 10).isEmpty)
            #expect(try await log.read(seqs: [5, 1, 99]).map(\.seq) == [5, 1])
            var scanned: [UInt64] = []
            try await log.scan(from: 2) { scanned.append($0.seq) }
            #expect(scanned == [2, 3, 4, 5])
            let read = try await log.read(seqs: [3])
            #expect(read.first?.event == first.envelopes[2].event)
            #expect(read.first?.instanceID == first.envelopes[2].instanceID)
        }
    }

    @Test(arguments: LogKind.available)
    func aReopenedLogHasEverythingAndNumbersOn(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind) { under in
            try await under.log.append(drafts(4)).durable()
            try await under.reopen()
            #expect(under.log.durableHead == 4)
            let next = under.log.append(drafts(1))
            try await next.durable()
            #expect(next.envelopes.map(\.seq) == [5])
            var scanned: [UInt64] = []
            try await under.log.scan(from: 1) { scanned.append($0.seq) }
            #expect(scanned == [1, 2, 3, 4, 5])
        }
    }

    /// Group commit: appends made while a write is under way share the next one. They are made
    /// from inside the first write (its commit hook runs after the batch is durable and before the
    /// writer takes the next), so the test does not race the writer: made in a burst from a task
    /// instead, they shared writes only as far as that task outran the fsyncs, and a loaded
    /// machine that paused it for a few milliseconds gave 206 writes for 400 (suite loop, run 28).
    @Test(arguments: LogKind.available)
    func appendsMadeDuringAWriteShareTheNext(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind, fsync: true) { under in
            let log = under.log
            let during = Mutex<[AppendTicket]>([])
            log.onCommit { envelopes, _ in
                guard envelopes.first?.seq == 1 else { return }
                during.withLock { $0 = (0..<399).map { _ in log.append(drafts(1)) } }
            }
            try await log.append(drafts(1)).durable()
            for ticket in during.withLock({ $0 }) { try await ticket.durable() }
            let stats = log.appendStats
            #expect(stats.events == 400)
            #expect(stats.syncs == 2, "399 appends made during a write took \(stats.syncs - 1) writes")
            var scanned: [UInt64] = []
            try await log.scan(from: 1) { scanned.append($0.seq) }
            #expect(scanned == Array(1...400))
        }
    }

    /// The commit hook sees every durable batch in log order, with the JSON as stored, before the
    /// appenders hear of it.
    @Test(arguments: LogKind.available)
    func theCommitHookSeesEveryBatchInOrderBeforeTheAppenders(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind) { under in
            let log = under.log
            let seen = Mutex<[UInt64]>([])
            let matches = Mutex(true)
            log.onCommit { envelopes, json in
                seen.withLock { $0 += envelopes.map(\.seq) }
                for (envelope, bytes) in zip(envelopes, json) {
                    let stored = (try? EventRecord.body(of: envelope)) ?? []
                    if !stored.elementsEqual(bytes) { matches.withLock { $0 = false } }
                }
            }
            var tickets: [AppendTicket] = []
            for _ in 0..<50 { tickets.append(log.append(drafts(2))) }
            for ticket in tickets {
                try await ticket.durable()
                let last = ticket.envelopes.last?.seq ?? 0
                #expect(seen.withLock { $0.contains(last) }, "#\(last) was acknowledged before it was published")
            }
            #expect(seen.withLock { $0 } == Array(1...100))
            #expect(matches.withLock { $0 })
        }
    }

    @Test(arguments: LogKind.available)
    func waitingForADurableSeqReturnsOnceItIs(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind) { under in
            let log = under.log
            let ticket = log.append(drafts(3))
            try await log.waitDurable(3)
            #expect(log.durableHead >= 3)
            try await ticket.durable()
            try await log.waitDurable(1)
            #expect(log.failed == nil)
            #expect(log.failures == 0)
        }
    }

    @Test(arguments: LogKind.available)
    func aClosedLogRefusesAppends(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind) { under in
            try await under.log.append(drafts(1)).durable()
            await under.log.close()
            await #expect(throws: (any Error).self) { try await under.log.append(drafts(1)).durable() }
            try await under.reopen()
            #expect(under.log.durableHead == 1)
        }
    }
}

/// Retention's removal, the same on both logs.
@Suite struct RetainingLogContractTests {
    @Test(arguments: LogKind.available)
    func aReclaimRemovesOldInstancesAndEveryReaderWalksAcrossTheHoles(_ kind: LogKind) async throws {
        try await LogUnderTest.with(kind, segmentBytes: 2_000) { under in
            var ids: [InstanceID] = []
            for n in 0..<30 {
                let id = InstanceID()
                ids.append(id)
                let at = 1_000 + Int64(n) * 10
                try await under.log.append([
                    event(id, created(id).event, at: at),
                    event(
                        id,
                        .logAppended(LogAppended(lines: [LogLine(at: Timestamp(millis: at), level: .info, text: "n")])),
                        at: at + 1),
                    event(id, .instanceFinished(InstanceFinished(out: [:])), at: at + 2),
                ]).durable()
            }
            let everything = try await Self.scan(under.log)
            let expired = Set(ids.prefix(20))
            let retaining = try #require(under.log as? any RetainingLog)
            var looked: [UInt64] = []
            try await retaining.scanReclaimable(before: Timestamp(millis: 1_150)) { looked.append($0.seq) }
            // From the first event on; the file log stops at the first sealed segment not older than
            // the cutoff and never reads the one being written (PostgreSQL reads pages of 5,000).
            #expect(looked.first == 1)
            #expect(kind == .postgres || looked.count < everything.count)
            let report = try await retaining.reclaim(before: Timestamp(millis: 1_150), archive: nil) {
                expired.contains($0.instanceID)
            }
            #expect(report.events > 0)
            for reopened in [false, true] {
                if reopened { try await under.reopen() }
                let kept = try await Self.scan(under.log)
                #expect(kept.count == everything.count - report.events)
                // The first instance stays whole; what went is events of expired instances only.
                #expect(kept.filter { $0.instanceID == ids[0] }.count == 3)
                let gone = Set(everything.map(\.seq)).subtracting(kept.map(\.seq))
                #expect(everything.filter { gone.contains($0.seq) }.allSatisfy { expired.contains($0.instanceID) })
                // Paged reads walk across the holes and agree with the scan.
                var paged: [UInt64] = []
                var after: UInt64 = 0
                while let last = try await under.log.read(after: after, limit: 7).last {
                    paged += try await under.log.read(after: after, limit: 7).map(\.seq)
                    after = last.seq
                }
                #expect(paged == kept.map(\.seq))
                #expect(try await under.log.read(seqs: Array(gone)).isEmpty)
            }
            // The log verifies with its holes, and appends go on after them.
            let verified =
                if let database = under.database { try await database.verify() } else {
                    try LogVerifier.verify(directory: try #require(under.directory))
                }
            #expect(verified.ok, "\(String(describing: verified.failure))")
            let head = under.log.durableHead
            try await under.log.append([event(InstanceID(), created(InstanceID()).event)]).durable()
            #expect(under.log.durableHead == head + 1)
        }
    }

    static func scan(_ log: any EventLog) async throws -> [EventEnvelope] {
        var events: [EventEnvelope] = []
        try await log.scan(from: 1) { events.append($0) }
        return events
    }
}
