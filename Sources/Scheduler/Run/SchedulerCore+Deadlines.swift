import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// The deadlines: one timer for all of them, and what each does when it passes.
extension SchedulerCore {
    static func deadlineLimits(_ config: SchedulerConfig) -> Deadlines.Limits {
        Deadlines.Limits(enqueuedWarning: config.enqueuedWarning, starting: config.startingTimeout)
    }

    /// Sleeps until the earliest deadline: one task for the whole Scheduler, replaced only when a
    /// deadline earlier than the one it sleeps for appears.
    func rearmTimer() {
        guard let next = deadlines.next() else {
            timer?.task.cancel()
            timer = nil
            return
        }
        if let timer, timer.due <= next { return }
        timer?.task.cancel()
        let task = Task {
            try? await Task.sleep(until: next, clock: .continuous)
            guard !Task.isCancelled else { return }
            await self.deadlinesPassed()
        }
        timer = (task, next)
    }

    /// Acts on every deadline that has passed, then sleeps until the next one.
    func deadlinesPassed() async {
        timer = nil
        for (id, kind) in deadlines.popDue(.now) {
            switch kind {
            case .enqueuedWarning: enqueuedTooLong(id, after: config.enqueuedWarning)
            case .starting(let attempt): await startingExpired(id, attempt: attempt)
            case .timeout: await fireTimeout(id)
            case .handlerStarting(let attempt):
                await decideAndPerform(
                    .handlerStartingExpired(id, attempt: attempt, maxAttempts: config.maxDispatchAttempts))
            case .handlerTimeout: await decideAndPerform(.handlerTimeOut(id))
            }
        }
        rearmTimer()
    }

    /// Dispatch `attempt` has not reached RUNNING in time: dispatched again, or failed after the
    /// last attempt (`decide` ignores an attempt that has moved on).
    func startingExpired(_ id: InstanceID, attempt: Int) async {
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

    func fireTimeout(_ id: InstanceID) async { await decideAndPerform(.timeOut(id)) }

    /// Decides `command`, records its events, then performs its actions and dispatches what waits.
    func decideAndPerform(_ command: SchedulerCommand) async {
        let decision = Decide.decide(command, state: state, now: .now())
        guard await commit(decision) else { return }
        decision.actions.forEach(perform)
        pumpDispatch()
    }
}
