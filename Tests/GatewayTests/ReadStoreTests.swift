import Foundation
import GRDB
import JSON
import Model
import ReadModels
import TestSupport
import Testing

@testable import Gateway

/// The Gateway's bounded read models (hot instances in memory, ended ones in the SQLite store)
/// answer exactly what the whole fold in memory answers, before and after a restart, and keep in
/// memory only what is live.
@Suite struct ReadStoreTests {
    /// A history as the Scheduler writes one: instances of two teams with tags, runs that log and
    /// end every way, some still live, a few late events after an end (old logs hold those), and keys.
    static func history(seed: UInt64, instances count: Int) -> [EventEnvelope] {
        var rng = SplitMix(seed: seed)
        var events: [EventEnvelope] = []
        func add(_ id: InstanceID, _ event: Event) {
            events.append(
                EventEnvelope(
                    seq: UInt64(events.count + 1), instanceID: id, at: Timestamp(millis: Int64(events.count) * 7),
                    event: event))
        }
        var running: [InstanceID] = []
        let key = KeyID()
        for n in 0..<count {
            let id = InstanceID()
            let tags = [["nightly"], ["nightly", "eu"], [], ["eu"]][Int(rng.next() % 4)]
            add(
                id,
                .instanceCreated(
                    InstanceCreated(
                        entryPoint: "main", arguments: [:], timeoutMillis: nil, out: ["x"], tags: tags,
                        payload: PayloadRef(digest: "d", size: 1), idempotencyKey: nil, principal: "p",
                        team: n % 3 == 0 ? nil : "team-\(n % 2)")))
            running.append(id)
            if n == count / 2 {
                add(
                    key,
                    .apiKeyCreated(ApiKeyCreated(name: "ci", team: "team-1", admin: false, hash: "ab", createdBy: nil)))
            }
            // Move a few of the instances in flight on.
            for _ in 0..<2 where !running.isEmpty {
                let index = Int(rng.next() % UInt64(running.count))
                let id = running[index]
                switch rng.next() % 12 {
                case 0: add(id, .instanceAssigned(InstanceAssigned(executorID: ExecutorID("e1"), attempt: 1)))
                case 1: add(id, .instanceStarted(InstanceStarted(executorID: ExecutorID("e1"))))
                case 2, 3:
                    let lines = (0..<Int(rng.next() % 3) + 1).map {
                        LogLine(at: Timestamp(millis: Int64(events.count)), level: .info, text: "line \($0) of \(id)")
                    }
                    add(id, .logAppended(LogAppended(lines: lines)))
                case 4: add(id, .instanceFinished(InstanceFinished(out: ["x": .int(Int64(n))])))
                case 5: add(id, .instanceFailed(InstanceFailed(error: "boom \(n)", out: [:])))
                case 6: add(id, .instanceCancelled(InstanceCancelled(reason: "stopped by a client")))
                case 7: add(id, .instanceTimedOut(InstanceTimedOut(error: "too slow")))
                default: continue
                }
                if events.last?.event.status?.isTerminal == true {
                    running.remove(at: index)
                    if rng.next() % 8 == 0 {
                        // A late line after the end: it belongs to the log, the status stays.
                        add(id, .logAppended(LogAppended(lines: [LogLine(at: .now(), level: .warn, text: "late")])))
                    }
                }
            }
        }
        add(key, .apiKeyRevoked(ApiKeyRevoked(revokedBy: nil)))
        return events
    }

    /// The fold the tooling makes: every instance in memory, every log as text.
    static func wholeFold(_ events: [EventEnvelope]) -> (StatusProjection, [InstanceID: [UInt8]]) {
        var whole = StatusProjection()
        var logs: [InstanceID: [UInt8]] = [:]
        for envelope in events {
            whole.apply(envelope)
            if case .logAppended(let appended) = envelope.event, whole.instances[envelope.instanceID] != nil {
                logs[envelope.instanceID, default: []] += Array(LogRendering.render(appended.lines).utf8)
            }
        }
        return (whole, logs)
    }

    /// Applies `events` in batches of random sizes; some batches are written at once, others pile
    /// up, so both kinds of state are read afterwards.
    static func fold(_ events: [EventEnvelope], into projection: GatewayProjection, seed: UInt64) async {
        var rng = SplitMix(seed: seed)
        var index = 0
        while index < events.count {
            let size = Int(rng.next() % 40) + 1
            #expect(projection.apply(Array(events[index..<min(events.count, index + size)])))
            if rng.next() % 3 == 0 { await projection.flush() }
            index += size
            await Task.yield()
        }
    }

    static func body(_ value: some Encodable) -> String {
        String(decoding: ReadModelBodies.encode(value), as: UTF8.self)
    }

    /// Every status, history, log, event list and listing of `projection` equals the whole fold's.
    static func expectSameAnswers(
        _ projection: GatewayProjection, _ whole: StatusProjection, _ logs: [InstanceID: [UInt8]]
    ) async throws {
        #expect(projection.head == whole.head)
        for (id, view) in whole.instances {
            await Task.yield()
            guard let served = projection.view(id) else {
                Issue.record("\(id) is missing")
                continue
            }
            #expect(body(ReadModelBodies.status(served)) == body(ReadModelBodies.status(view)))
            #expect(body(ReadModelBodies.history(served)) == body(ReadModelBodies.history(view)))
            #expect(served.eventSeqs == view.eventSeqs)
            let text = logs[id] ?? []
            #expect(projection.logs.size(id) == text.count)
            #expect(projection.logs.read(id, from: 0, to: text.count) == text)
        }
        var counts: [InstanceStatus: Int] = [:]
        for view in whole.instances.values { counts[view.status, default: 0] += 1 }
        #expect(projection.countsByStatus() == counts)
        let visibilities: [Visibility] = [.all, .team("team-0"), .team("team-1")]
        for visible in visibilities {
            for status in [nil, InstanceStatus.running, .finished, .enqueued] {
                for tag in [nil, "nightly", "eu", "none"] {
                    for (limit, offset) in [(30, 0), (7, 3), (1000, 0), (5, 200)] {
                        await Task.yield()
                        let served = try projection.list(
                            status: status, tag: tag, visible: visible, limit: limit, offset: offset)
                        let expected = whole.list(
                            status: status, tag: tag, visible: visible, limit: limit, offset: offset)
                        #expect(
                            body(ReadModelBodies.listing(served)) == body(ReadModelBodies.listing(expected)),
                            "\(visible) \(status?.rawValue ?? "-") \(tag ?? "-") \(limit)/\(offset)")
                    }
                }
            }
        }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func boundedReadModelsAnswerAsTheWholeFold(seed: UInt64) async throws {
        let directory = NSTemporaryDirectory() + "accord-readstore-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = Self.history(seed: seed, instances: 400)
        let (whole, logs) = Self.wholeFold(events)
        let live = Set(whole.instances.values.filter { !$0.status.isTerminal }.map(\.id))
        #expect(!live.isEmpty && live.count < whole.instances.count / 2)

        do {
            let projection = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
            await Self.fold(events, into: projection, seed: seed)
            try await Self.expectSameAnswers(projection, whole, logs)
            await projection.flush()
            #expect(projection.hotCount == live.count, "memory holds what is live, and only that")
            try await Self.expectSameAnswers(projection, whole, logs)
            #expect(projection.key(hash: "ab") == nil && projection.key(id: events.last!.instanceID)?.revokedAt != nil)
        }
        // A restart: the live instances come back from the store, the head is where it was.
        let restarted = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
        #expect(restarted.hotCount == live.count)
        try await Self.expectSameAnswers(restarted, whole, logs)
        #expect(restarted.key(id: events.last!.instanceID)?.name == "ci")
    }

    /// Retention's `HistoryTrimmed` in the stream: the instances that ended before it go from
    /// memory and from the store alike (whether written already or not), counts follow, and the
    /// answers, before and after a restart, are the whole fold's (which forgets the same ones).
    @Test(arguments: [4, 5] as [UInt64])
    func aTrimmedHistoryAnswersAsTheWholeFold(seed: UInt64) async throws {
        let directory = NSTemporaryDirectory() + "accord-readstore-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var events = Self.history(seed: seed, instances: 400)
        for fraction in [3, 2] {
            let at = events.count * (fraction - 1) / fraction
            let trim = EventEnvelope(
                instanceID: InstanceID(), at: events[at].at,
                event: .historyTrimmed(
                    HistoryTrimmed(before: Timestamp(millis: events[at].at.millis / 2), retentionMillis: 1)))
            events.insert(trim, at: at)
        }
        for index in events.indices { events[index].seq = UInt64(index + 1) }
        let (whole, logs) = Self.wholeFold(events)
        let created = Set(events.filter(\.event.isCreation).map(\.instanceID))
        #expect(whole.instances.count < created.count - 20, "the trims forgot too few to tell")

        do {
            let projection = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
            await Self.fold(events, into: projection, seed: seed)
            await projection.flush()
            try await Self.expectSameAnswers(projection, whole, logs)
            for id in created.subtracting(whole.instances.keys) { #expect(projection.view(id) == nil) }
        }
        let restarted = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
        try await Self.expectSameAnswers(restarted, whole, logs)
        for id in created.subtracting(whole.instances.keys) { #expect(restarted.view(id) == nil) }
    }

    /// Retention gives the disk back: the store's free pages (all of the history trimmed: one
    /// `VACUUM`; a third: incremental vacuum) and WAL, and the removed logs' bytes in `logs.dat`
    /// (holes), while what is kept reads as before.
    @Test(arguments: [15_500, 5_000] as [Int64])
    func aTrimGivesTheDiskBack(cutoff: Int64) async throws {
        let directory = NSTemporaryDirectory() + "accord-readstore-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func blocks(_ names: [String]) -> Int {
            names.reduce(0) { total, name in
                var info = stat()
                return total + (stat(directory + "/" + name, &info) == 0 ? Int(info.st_blocks) * 512 : 0)
            }
        }
        let store = ["read-models.sqlite", "read-models.sqlite-wal"]
        let projection = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
        var events: [EventEnvelope] = []
        func add(_ id: InstanceID, _ event: Event, at millis: Int64) {
            events.append(
                EventEnvelope(
                    seq: UInt64(events.count + 1), instanceID: id, at: Timestamp(millis: millis), event: event))
        }
        let text = String(repeating: "x", count: 3000)
        let kept = InstanceID()
        for (n, id) in ((0..<1500).map { _ in InstanceID() } + [kept]).enumerated() {
            let at = Int64(n) * 10
            var creation = created(id, at: at)
            creation.seq = UInt64(events.count + 1)
            events.append(creation)
            add(
                id, .logAppended(LogAppended(lines: [LogLine(at: Timestamp(millis: at), level: .info, text: text)])),
                at: at)
            if id != kept { add(id, .instanceFinished(InstanceFinished(out: [:])), at: at + 1) }
        }
        #expect(projection.apply(events))
        await projection.flush()
        let (storeBefore, logsBefore) = (blocks(store), blocks(["logs.dat"]))
        func pages() async throws -> (count: Int, free: Int) {
            try await DatabaseQueue(path: directory + "/read-models.sqlite").read {
                (
                    try Int.fetchOne($0, sql: "PRAGMA page_count") ?? 0,
                    try Int.fetchOne($0, sql: "PRAGMA freelist_count") ?? 0
                )
            }
        }
        let pagesBefore = try await pages()
        #expect(logsBefore > 1500 * 3000)
        let trim = EventEnvelope(
            seq: UInt64(events.count + 1), instanceID: InstanceID(), at: Timestamp(millis: cutoff),
            event: .historyTrimmed(HistoryTrimmed(before: Timestamp(millis: cutoff), retentionMillis: 1)))
        #expect(projection.apply([trim]))
        await projection.flush()
        await projection.reclaimed()
        let trimmed = (0..<1500).filter { Int64($0) * 10 + 1 < cutoff }.count
        let (storeAfter, logsAfter, pagesAfter) = (blocks(store), blocks(["logs.dat"]), try await pages())
        #expect(storeAfter < storeBefore, "store \(storeBefore) -> \(storeAfter) bytes")
        #expect(pagesAfter.free == 0)
        #expect(
            pagesAfter.count < pagesBefore.count - pagesBefore.count * trimmed / 1501 / 2,
            "pages \(pagesBefore) -> \(pagesAfter), \(trimmed) trimmed")
        #expect(logsAfter < logsBefore - trimmed * 2900, "logs \(logsBefore) -> \(logsAfter) bytes, \(trimmed) trimmed")
        #expect(projection.countsByStatus() == [.enqueued: 1, .finished: 1500 - trimmed].filter { $0.value > 0 })
        #expect(
            projection.logs.read(kept, from: 0, to: 1_000_000)
                == Array(
                    LogRendering.render(
                        [LogLine(at: Timestamp(millis: 15_000), level: .info, text: text)]).utf8))
    }

    /// A store written by the version before retention (format 1) is brought up in place: each
    /// ended instance's end is read from its view, so a trim removes it like a new row.
    @Test func aStoreOfTheFormerFormatIsMigratedAndTrimmed() async throws {
        let directory = NSTemporaryDirectory() + "accord-readstore-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/read-models.sqlite"
        let (ended, live) = (InstanceID(), InstanceID())
        /// The view the fold makes of an instance created (and, when `status` is terminal, ended) at `millis`.
        @Sendable func view(_ id: InstanceID, _ status: InstanceStatus, at millis: Int64, seq: UInt64) -> InstanceView {
            var fold = StatusProjection()
            var created = created(id)
            created.seq = seq
            created.at = Timestamp(millis: millis)
            fold.apply(created)
            if status.isTerminal {
                fold.apply(
                    EventEnvelope(
                        seq: seq + 100, instanceID: id, at: Timestamp(millis: millis),
                        event: .instanceFinished(InstanceFinished(out: [:]))))
            }
            return fold.instances[id]!
        }
        do {
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE instances (seq INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, team TEXT,
                            status TEXT NOT NULL, view BLOB NOT NULL, log BLOB NOT NULL);
                        CREATE INDEX instances_team ON instances(team, seq);
                        CREATE INDEX instances_status ON instances(status, seq);
                        CREATE TABLE tags (tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, seq)) WITHOUT ROWID;
                        CREATE TABLE key_events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
                        CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
                        INSERT INTO meta (key, value) VALUES ('version', '1'), ('head', '2');
                        """)
                for (id, status, millis, seq) in [
                    (ended, InstanceStatus.finished, 1_000, 1), (live, .enqueued, 5_000, 2),
                ] {
                    try db.execute(
                        sql: "INSERT INTO instances (seq, id, status, view, log) VALUES (?, ?, ?, ?, ?)",
                        arguments: [
                            seq, id.bytes, status.rawValue,
                            try JSONEncoder().encode(view(id, status, at: Int64(millis), seq: UInt64(seq))), Data(),
                        ])
                    try db.execute(sql: "INSERT INTO tags (tag, seq) VALUES ('t', ?)", arguments: [seq])
                }
            }
        }
        let store = try ReadStore(path: path)
        #expect(try store.instance(ended) != nil)
        try await store.write(
            ReadStore.Batch(
                head: 3, previousHead: 2, instances: [], keyEvents: [], counts: [:], identity: nil,
                trimmedBefore: Timestamp(millis: 2_000)))
        #expect(try store.instance(ended) == nil)
        #expect(try store.instance(live) != nil)
        #expect(try store.list(ListFilter(), skipping: [], count: 10).map(\.id) == [live])
    }

    /// Events folded after the last write are folded again after a restart (the store is behind,
    /// never ahead): the answers are the same, no log line counted twice.
    @Test func eventsAfterTheLastWriteAreFoldedAgain() async throws {
        let directory = NSTemporaryDirectory() + "accord-readstore-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = Self.history(seed: 9, instances: 200)
        let half = events.count / 2
        do {
            let projection = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
            #expect(projection.apply(Array(events[..<half])))
            await projection.flush()
            // Folded, logs written, never stored: as if the process died here.
            #expect(projection.apply(Array(events[half..<(half + 50)])))
        }
        let restarted = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
        #expect(restarted.head == UInt64(half))
        #expect(restarted.apply(Array(events[half...])))
        let (whole, logs) = Self.wholeFold(events)
        try await Self.expectSameAnswers(restarted, whole, logs)
    }

    /// `reset` forgets a store folded from another log, on disk too.
    @Test func resetForgetsEverything() async throws {
        let directory = NSTemporaryDirectory() + "accord-readstore-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let events = Self.history(seed: 4, instances: 50)
        do {
            let projection = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
            #expect(projection.apply(events))
            await projection.flush()
            #expect(projection.identity == GatewayProjection.identity(of: events[0]))
            try await projection.reset()
            #expect(projection.head == 0 && projection.identity == nil)
            #expect(try projection.list(status: nil, tag: nil, visible: .all, limit: 10, offset: 0).isEmpty)
        }
        let restarted = try GatewayProjection(directory: directory, flushEvery: .seconds(3600))
        #expect(restarted.head == 0 && restarted.hotCount == 0 && restarted.countsByStatus().isEmpty)
        #expect(restarted.view(events[0].instanceID) == nil)
    }
}
