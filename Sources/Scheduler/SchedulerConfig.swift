import EventLog
import Model
import PostgresStore
import Wire

/// Where the Scheduler keeps the log, the payloads and the snapshots.
enum StoreChoice: Sendable {
    /// Files under the data folder (one Scheduler per folder).
    case files
    /// A PostgreSQL database, shared by every Scheduler of the deployment (one leads).
    case postgres(PostgresURL)
}

/// Everything the Scheduler reads from its command line, with the defaults documented in the README.
struct SchedulerConfig: Sendable {
    /// The data folder: `events/` (the log), `payloads/` (archives), `run/` (ipc sockets).
    var dataDirectory: String
    /// Where Gateways send commands and queries (req/rep). Default `ipc://<data>/run/scheduler.ipc`.
    var commandsURL: String
    /// Where committed events are published (pub/sub). Default `ipc://<data>/run/events.ipc`.
    var eventsURL: String
    /// Where Executors register, heartbeat and report (req/rep). Default `ipc://<data>/run/executors.ipc`.
    var executorsURL: String
    /// Files (the default) or PostgreSQL.
    var store: StoreChoice = .files
    /// fsync the log and payloads before acknowledging (on by default; off only for throwaway tests).
    var fsync: Bool
    /// An executor silent for this long is declared lost.
    var executorLossTimeout: Duration
    /// How long an assigned instance may stay STARTING before it is dispatched again.
    var startingTimeout: Duration = .seconds(60)
    /// Dispatches before an instance that never starts ends FAILED.
    var maxDispatchAttempts = 3
    /// How long a dispatch or cancel to an executor may take.
    var executorRequestTimeout: Duration = .seconds(10)
    /// Largest message accepted on the commands socket (bounds the payload size).
    var maxCommandBytes: Int
    /// A snapshot of the state is written after this many events (and at a clean stop).
    var snapshotEvery: UInt64 = 100_000
    /// An instance ENQUEUED this long without an executor is reported (log and metrics).
    var enqueuedWarning: Duration = .seconds(30)
    /// Instances that ended longer ago than this leave the read models, the log and the payloads
    /// (nil: everything is kept, the default).
    var retention: Duration?
    /// How often retention runs (also once soon after the start).
    var retentionEvery: Duration = .seconds(3600)
    /// Where retention archives what it removes (`events/`, `payloads/`); nil: deleted.
    var retentionArchive: String?
    /// The file log starts a new segment past this size (retention rewrites sealed ones only).
    var segmentBytes: UInt64 = 64 << 20
}

/// A duration as people write it: `30d`, `12h`, `90m`, `45s`, `500ms`.
enum DurationText {
    static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, millis) in units.sorted(by: { $0.0.count > $1.0.count }) where text.hasSuffix(suffix) {
            guard let value = Int64(text.dropLast(suffix.count)), value > 0,
                value <= Int64.max / millis / 1_000_000
            else { return nil }
            return .milliseconds(value * millis)
        }
        return nil
    }
}
