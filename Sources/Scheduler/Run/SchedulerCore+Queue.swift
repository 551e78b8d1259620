import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// Instances waiting for an executor: the warning for one that waits too long.
extension SchedulerCore {
    /// Every instance that enters the queue gets a deadline; one still waiting when it passes is
    /// reported once in the log and counted in `/metrics` until an executor takes it.
    func armEnqueuedWarning(_ id: InstanceID) {
        let after = config.enqueuedWarning
        Task {
            try? await Task.sleep(for: after)
            self.enqueuedTooLong(id, after: after)
        }
    }

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

    /// Puts an instance back in the queue (its executor went away before it ran).
    func requeue(_ id: InstanceID) {
        state.requeue(id)
        if state.queue.contains(id) { armEnqueuedWarning(id) }
    }

    func existingInstance(for start: StartInstance) -> InstanceID? {
        if let id = state.requests[start.requestID] { return id }
        guard let key = start.idempotencyKey else { return nil }
        return state.idempotency[SchedulerState.idempotencyKey(principal: start.principal, key: key)]
    }
}
