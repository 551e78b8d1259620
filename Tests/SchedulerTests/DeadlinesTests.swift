import JSON
import Model
import Testing
import Wire

@testable import Scheduler

/// The one deadline structure: armed and cleared by events only, earliest first, a replaced
/// deadline never fires, and after a restart the same deadlines come back from the state.
@Suite struct DeadlinesTests {
    let limits = Deadlines.Limits(enqueuedWarning: .seconds(30), starting: .seconds(60))
    let executor = ExecutorID("e/1")
    let t0 = ContinuousClock.now
    let wall = Timestamp(millis: 1_000_000)

    /// Applies `envelope` to `state` and lets `deadlines` follow it, as `SchedulerCore.stage` does.
    func apply(_ event: Event, _ id: InstanceID, _ state: inout SchedulerState, _ deadlines: inout Deadlines) {
        var envelope = EventEnvelope(instanceID: id, at: wall, event: event)
        envelope.seq = state.head + 1
        state.apply(envelope)
        deadlines.follow(envelope, tracked: state.instances[id], now: t0, wallNow: wall)
    }

    func created(timeout: Int64?) -> Event {
        .instanceCreated(
            InstanceCreated(
                entryPoint: "main", arguments: [:], timeoutMillis: timeout, out: [], tags: [],
                payload: PayloadRef(digest: "00", size: 1), idempotencyKey: nil, principal: nil))
    }

    @Test func eachStepOfARunReplacesTheDeadlineBeforeIt() {
        var state = SchedulerState()
        var deadlines = Deadlines(limits: limits)
        let id = InstanceID()
        apply(created(timeout: 5_000), id, &state, &deadlines)
        #expect(deadlines.next() == t0 + .seconds(30))
        apply(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)), id, &state, &deadlines)
        #expect(deadlines.count == 1)
        #expect(deadlines.next() == t0 + .seconds(60))
        apply(.instanceRequeued(InstanceRequeued(reason: "executor lost")), id, &state, &deadlines)
        #expect(deadlines.next() == t0 + .seconds(30))
        apply(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 2)), id, &state, &deadlines)
        apply(.instanceStarted(InstanceStarted(executorID: executor)), id, &state, &deadlines)
        #expect(deadlines.count == 1)
        #expect(deadlines.next() == t0 + .seconds(5))
        // Nothing replaced fires: only the timeout is due, once.
        let due = deadlines.popDue(t0 + .seconds(120))
        #expect(due.map(\.kind) == [.timeout])
        #expect(deadlines.popDue(t0 + .seconds(120)).isEmpty)
    }

    @Test func aTerminalEventClearsEveryDeadlineOfItsInstance() {
        var state = SchedulerState()
        var deadlines = Deadlines(limits: limits)
        let id = InstanceID()
        let other = InstanceID()
        apply(created(timeout: 5_000), id, &state, &deadlines)
        apply(created(timeout: nil), other, &state, &deadlines)
        apply(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)), id, &state, &deadlines)
        apply(.instanceStarted(InstanceStarted(executorID: executor)), id, &state, &deadlines)
        apply(.instanceCancelled(InstanceCancelled(reason: "stopped")), id, &state, &deadlines)
        #expect(deadlines.count == 1)
        #expect(deadlines.popDue(t0 + .seconds(3600)).map(\.id) == [other])
    }

    @Test func dueDeadlinesComeOutEarliestFirst() {
        var state = SchedulerState()
        var deadlines = Deadlines(limits: limits)
        let ids = (0..<200).map { _ in InstanceID() }
        for (n, id) in ids.enumerated() {
            apply(created(timeout: Int64((200 - n) * 10)), id, &state, &deadlines)
            apply(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)), id, &state, &deadlines)
            apply(.instanceStarted(InstanceStarted(executorID: executor)), id, &state, &deadlines)
        }
        #expect(deadlines.count == 200)
        let due = deadlines.popDue(t0 + .seconds(10))
        #expect(due.map(\.id) == Array(ids.reversed()))
        #expect(deadlines.next() == nil)
    }

    /// A restart derives the deadlines from the rebuilt state: the same kinds for the same
    /// instances as following the events live.
    @Test func aRebuiltStateGivesTheSameDeadlines() {
        var state = SchedulerState()
        var live = Deadlines(limits: limits)
        let queued = InstanceID()
        let starting = InstanceID()
        let running = InstanceID()
        apply(created(timeout: nil), queued, &state, &live)
        apply(created(timeout: nil), starting, &state, &live)
        apply(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)), starting, &state, &live)
        apply(created(timeout: 1_000), running, &state, &live)
        apply(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1)), running, &state, &live)
        apply(.instanceStarted(InstanceStarted(executorID: executor)), running, &state, &live)
        var rebuilt = Deadlines(state: state, limits: limits, now: t0, wallNow: wall)
        let later = t0 + .seconds(3600)
        let expected = live.popDue(later).map { "\($0.id) \($0.kind)" }.sorted()
        #expect(expected.count == 3)
        #expect(rebuilt.popDue(later).map { "\($0.id) \($0.kind)" }.sorted() == expected)
    }
}
