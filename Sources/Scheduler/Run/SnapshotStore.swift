import EventLog
import Foundation
import Logging
import Model
import Wire

#if canImport(Glibc)
    import Glibc
#endif

/// The Scheduler's state as it stood after event `seq`, so a restart replays only the log after it
/// (restart time stays flat as the log grows). The log stays the truth: a snapshot that is missing,
/// unreadable, of another version, or ahead of the log is ignored and the log replayed in full.
struct SchedulerSnapshot: Codable {
    /// 2: the state holds API keys. 3: only live instances, no per-instance event numbers.
    /// 4: handlers, suspensions. 5: children (ancestors, awaited outcomes, owed resumes).
    /// 6: queues as their waiting instances only, request ids as the window holds them,
    /// idempotency keys with their instance's end.
    static let currentVersion = 6
    var version = SchedulerSnapshot.currentVersion
    var seq: UInt64
    var state: SchedulerState
}

/// Where snapshots are kept: files beside the file log, or rows beside the PostgreSQL log.
protocol SnapshotStorage: Sendable {
    /// The stored snapshots' sequence numbers, newest first.
    func seqs() async throws -> [UInt64]
    func read(seq: UInt64) async throws -> Data?
    /// Stores one, whole or not at all, and keeps only the newest two.
    func write(seq: UInt64, _ data: Data) async throws
}

/// Encodes and checks snapshots over a `SnapshotStorage`.
struct SnapshotStore: Sendable {
    let storage: any SnapshotStorage

    init(_ storage: any SnapshotStorage) { self.storage = storage }

    /// Snapshots in `directory` (`FileSnapshots`).
    init(directory: String, fsync: Bool) throws { self.init(try FileSnapshots(directory: directory, fsync: fsync)) }

    /// The newest readable snapshot at or below `head`.
    func latest(atMost head: UInt64, logger: Logger) async -> SchedulerSnapshot? {
        let seqs: [UInt64]
        do {
            seqs = try await storage.seqs()
        } catch {
            logger.warning("the snapshots cannot be listed", metadata: ["error": "\(error)"])
            return nil
        }
        for seq in seqs where seq <= head {
            do {
                guard let data = try await storage.read(seq: seq) else { continue }
                struct Version: Decodable { var version: Int }
                guard try JSONDecoder().decode(Version.self, from: data).version == SchedulerSnapshot.currentVersion
                else { continue }
                let snapshot = try JSONDecoder().decode(SchedulerSnapshot.self, from: data)
                guard snapshot.version == SchedulerSnapshot.currentVersion, snapshot.seq == seq else { continue }
                return snapshot
            } catch {
                logger.warning("ignoring an unreadable snapshot", metadata: ["seq": "\(seq)", "error": "\(error)"])
            }
        }
        return nil
    }

    func write(_ snapshot: SchedulerSnapshot) async throws {
        try await storage.write(seq: snapshot.seq, try JSONEncoder().encode(snapshot))
    }
}

/// `snapshots/scheduler-<seq>.json`, written to a temporary file, fsynced and renamed, so a crash
/// leaves either the old snapshot or the new one. The newest two are kept.
struct FileSnapshots: SnapshotStorage {
    let directory: String
    let fsync: Bool

    init(directory: String, fsync: Bool) throws {
        self.directory = directory
        self.fsync = fsync
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    private func files() -> [(seq: UInt64, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("scheduler-"), name.hasSuffix(".json"),
                let seq = UInt64(name.dropFirst("scheduler-".count).dropLast(".json".count))
            else { return nil }
            return (seq, directory + "/" + name)
        }.sorted { $0.0 > $1.0 }
    }

    func seqs() -> [UInt64] { files().map(\.seq) }

    func read(seq: UInt64) throws -> Data? {
        try Data(contentsOf: URL(fileURLWithPath: directory + "/scheduler-\(seq).json"))
    }

    func write(seq: UInt64, _ data: Data) throws {
        try DurableFile.replace(directory + "/scheduler-\(seq).json", with: [UInt8](data), fsync: fsync)
        for (_, path) in files().dropFirst(2) { unlink(path) }
    }
}
