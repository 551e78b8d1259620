import ArgumentParser
import EventLog
import Foundation
import Logging
import Model
import PostgresStore
import ReadModels
import Wire

struct ProjectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "projections", abstract: "Rebuild the read models from the log.", subcommands: [Rebuild.self])
}

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild status, history, logs and listing from the log alone, and compare.",
        discussion: """
            With --url, every instance's status, history and log and the whole listing are fetched from the
            Gateway and compared byte for byte with the rebuilt ones (run it on a quiet deployment: events
            committed after the log was read show up as differences). Without --url, the rebuilt statuses are
            compared with the Scheduler's newest snapshot. Exits 1 on any difference.
            """)

    @Argument(help: "The data folder (or its events/ folder). Omit with --store.") var data: String?
    @Option(help: StoreOption.help) var store: String?
    @Option(help: "Compare with what this Gateway serves.") var url: String?
    @Option(help: "Differences to print at most.") var show = 20

    func run() async throws {
        let started = ContinuousClock.now
        let database = try StoreOption.database(store, data: data)
        guard database != nil || data != nil else {
            throw ValidationError("give a data folder, or --store for a PostgreSQL log")
        }
        let source = try SourceOptions(data: data, url: nil, store: store).source()
        var snapshot: SchedulerSnapshotStatuses?
        if url == nil {
            if let database {
                snapshot = try await SchedulerSnapshotStatuses.newest(in: database)
            } else if let data {
                snapshot = SchedulerSnapshotStatuses.newest(in: data)
            }
        }
        var projection = StatusProjection()
        var logs: [InstanceID: [UInt8]] = [:]
        var atSnapshot: [String: String]?
        var events = 0
        try await source.forEach(after: 0) { envelope in
            projection.apply(envelope)
            events += 1
            if url != nil, case .logAppended(let appended) = envelope.event {
                logs[envelope.instanceID, default: []] += Array(LogRendering.render(appended.lines).utf8)
            }
            if let snapshot, envelope.seq == snapshot.seq {
                atSnapshot = Dictionary(
                    uniqueKeysWithValues: projection.instances.map { ($0.key.description, $0.value.status.rawValue) })
            }
            return true
        }
        let seconds = Self.seconds(started.duration(to: .now))
        Out.line(
            "rebuilt \(projection.instances.count) instances from \(events) events (#\(projection.head)) in "
                + String(format: "%.2f s (%.0f events/s)", seconds, Double(events) / max(seconds, 1e-9)))
        var differences: [String] = []
        if let url {
            differences = try await compareLive(projection, logs, Client(url: url))
        } else if let snapshot {
            if let atSnapshot {
                for (id, status) in snapshot.statuses where atSnapshot[id] != status {
                    differences.append(
                        "\(id): the snapshot at #\(snapshot.seq) says \(status), the log \(atSnapshot[id] ?? "nothing")"
                    )
                }
                // The Scheduler tracks live instances only: one that had ended by then is not in it.
                let terminal = Set(InstanceStatus.allCases.filter(\.isTerminal).map(\.rawValue))
                for (id, status) in atSnapshot where snapshot.statuses[id] == nil && !terminal.contains(status) {
                    differences.append("\(id): \(status) in the log at #\(snapshot.seq) but not in the snapshot")
                }
                Out.line("compared \(atSnapshot.count) statuses with the Scheduler's snapshot at #\(snapshot.seq)")
            } else {
                differences.append("the snapshot is at #\(snapshot.seq), beyond the log's end (#\(projection.head))")
            }
        } else {
            Out.line("nothing to compare with (no --url, no Scheduler snapshot)")
        }
        for difference in differences.prefix(show) { Out.line("DIFFERS: \(difference)") }
        if differences.count > show { Out.line("... and \(differences.count - show) more") }
        Out.line(differences.isEmpty ? "no differences" : "\(differences.count) difference(s)")
        if !differences.isEmpty { throw ExitCode(1) }
    }

    private func compareLive(_ projection: StatusProjection, _ logs: [InstanceID: [UInt8]], _ client: Client)
        async throws -> [String]
    {
        var differences: [String] = []
        func compare(_ what: String, _ path: String, _ rebuilt: [UInt8]) async throws {
            let (status, served, _) = try await client.request("GET", path)
            guard status == 200 else {
                differences.append("\(what): the gateway answered \(status)")
                return
            }
            if Array(served) != rebuilt {
                differences.append(
                    "\(what): served \(String(decoding: served.prefix(200), as: UTF8.self)) / rebuilt "
                        + String(decoding: rebuilt.prefix(200), as: UTF8.self))
            }
        }
        for id in projection.order {
            guard let view = projection.instances[id] else { continue }
            try await compare(
                "status of \(id)", "/api/v1/process/\(id)", Array(ReadModelBodies.encode(ReadModelBodies.status(view))))
            try await compare(
                "history of \(id)", "/api/v1/process/\(id)/history",
                Array(ReadModelBodies.encode(ReadModelBodies.history(view))))
            try await compare("log of \(id)", "/api/v1/process/\(id)/log", logs[id] ?? [])
        }
        var offset = 0
        repeat {
            let page = projection.list(status: nil, tag: nil, limit: 1000, offset: offset)
            try await compare(
                "listing from \(offset)", "/api/v2/process?limit=1000&offset=\(offset)",
                Array(ReadModelBodies.encode(ReadModelBodies.listing(page))))
            offset += 1000
        } while offset < projection.order.count
        Out.line(
            "compared \(projection.order.count) instances (status, history, log) and the listing with \(client.url)")
        return differences
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// The statuses in the Scheduler's newest snapshot (`snapshots/scheduler-<seq>.json`), read as
/// plain JSON: the tooling does not link the Scheduler.
struct SchedulerSnapshotStatuses {
    var seq: UInt64
    var statuses: [String: String]

    static func newest(in data: String) -> SchedulerSnapshotStatuses? {
        let folder = data + "/snapshots"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let newest = names.compactMap { name -> (UInt64, String)? in
            guard name.hasPrefix("scheduler-"), name.hasSuffix(".json"),
                let seq = UInt64(name.dropFirst("scheduler-".count).dropLast(".json".count))
            else { return nil }
            return (seq, folder + "/" + name)
        }.max { $0.0 < $1.0 }
        guard let (seq, path) = newest, let bytes = FileManager.default.contents(atPath: path) else { return nil }
        return parse(seq: seq, bytes)
    }

    /// The newest snapshot in the PostgreSQL store.
    static func newest(in url: PostgresURL) async throws -> SchedulerSnapshotStatuses? {
        let database = try await PostgresDatabase.open(url, logger: Logger(label: "accord"))
        let newest: (UInt64, Data)?
        do {
            if let seq = try await database.snapshotSeqs().first, let bytes = try await database.snapshot(seq: seq) {
                newest = (seq, bytes)
            } else {
                newest = nil
            }
        } catch {
            await database.close()
            throw error
        }
        await database.close()
        return newest.flatMap { parse(seq: $0.0, $0.1) }
    }

    static func parse(seq: UInt64, _ bytes: Data) -> SchedulerSnapshotStatuses? {
        guard let root = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any],
            let state = root["state"] as? [String: Any], let instances = state["instances"] as? [String: Any]
        else { return nil }
        var statuses: [String: String] = [:]
        for (id, value) in instances {
            if let status = (value as? [String: Any])?["status"] as? String { statuses[id] = status }
        }
        return SchedulerSnapshotStatuses(seq: seq, statuses: statuses)
    }
}
