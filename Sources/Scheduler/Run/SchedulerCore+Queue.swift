import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// Instances waiting for an executor: the warning for one that waits too long.
extension SchedulerCore {
    /// An instance still waiting when its enqueued-warning deadline passes is reported once in the
    /// log and counted in `/metrics` until an executor takes it.
    func enqueuedTooLong(_ id: InstanceID, after: Duration) {
        guard state.queue.contains(id), overdue.insert(id).inserted else { return }
        let live = executors.values.filter { $0.address != nil }
        logger.warning(
            "an instance has waited for an executor too long",
            metadata: [
                "instance.id": "\(id)", "waited": "\(after)", "queued": "\(state.queue.count)",
                "executors": "\(live.count)", "capacity": "\(live.reduce(0) { $0 + $1.capacity })",
            ])
    }

    /// Puts a STARTING instance back in the queue (its executor went away or refused it), as an
    /// `InstanceRequeued` event: applied now, so the dispatch that follows in this turn sees it,
    /// durable soon after (a failed write rebuilds the state from the log, as for every event).
    func requeue(_ id: InstanceID, reason: String) {
        let decision = Decide.decide(.requeue(id, reason: reason), state: state, now: .now())
        guard !decision.events.isEmpty else { return }
        let ticket = stage(decision)
        Task { await self.durable(ticket) }
    }
}
