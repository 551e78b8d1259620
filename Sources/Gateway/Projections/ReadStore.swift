import Foundation
import GRDB
import Model
import ReadModels
import Support

/// The Gateway's read models on disk (SQLite through GRDB), so that its memory follows what is
/// live and a restart goes on from where it stopped instead of folding the whole log again.
///
/// Every instance's view is a row (its `InstanceView` as JSON, with where its log lies in
/// `logs.dat`), keyed by the sequence number of its `InstanceCreated`, so the newest first is a
/// walk down the primary key. The row set and `head` change together in one transaction: the
/// store always equals the fold of the log up to its head. Nothing here is precious: a store
/// that is missing, of another format, or of another log is emptied and folded again.
final class ReadStore: Sendable {
    /// 1: instances, tags, key events, meta. 2: when each instance ended (retention). 3: each
    /// instance's parent (`/subprocess`).
    static let formatVersion = 3

    let path: String
    private let pool: DatabasePool

    /// What a batch writes: the views changed since the last one, at `head`.
    struct Batch: Sendable {
        var head: UInt64
        /// The head of the batch before (rows created after it are new, and get their tags).
        var previousHead: UInt64
        var instances: [Stored]
        var keyEvents: [EventEnvelope]
        var counts: [InstanceStatus: Int]
        var identity: String?
        /// Retention in this batch: rows of instances that ended before this go.
        var trimmedBefore: Timestamp? = nil
        /// Instances retention took from memory: their rows go whatever they say.
        var trimmed: [InstanceID] = []
    }

    /// One instance as stored: its view and where its log lies.
    struct Stored: Sendable {
        var view: InstanceView
        var chunks: [LogChunk]
    }

    /// What a start finds.
    struct Loaded: Sendable {
        var head: UInt64 = 0
        var identity: String?
        var counts: [InstanceStatus: Int] = [:]
        var keyEvents: [EventEnvelope] = []
        /// The instances that are not terminal.
        var live: [Stored] = []
    }

    init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        configuration.label = "accord-read-models"
        configuration.prepareDatabase { db in
            // The store is rebuilt from the log when it is behind: an OS crash may lose the last
            // commits, never make it inconsistent (WAL), so no fsync per commit.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // A retention pass deletes many rows in one transaction: the WAL grows by every page
            // it changed, and is cut back to this once they are checkpointed.
            try db.execute(sql: "PRAGMA journal_size_limit = \(64 << 20)")
        }
        let pool = try Self.openCurrent(path, configuration)
        try Self.vacuumIncrementally(pool)
        self.pool = pool
    }

    /// Pages freed by deleted rows go back to the filesystem (`reclaim`) only in a file made with
    /// incremental auto-vacuum; a store made before is rewritten so once (one `VACUUM`).
    private static func vacuumIncrementally(_ pool: DatabasePool) throws {
        let mode = try pool.read { try Int.fetchOne($0, sql: "PRAGMA auto_vacuum") }
        guard mode != 2 else { return }
        try pool.barrierWriteWithoutTransaction { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute(sql: "VACUUM")
        }
    }

    /// Gives the pages that deleted rows freed back to the filesystem, then cuts the WAL back.
    /// Most of the file free (a first pass over a long history): `VACUUM`, which copies what
    /// stays (less than what went); otherwise a few megabytes per write transaction, so that
    /// batches are not held up. SQLite looks each page it returns up in its list of free pages,
    /// so returning a free list of millions one step at a time took longer than the pass itself
    /// (ten million trimmed instances: 7.7 GB given back at 130 MB per 30 s).
    func reclaim() async throws {
        let (free, pages) = try await pool.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0,
                try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            )
        }
        if free * 2 > pages {
            try await pool.writeWithoutTransaction { try $0.execute(sql: "VACUUM") }
        } else {
            while try await pool.write({ db -> Bool in
                try db.execute(sql: "PRAGMA incremental_vacuum(2048)")
                return try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0 > 0
            }) {}
        }
        try await pool.writeWithoutTransaction { db in
            _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }

    /// Opens the file, and starts it afresh when it holds another format.
    private static func openCurrent(_ path: String, _ configuration: Configuration) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration)
        let version = try pool.read { db -> Int? in
            guard try db.tableExists("meta") else { return nil }
            return try Int.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'version'")
        }
        if version == formatVersion { return pool }
        if version == 2 {
            // In place: no instance had a parent before.
            try pool.write { db in
                try db.execute(sql: Self.addParent + "UPDATE meta SET value = '3' WHERE key = 'version';")
            }
            return pool
        }
        if version == 1 {
            // In place: when each ended instance ended is in its view already.
            let terminal = InstanceStatus.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(
                separator: ",")
            try pool.write { db in
                try db.execute(
                    sql: """
                        ALTER TABLE instances ADD COLUMN ended INTEGER;
                        UPDATE instances SET ended = json_extract(CAST(view AS TEXT), '$.lastChangeAt')
                            WHERE status IN (\(terminal));
                        CREATE INDEX instances_ended ON instances(ended) WHERE ended IS NOT NULL;
                        """ + Self.addParent + "UPDATE meta SET value = '\(formatVersion)' WHERE key = 'version';")
            }
            return pool
        }
        try pool.write { db in
            for table in ["instances", "tags", "key_events", "meta"] {
                try db.execute(sql: "DROP TABLE IF EXISTS \(table)")
            }
            try db.execute(
                sql: """
                    CREATE TABLE instances (
                        seq INTEGER PRIMARY KEY,
                        id BLOB NOT NULL UNIQUE,
                        team TEXT,
                        status TEXT NOT NULL,
                        view BLOB NOT NULL,
                        log BLOB NOT NULL,
                        ended INTEGER);
                    CREATE INDEX instances_ended ON instances(ended) WHERE ended IS NOT NULL;
                    CREATE INDEX instances_team ON instances(team, seq);
                    CREATE INDEX instances_status ON instances(status, seq);
                    CREATE TABLE tags (tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, seq)) WITHOUT ROWID;
                    CREATE TABLE key_events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
                    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB);
                    """ + Self.addParent)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('version', ?)", arguments: ["\(formatVersion)"])
        }
        return pool
    }

    /// Format 3's column: the parent of a child instance, listed by it.
    private static let addParent = """
        ALTER TABLE instances ADD COLUMN parent BLOB;
        CREATE INDEX instances_parent ON instances(parent, seq) WHERE parent IS NOT NULL;

        """

    /// The head, the live instances and the keys, as the last batch left them.
    func load() throws -> Loaded {
        try pool.read { db in
            var loaded = Loaded()
            for row in try Row.fetchAll(db, sql: "SELECT key, value FROM meta") {
                let key: String = row["key"]
                let value: Data? = row["value"]
                switch key {
                case "head": loaded.head = value.flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0
                case "identity": loaded.identity = value.map { String(decoding: $0, as: UTF8.self) }
                case "counts":
                    let raw = value.flatMap { try? JSONDecoder().decode([String: Int].self, from: $0) } ?? [:]
                    for (name, count) in raw {
                        if let status = InstanceStatus(rawValue: name) { loaded.counts[status] = count }
                    }
                default: break
                }
            }
            for body in try Data.fetchAll(db, sql: "SELECT body FROM key_events ORDER BY seq") {
                loaded.keyEvents.append(try EventCodec.decode(body))
            }
            let live = InstanceStatus.allCases.filter { !$0.isTerminal }.map { "'\($0.rawValue)'" }.joined(
                separator: ",")
            let decoder = JSONDecoder()
            for row in try Row.fetchAll(db, sql: "SELECT view, log FROM instances WHERE status IN (\(live))") {
                loaded.live.append(try Self.stored(row, decoder))
            }
            return loaded
        }
    }

    private static func stored(_ row: Row, _ decoder: JSONDecoder) throws -> Stored {
        Stored(
            view: try decoder.decode(InstanceView.self, from: row["view"] as Data), chunks: LogChunk.decode(row["log"]))
    }

    /// What a batch that trimmed history left: the instances by status the store holds now, and
    /// where the logs of the rows it removed lay in `logs.dat`.
    struct Trimmed: Sendable {
        var counts: [InstanceStatus: Int]
        var logs: ByteRanges
    }

    /// Writes one batch in one transaction, off the caller's thread. When the batch trims history,
    /// answers what is left and what went (nil otherwise).
    @discardableResult
    func write(_ batch: Batch) async throws -> Trimmed? {
        let encoder = JSONEncoder()
        var rows:
            [(
                seq: Int64, id: Data, team: String?, status: String, view: Data, log: Data, tags: [String],
                ended: Int64?, parent: Data?
            )] = []
        rows.reserveCapacity(batch.instances.count)
        for stored in batch.instances {
            let view = stored.view
            rows.append(
                (
                    Int64(view.createdSeq), view.id.bytes, view.team, view.status.rawValue,
                    try view.fastJSON.map { Data($0) } ?? encoder.encode(view),
                    LogChunk.encode(stored.chunks), view.createdSeq > batch.previousHead ? view.tags : [],
                    view.status.isTerminal ? view.lastChangeAt.millis : nil, view.parentInstanceId?.bytes
                ))
        }
        let keyEvents = try batch.keyEvents.map { (Int64($0.seq), try EventCodec.encode($0)) }
        let counts = try encoder.encode(
            Dictionary(uniqueKeysWithValues: batch.counts.map { ($0.key.rawValue, $0.value) }))
        let (head, identity, written) = (batch.head, batch.identity, rows)
        let (trimmedBefore, trimmed) = (batch.trimmedBefore, batch.trimmed.map(\.bytes))
        return try await pool.write { db -> Trimmed? in
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO instances (seq, id, team, status, view, log, ended, parent)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (seq) DO UPDATE SET
                        status = excluded.status, view = excluded.view, log = excluded.log, ended = excluded.ended
                    """)
            let tag = try db.cachedStatement(sql: "INSERT OR IGNORE INTO tags (tag, seq) VALUES (?, ?)")
            for row in written {
                try upsert.execute(
                    arguments: [row.seq, row.id, row.team, row.status, row.view, row.log, row.ended, row.parent])
                for name in row.tags { try tag.execute(arguments: [name, row.seq]) }
            }
            let key = try db.cachedStatement(sql: "INSERT OR IGNORE INTO key_events (seq, body) VALUES (?, ?)")
            for (seq, body) in keyEvents { try key.execute(arguments: [seq, body]) }
            let meta = try db.cachedStatement(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)")
            try meta.execute(arguments: ["head", Data("\(head)".utf8)])
            try meta.execute(arguments: ["counts", counts])
            if let identity { try meta.execute(arguments: ["identity", Data(identity.utf8)]) }
            guard let trimmedBefore else { return nil }
            var logs = ByteRanges()
            let byID = try db.cachedStatement(sql: "DELETE FROM instances WHERE id = ? RETURNING seq, log")
            let tags = try db.cachedStatement(sql: "DELETE FROM tags WHERE seq = ?")
            for id in trimmed {
                for row in try Row.fetchAll(byID, arguments: [id]) {
                    try tags.execute(arguments: [row["seq"] as Int64])
                    logs.add(LogChunk.decode(row["log"]))
                }
            }
            try db.execute(
                sql: "DELETE FROM tags WHERE seq IN (SELECT seq FROM instances WHERE ended < ?)",
                arguments: [trimmedBefore.millis])
            // Read, then deleted: SQLite keeps every row a RETURNING clause answers in memory until
            // the statement ends (ten million rows: 300 MiB), a cursor over a SELECT does not.
            let removed = try Data.fetchCursor(
                db, sql: "SELECT log FROM instances WHERE ended < ?", arguments: [trimmedBefore.millis])
            while let log = try removed.next() { logs.add(LogChunk.decode(log)) }
            try db.execute(sql: "DELETE FROM instances WHERE ended < ?", arguments: [trimmedBefore.millis])
            var stored: [InstanceStatus: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, count(*) AS n FROM instances GROUP BY status") {
                if let status = InstanceStatus(rawValue: row["status"]) { stored[status] = row["n"] }
            }
            return Trimmed(counts: stored, logs: logs)
        }
    }

    /// One instance's stored view and log.
    func instance(_ id: InstanceID) throws -> Stored? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT view, log FROM instances WHERE id = ?", arguments: [id.bytes]).map {
                try Self.stored($0, JSONDecoder())
            }
        }
    }

    /// Up to `count` views newest first that `filter` lets through, leaving out the ids in
    /// `skipping` (the caller has those in memory, newer than here).
    func list(_ filter: ListFilter, skipping: Set<InstanceID>, count: Int) throws -> [InstanceView] {
        guard count > 0 else { return [] }
        var sql = "SELECT i.id, i.view FROM instances i"
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let tag = filter.tag {
            sql += " JOIN tags t ON t.seq = i.seq AND t.tag = ?"
            arguments.append(tag)
        }
        var conditions: [String] = []
        if case .team(let team) = filter.visible {
            conditions.append("i.team = ?")
            arguments.append(team)
        }
        if let status = filter.status {
            conditions.append("i.status = ?")
            arguments.append(status.rawValue)
        }
        if let parent = filter.parent {
            conditions.append("i.parent = ?")
            arguments.append(parent.bytes)
        }
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY i.seq DESC"
        let statementArguments = StatementArguments(arguments)
        return try pool.read { db in
            let decoder = JSONDecoder()
            var views: [InstanceView] = []
            let rows = try Row.fetchCursor(db, sql: sql, arguments: statementArguments)
            while views.count < count, let row = try rows.next() {
                guard let id = InstanceID(bytes: row["id"]), !skipping.contains(id) else { continue }
                views.append(try decoder.decode(InstanceView.self, from: row["view"] as Data))
            }
            return views
        }
    }

    /// Forgets everything (the log it was folded from is not the one the Scheduler serves).
    func reset() throws {
        try pool.write { db in
            for table in ["instances", "tags", "key_events"] { try db.execute(sql: "DELETE FROM \(table)") }
            try db.execute(sql: "DELETE FROM meta WHERE key <> 'version'")
        }
    }
}

/// A piece of one instance's log in the Gateway's `logs.dat`.
struct LogChunk: Sendable, Hashable {
    var offset: UInt64
    var length: UInt32

    /// Twelve bytes each, little-endian.
    static func encode(_ chunks: [LogChunk]) -> Data {
        var data = Data(capacity: chunks.count * 12)
        for chunk in chunks {
            withUnsafeBytes(of: chunk.offset.littleEndian) { data.append(contentsOf: $0) }
            withUnsafeBytes(of: chunk.length.littleEndian) { data.append(contentsOf: $0) }
        }
        return data
    }

    static func decode(_ data: Data) -> [LogChunk] {
        let data = Data(data)  // indices from 0
        return stride(from: 0, to: data.count - data.count % 12, by: 12).map {
            LogChunk(offset: data.loadLE64(at: $0), length: data.loadLE32(at: $0 + 8))
        }
    }
}

extension InstanceID {
    /// The UUID's sixteen bytes.
    var bytes: Data { withUnsafeBytes(of: uuid.uuid) { Data($0) } }

    init?(bytes: Data) {
        guard bytes.count == 16 else { return nil }
        var raw: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { _ = bytes.copyBytes(to: $0) }
        self.init(UUID(uuid: raw))
    }
}
