import JSON
import Model
import Testing
import Wire

@testable import Scheduler

/// Suspend and resume as the Scheduler decides them: a suspended instance holds no executor and
/// waits for its event; a resume queues it RESUMING, and it runs again where dispatched.
@Suite struct SuspendDecideTests {
    let now = Timestamp(millis: 1_000)
    let executor = ExecutorID("e/1")
    let state = PayloadRef(digest: "ab", size: 9)

    func report(_ id: InstanceID, _ kind: ReportKind, seq: UInt64, attempt: Int = 1) -> SchedulerCommand {
        .report(executor, Report(seq: seq, instanceID: id, kind: kind, at: now, attempt: attempt))
    }

    /// An instance that ran on `executor` and suspended on `approval`.
    func suspended(_ state: inout SchedulerState) -> InstanceID {
        let id = InstanceID()
        let start = StartInstance(
            requestID: .random(), entryPoint: "main", arguments: [:], timeoutMillis: 60_000, out: [], tags: [],
            idempotencyKey: nil, principal: "p")
        given(
            Decide.decide(.start(start, payload: PayloadRef(digest: "00", size: 1), newID: id), state: state, now: now),
            to: &state)
        given(Decide.decide(.assign(id, executor), state: state, now: now), to: &state)
        given(Decide.decide(report(id, .started, seq: 1), state: state, now: now), to: &state)
        let suspend = Decide.decide(
            report(id, .suspended(event: "approval", state: self.state), seq: 2), state: state,
            now: Timestamp(millis: 4_000))
        #expect(suspend.events.map(\.event.status) == [.suspended])
        given(suspend, to: &state)
        return id
    }

    @Test func aSuspendedInstanceHoldsNoExecutorAndItsRunningTimeIsKept() {
        var state = SchedulerState()
        let id = suspended(&state)
        let tracked = state.instances[id]
        #expect(tracked?.status == .suspended && tracked?.executor == nil)
        #expect(state.assigned[executor]?.contains(id) != true)
        #expect(tracked?.ranMillis == 3_000)
        #expect(!state.queue.contains(id))
    }

    @Test func aResumeNeedsTheEventTheInstanceWaitsFor() {
        var state = SchedulerState()
        let id = suspended(&state)
        let wrong = Decide.decide(.resume(id, event: "other", variables: [:], RequestID("r")), state: state, now: now)
        #expect(wrong.events.isEmpty)
        #expect(wrong.actions == [.replyResumed(.refused("the instance waits for 'approval', not 'other'"))])
        let right = Decide.decide(
            .resume(id, event: "approval", variables: ["ok": .bool(true)], RequestID("r")), state: state, now: now)
        #expect(right.events.map(\.event.status) == [.resuming])
        given(right, to: &state)
        #expect(state.queue.contains(id) && state.instances[id]?.resumed?.variables == ["ok": .bool(true)])
        let twice = Decide.decide(
            .resume(id, event: "approval", variables: [:], RequestID("s")), state: state, now: now)
        #expect(twice.events.isEmpty, "RESUMING is not SUSPENDED")

        // Assigned, it stays RESUMING (with its state kept for the dispatch) until it runs again.
        given(Decide.decide(.assign(id, executor), state: state, now: now), to: &state)
        #expect(state.instances[id]?.status == .resuming && state.instances[id]?.suspended != nil)
        given(Decide.decide(report(id, .started, seq: 3, attempt: 2), state: state, now: now), to: &state)
        #expect(state.instances[id]?.status == .running && state.instances[id]?.suspended == nil)
    }

    @Test func aResumingInstanceWhoseExecutorIsLostWaitsAgain() {
        var state = SchedulerState()
        let id = suspended(&state)
        given(
            Decide.decide(.resume(id, event: "approval", variables: [:], RequestID("r")), state: state, now: now),
            to: &state)
        given(Decide.decide(.assign(id, executor), state: state, now: now), to: &state)
        let requeue = Decide.decide(.requeue(id, reason: "executor lost"), state: state, now: now)
        #expect(requeue.events.count == 1)
        given(requeue, to: &state)
        #expect(state.queue.contains(id) && state.instances[id]?.status == .resuming)
    }

    @Test func stoppingASuspendedInstanceCancelsItWithNothingToKill() {
        var state = SchedulerState()
        let id = suspended(&state)
        let cancel = Decide.decide(.cancel(id, RequestID("x")), state: state, now: now)
        #expect(cancel.events.map(\.event.status) == [.cancelled])
        #expect(cancel.actions == [.replyCancelled(.cancelled)])
    }

    @Test func statusesMoveOnlyAlongTheLifecycle() {
        let allowed: [(InstanceStatus, InstanceStatus)] = [
            (.enqueued, .starting), (.starting, .running), (.running, .suspended), (.suspended, .resuming),
            (.resuming, .running), (.suspended, .cancelled), (.enqueued, .finished),
        ]
        for (from, to) in allowed { #expect(from.canMove(to: to), "\(from) -> \(to)") }
        let refused: [(InstanceStatus, InstanceStatus)] = [
            (.running, .starting), (.suspended, .running), (.resuming, .starting), (.enqueued, .suspended),
            (.finished, .running), (.cancelled, .failed), (.starting, .suspended),
        ]
        for (from, to) in refused { #expect(!from.canMove(to: to), "\(from) -> \(to)") }
    }
}
