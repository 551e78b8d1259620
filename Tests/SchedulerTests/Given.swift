import Model

@testable import Scheduler

/// Given a decision: its events numbered after the state's head and folded in, as the
/// Scheduler's own append does.
func given(_ decision: Decision, to state: inout SchedulerState) {
    for var e in decision.events {
        e.seq = state.head + 1
        state.apply(e)
    }
}
