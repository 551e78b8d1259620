import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// Snapshots of the state, so that a restart replays only the log after the newest one.
extension SchedulerCore {
    /// Writes the state as it is now once its last event is durable, off the actor. Skipped if the
    /// log fails in between (the state then held events the log refused).
    func takeSnapshot() {
        guard let snapshots, !snapshotting, !recovering else { return }
        snapshotting = true
        let snapshot = SchedulerSnapshot(seq: state.head, state: state)
        snapshotSeq = state.head
        let log = log
        let failures = log.failures
        let logger = logger
        Task.detached(priority: .utility) {
            let started = ContinuousClock.now
            do {
                try await log.waitDurable(snapshot.seq)
                guard log.failures == failures else { throw EventLogError("the log failed meanwhile") }
                try await snapshots.write(snapshot)
                logger.info(
                    "snapshot written",
                    metadata: ["seq": "\(snapshot.seq)", "duration": "\(started.duration(to: .now))"])
            } catch {
                logger.warning("no snapshot this time", metadata: ["seq": "\(snapshot.seq)", "error": "\(error)"])
            }
            await self.snapshotFinished()
        }
    }

    func snapshotFinished() { snapshotting = false }

    /// At a clean stop: a snapshot of everything, so the next start replays nothing.
    func snapshotAtStop() async {
        guard let snapshots, !recovering, state.head > snapshotSeq, log.failed == nil else { return }
        let snapshot = SchedulerSnapshot(seq: state.head, state: state)
        do {
            try await log.waitDurable(snapshot.seq)
            try await snapshots.write(snapshot)
            logger.info("snapshot written at stop", metadata: ["seq": "\(snapshot.seq)"])
        } catch {
            logger.warning("no snapshot at stop", metadata: ["error": "\(error)"])
        }
    }
}
