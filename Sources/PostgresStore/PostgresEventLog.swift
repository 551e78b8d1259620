import EventLog
import Foundation
import Logging
import Model
import NIOCore
import PostgresNIO
import Support
import Synchronization

/// The event log in PostgreSQL, for Schedulers that share one database.
///
/// It keeps the file log's contract: `append` numbers events at once and in call order, a writer
/// task writes whatever has queued meanwhile as one statement (one transaction, one commit: group
/// commit), and appenders are told their events are durable only once that transaction commits.
/// Each write is fenced: it raises `accord_log.head` only where the epoch is still this log's own,
/// so a Scheduler that was paused or cut off while another took over appends nothing when it
/// wakes: its write changes no row, and the log refuses every append from then on
/// (`EventLogFenced`).
package final class PostgresEventLog: EventLog, @unchecked Sendable {
    // @unchecked: the mutable state below is guarded by `lock`.
    private struct Pending {
        var envelopes: [EventEnvelope]
        var bodies: [[UInt8]]
        var promise: Promise<Void>
    }

    package let database: PostgresDatabase
    /// The leader's epoch this log writes under.
    package let epoch: UInt64
    private let logger: Logger
    private let lock = NSLock()
    private var writer: PostgresConnection?
    private var nextSeq: UInt64
    private var durable: UInt64
    private var pending: [Pending] = []
    private var durableWaiters: [(seq: UInt64, promise: Promise<Void>)] = []
    private var failure: EventLogError?
    private var fenced: EventLogFenced?
    private var failureCount = 0
    private var closed = false
    private let doorbell: AsyncStream<Void>.Continuation
    private var writerTask: Task<Void, Never>?
    private let stats = Mutex(AppendStats())
    private final class CommitHook: Sendable {
        let call: @Sendable ([EventEnvelope], [ArraySlice<UInt8>]) -> Void
        init(_ call: @escaping @Sendable ([EventEnvelope], [ArraySlice<UInt8>]) -> Void) { self.call = call }
    }
    private let commitHook = Mutex<CommitHook?>(nil)
    /// Called once, when a write finds that another Scheduler has taken the log over.
    private let onFenced: @Sendable (EventLogFenced) -> Void

    /// Opens the log for writing under `epoch`, the epoch this process was given when it took the
    /// lead (`Leadership`). The log starts where the database says it ends.
    package init(
        database: PostgresDatabase, epoch: UInt64, logger: Logger,
        onFenced: @escaping @Sendable (EventLogFenced) -> Void = { _ in }
    ) async throws {
        self.database = database
        self.epoch = epoch
        self.logger = logger
        self.onFenced = onFenced
        let writer = try await database.connect("event log writer")
        let (current, head) = try await Self.position(writer, logger: logger)
        guard current == epoch else {
            try? await writer.close()
            throw EventLogFenced("the log's epoch is \(current), not \(epoch): another Scheduler leads")
        }
        self.writer = writer
        nextSeq = head + 1
        durable = head
        let (bells, doorbell) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.doorbell = doorbell
        writerTask = Task { [weak self] in
            for await _ in bells {
                guard let self else { return }
                while let batch = self.takeBatch() { await self.write(batch) }
                if self.isDone { return }
            }
        }
    }

    private static func position(_ connection: PostgresConnection, logger: Logger) async throws -> (UInt64, UInt64) {
        let rows = try await connection.query("SELECT epoch, head FROM accord_log WHERE id = 1", logger: logger)
        for try await (epoch, head) in rows.decode((Int64, Int64).self) { return (UInt64(epoch), UInt64(head)) }
        throw EventLogError("the database has no accord_log row")
    }

    package func onCommit(_ hook: @escaping @Sendable ([EventEnvelope], [ArraySlice<UInt8>]) -> Void) {
        let boxed = CommitHook(hook)
        commitHook.withLock { $0 = boxed }
    }

    package var durableHead: UInt64 { lock.withLock { durable } }

    package var failed: EventLogError? { lock.withLock { failure } }

    package var failures: Int { lock.withLock { failureCount } }

    package var appendStats: AppendStats { stats.withLock { $0 } }

    private var isDone: Bool { lock.withLock { closed && pending.isEmpty } }

    package func append(_ drafts: [EventEnvelope]) -> AppendTicket {
        let promise = Promise<Void>()
        guard !drafts.isEmpty else {
            promise.fulfill(.success(()))
            return AppendTicket(envelopes: [], promise: promise)
        }
        lock.lock()
        defer { lock.unlock() }
        if let refusal = closed ? EventLogError("the event log is closed") : failure {
            promise.fulfill(.failure(refusal))
            return AppendTicket(envelopes: [], promise: promise)
        }
        let numbered: [EventEnvelope]
        let bodies: [[UInt8]]
        do {
            (numbered, bodies) = try EventRecord.number(drafts, from: nextSeq)
        } catch {
            promise.fulfill(.failure(error))
            return AppendTicket(envelopes: [], promise: promise)
        }
        nextSeq += UInt64(drafts.count)
        pending.append(Pending(envelopes: numbered, bodies: bodies, promise: promise))
        doorbell.yield()
        return AppendTicket(envelopes: numbered, promise: promise)
    }

    /// Everything queued, at most a few thousand events (one statement's worth).
    private func takeBatch() -> [Pending]? {
        lock.withLock {
            guard !pending.isEmpty else { return nil }
            var count = 0
            var taken = 0
            while taken < pending.count && (taken == 0 || count + pending[taken].envelopes.count <= 4096) {
                count += pending[taken].envelopes.count
                taken += 1
            }
            let batch = Array(pending.prefix(taken))
            pending.removeFirst(taken)
            return batch
        }
    }

    private func write(_ batch: [Pending]) async {
        let envelopes = batch.flatMap(\.envelopes)
        guard let first = envelopes.first?.seq, let last = envelopes.last?.seq else { return }
        guard let writer = lock.withLock({ failure == nil ? self.writer : nil }) else {
            // A batch numbered before a failure: the failure already refused it.
            for item in batch { item.promise.fulfill(.failure(failed ?? EventLogError("the event log failed"))) }
            return
        }
        let bodies = batch.flatMap(\.bodies)
        var buffers: [ByteBuffer] = []
        buffers.reserveCapacity(bodies.count)
        for body in bodies { buffers.append(ByteBuffer(bytes: body)) }
        let epoch = Int64(epoch)
        let query: PostgresQuery = """
            WITH fence AS (
                UPDATE accord_log SET head = \(Int64(last))
                WHERE id = 1 AND epoch = \(epoch) AND head = \(Int64(first - 1)) RETURNING 1),
            written AS (
                INSERT INTO accord_events (seq, epoch, stream, body)
                SELECT e.seq, \(epoch), e.stream, e.body
                FROM unnest(\(envelopes.map { Int64($0.seq) })::int8[], \(envelopes.map { $0.instanceID.uuid })::uuid[],
                    \(buffers)::bytea[]) AS e(seq, stream, body)
                WHERE EXISTS (SELECT 1 FROM fence)
                RETURNING 1)
            SELECT count(*) FROM written
            """
        let started = ContinuousClock.now
        var written = 0
        let logger = logger
        do {
            guard !writer.isClosed else { throw EventLogError("the database ended the session") }
            // Unanswered for this long, the write counts as failed; whether it landed is learnt
            // in `recover`, from the head the database holds.
            written = try await answered(within: .seconds(10), "writing the event log") {
                var written = 0
                for try await count in try await writer.query(query, logger: logger).decode(Int64.self) {
                    written = Int(count)
                }
                return written
            }
        } catch {
            fail(batch, EventLogError("writing the event log failed: \(PostgresDatabase.describe(error))"))
            return
        }
        guard written == envelopes.count else {
            await fence(batch, first: first)
            return
        }
        stats.withLock { $0.record(events: envelopes.count, took: started.duration(to: .now)) }
        let reached: [Promise<Void>] = lock.withLock {
            durable = last
            let reached = durableWaiters.filter { $0.seq <= last }.map(\.promise)
            durableWaiters.removeAll { $0.seq <= last }
            return reached
        }
        for promise in reached { promise.fulfill(.success(())) }
        if let hook = commitHook.withLock({ $0 }) { hook.call(envelopes, bodies.map { $0[...] }) }
        for item in batch { item.promise.fulfill(.success(())) }
    }

    /// The write changed nothing: another Scheduler raised the epoch (or wrote past this one's head).
    private func fence(_ batch: [Pending], first: UInt64) async {
        var reason = "the log was taken over by another Scheduler"
        if let (current, head) = try? await database.head() {
            reason += " (epoch \(current) at #\(head); this one wrote under epoch \(epoch) from #\(first))"
        }
        let fenced = EventLogFenced(reason)
        lock.withLock { self.fenced = fenced }
        logger.critical(
            "fenced: this Scheduler no longer leads and appends nothing more", metadata: ["why": "\(reason)"])
        // Before any appender hears of it: a Scheduler exits here, and answers nothing.
        onFenced(fenced)
        fail(batch, EventLogError(reason))
    }

    /// A failed write takes everything queued with it; numbers after the last durable event are
    /// handed out again once the log recovers.
    private func fail(_ batch: [Pending], _ error: EventLogError) {
        let (queued, waiters): ([Pending], [(seq: UInt64, promise: Promise<Void>)]) = lock.withLock {
            failure = error
            failureCount += 1
            let queued = pending
            pending = []
            nextSeq = durable + 1
            let waiters = durableWaiters
            durableWaiters = []
            return (queued, waiters)
        }
        for item in batch + queued { item.promise.fulfill(.failure(error)) }
        for waiter in waiters { waiter.promise.fulfill(.failure(error)) }
    }

    /// Reconnects when the connection was lost and learns where the log really ends (a write whose
    /// commit was cut off may have landed). Throws `EventLogFenced` once another Scheduler leads.
    package func recover() async throws {
        if let fenced = lock.withLock({ self.fenced }) { throw fenced }
        guard lock.withLock({ failure != nil }) else { return }
        // A new session each time: the old one may be gone, or hold a write of unknown outcome.
        try? await lock.withLock({ self.writer })?.close()
        let connection = try await database.connect("event log writer")
        let logger = logger
        let position: (UInt64, UInt64)
        do {
            position = try await answered(within: .seconds(5), "reading the log's head") {
                try await Self.position(connection, logger: logger)
            }
        } catch {
            try? await connection.close()
            throw error
        }
        let (current, head) = position
        guard current == epoch else {
            let fenced = EventLogFenced("another Scheduler leads now (epoch \(current), this one \(epoch))")
            lock.withLock { self.fenced = fenced }
            throw fenced
        }
        lock.withLock {
            writer = connection
            durable = head
            nextSeq = head + 1
            failure = nil
        }
    }

    package func waitDurable(_ seq: UInt64) async throws {
        let waiting: Result<Promise<Void>?, EventLogError> = lock.withLock {
            if seq <= durable { return .success(nil) }
            if let failure { return .failure(failure) }
            let promise = Promise<Void>()
            durableWaiters.append((seq, promise))
            return .success(promise)
        }
        try await waiting.get()?.value()
    }

    package func read(after: UInt64, limit: Int) async throws -> [EventEnvelope] {
        try await database.events(after: after, through: durableHead, limit: limit).map(\.0)
    }

    /// Read and encoded again (the rows' JSON is what was stored, but decoding checks each row).
    package func readStored(after: UInt64, limit: Int) async throws -> [StoredEvent] {
        try await read(after: after, limit: limit).map { StoredEvent(seq: $0.seq, json: try EventRecord.body(of: $0)) }
    }

    package func read(seqs: [UInt64]) async throws -> [EventEnvelope] {
        let head = durableHead
        return try await database.events(seqs: seqs.filter { $0 >= 1 && $0 <= head })
    }

    package func scan(from firstSeq: UInt64, _ body: (EventEnvelope) throws -> Void) async throws {
        try await database.scan(from: firstSeq, through: durableHead) { envelope, _ in
            try body(envelope)
            return true
        }
    }

    package func close() async {
        let task: Task<Void, Never>? = lock.withLock {
            closed = true
            return writerTask
        }
        doorbell.yield()
        doorbell.finish()
        await task?.value
        try? await lock.withLock({ writer })?.close()
    }
}

/// Retention on PostgreSQL: the history is read in pages of 5,000 from the first event, up to the
/// first page that begins at or after the cutoff; each page's removals are one transaction that
/// checks the epoch still leads and records the range (`accord_reclaimed`), so `accord log verify`
/// tells the holes retention made from lost rows. Short transactions: appends go on between them.
extension PostgresEventLog: RetainingLog {
    private static let page = 5_000

    package func scanReclaimable(before: Timestamp, _ body: (EventEnvelope) throws -> Void) async throws {
        let head = durableHead
        var after: UInt64 = 0
        while after < head {
            let page = try await database.events(after: after, through: head, limit: Self.page)
            guard let first = page.first, let last = page.last, first.0.at < before else { return }
            for (envelope, _) in page { try body(envelope) }
            after = last.0.seq
        }
    }

    package func reclaim(before: Timestamp, archive: EventArchive?, remove: @Sendable (EventEnvelope) -> Bool)
        async throws -> ReclaimReport
    {
        var report = ReclaimReport()
        let head = durableHead
        let firstStream = try await database.events(after: 0, through: head, limit: 1).first?.0.instanceID
        var after: UInt64 = 0
        while after < head {
            let page = try await database.events(after: after, through: head, limit: Self.page)
            guard let first = page.first, let last = page.last, first.0.at < before else { break }
            after = last.0.seq
            let removed = page.filter { $0.0.instanceID != firstStream && remove($0.0) }
            guard !removed.isEmpty else { continue }
            if let archive, let path = try archive.write(removed.map { ($0.0.seq, $0.0.at, $0.1) }) {
                report.archives.append(path)
            }
            try await database.reclaim(seqs: removed.map(\.0.seq), within: first.0.seq...last.0.seq, epoch: epoch)
            report.events += removed.count
            report.rewrites += 1
            report.bytesBefore += UInt64(page.reduce(0) { $0 + $1.1.count })
            report.bytesAfter += UInt64(page.reduce(0) { $0 + $1.1.count } - removed.reduce(0) { $0 + $1.1.count })
        }
        return report
    }
}
