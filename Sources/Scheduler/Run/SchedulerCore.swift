import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// The single writer: decides each command against `SchedulerState`, appends the events, applies
/// them, and performs the decision's actions once the events are durable.
///
/// Decided events are applied to the state as soon as the log has numbered them (before the fsync),
/// so that a command arriving during the fsync sees them (two starts with one idempotency key
/// cannot both win). If the log then fails (disk full, I/O error), nothing it refused is
/// acknowledged: commands are answered "unavailable" (the Gateway's 503) while the log refuses
/// appends, and once a probe shows it can take writes again the state is rebuilt from the log, so
/// the events it refused leave no trace.
actor SchedulerCore {
    let log: any EventLog
    let payloads: any PayloadStorage
    let config: SchedulerConfig
    let logger: Logger
    var state = SchedulerState()
    var executors: [ExecutorID: ExecutorSession] = [:]
    /// Every deadline (enqueued warning, starting, timeout), followed from the events applied.
    var deadlines: Deadlines
    /// The one timer, sleeping until the earliest deadline (`rearmTimer`).
    var timer: (task: Task<Void, Never>, due: ContinuousClock.Instant)?
    /// A recovery from a failed log write is under way.
    var recovering = false
    /// Queued instances already reported as waiting too long.
    var overdue: Set<InstanceID> = []
    /// `resumeParents` is under way (it stages, and staging calls it).
    var resumingParents = false

    let snapshots: SnapshotStore?
    /// The sequence number of the last snapshot taken (or loaded).
    var snapshotSeq: UInt64 = 0
    var snapshotting = false
    /// How the state was rebuilt at start, for the log line `resume` writes.
    var rebuiltFrom: (snapshot: UInt64, replayed: Int, duration: Duration) = (0, 0, .zero)

    init(
        log: any EventLog, payloads: any PayloadStorage, snapshots: SnapshotStore? = nil, config: SchedulerConfig,
        logger: Logger
    ) async throws {
        self.log = log
        self.payloads = payloads
        self.snapshots = snapshots
        self.config = config
        self.logger = logger
        self.deadlines = Deadlines(limits: Self.deadlineLimits(config))
        let started = ContinuousClock.now
        let rebuilt = try await Self.rebuild(log, snapshots, logger)
        state = rebuilt.state
        snapshotSeq = rebuilt.snapshot
        rebuiltFrom = (rebuilt.snapshot, rebuilt.replayed, started.duration(to: .now))
    }

    /// The state the durable log stands for: the newest usable snapshot, then the events after it.
    static func rebuild(_ log: any EventLog, _ snapshots: SnapshotStore?, _ logger: Logger) async throws -> (
        state: SchedulerState, snapshot: UInt64, replayed: Int
    ) {
        var state = SchedulerState()
        var from: UInt64 = 0
        if let snapshot = await snapshots?.latest(atMost: log.durableHead, logger: logger) {
            state = snapshot.state
            from = snapshot.seq
        }
        var replayed = 0
        try await log.scan(from: from + 1) {
            state.apply($0)
            replayed += 1
        }
        return (state, from, replayed)
    }

    /// After a restart: timers for running instances, and loss deadlines for every executor that
    /// still owns instances (it must register again within the loss timeout).
    func resume() {
        deadlines = Deadlines(state: state, limits: Self.deadlineLimits(config))
        rearmTimer()
        resumeParents()
        for (executor, ids) in state.assigned where !ids.isEmpty && executors[executor] == nil {
            let session = ExecutorSession(id: executor, address: nil, capacity: 0, socket: nil)
            executors[executor] = session
            watch(session)
        }
        logger.info(
            "state rebuilt from the log",
            metadata: [
                "events": "\(state.head)", "instances": "\(state.instances.count)", "queued": "\(state.queue.count)",
                "snapshot": "\(rebuiltFrom.snapshot)", "replayed": "\(rebuiltFrom.replayed)",
                "duration": "\(rebuiltFrom.duration)",
            ])
    }

}

/// One registered executor: where to reach it and when it was last heard from.
final class ExecutorSession: @unchecked Sendable {
    // @unchecked: only the SchedulerCore actor reads and writes the mutable fields.
    let id: ExecutorID
    let address: String?
    let capacity: Int
    let socket: NNGSocket?
    var lastSeen: ContinuousClock.Instant = .now

    init(id: ExecutorID, address: String?, capacity: Int, socket: NNGSocket?) {
        self.id = id
        self.address = address
        self.capacity = capacity
        self.socket = socket
    }

    func close() { socket?.close() }
}
