import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// The deadlines of STARTING and RUNNING instances.
extension SchedulerCore {
    /// Every STARTING instance has a deadline: dispatched again when it passes, failed after the
    /// last attempt. Disarmed by the attempt moving on (checked when it fires).
    func armStartingDeadline(_ id: InstanceID, attempt: Int) {
        startingDeadlines[id]?.cancel()
        let timeout = config.startingTimeout
        startingDeadlines[id] = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            await self.startingExpired(id, attempt: attempt)
        }
    }

    func startingExpired(_ id: InstanceID, attempt: Int) async {
        startingDeadlines[id] = nil
        let decision = Decide.decide(
            .startingExpired(id, attempt: attempt, maxAttempts: config.maxDispatchAttempts), state: state, now: .now())
        if !decision.actions.isEmpty || !decision.events.isEmpty {
            logger.warning(
                "an instance did not start in time", metadata: ["instance.id": "\(id)", "attempt": "\(attempt)"])
        }
        guard await commit(decision) else { return }
        decision.actions.forEach(perform)
        pumpDispatch()
    }

    func armTimeout(_ id: InstanceID, _ tracked: TrackedInstance, now: Timestamp) {
        guard let limit = tracked.created?.timeoutMillis, timeouts[id] == nil else { return }
        let since = tracked.runningSince ?? now
        let remaining = max(0, since.millis + limit - now.millis)
        timeouts[id] = Task {
            try? await Task.sleep(for: .milliseconds(remaining))
            guard !Task.isCancelled else { return }
            await self.fireTimeout(id)
        }
    }

    func fireTimeout(_ id: InstanceID) async {
        timeouts[id] = nil
        let decision = Decide.decide(.timeOut(id), state: state, now: .now())
        guard await commit(decision) else { return }
        decision.actions.forEach(perform)
        pumpDispatch()
    }
}
