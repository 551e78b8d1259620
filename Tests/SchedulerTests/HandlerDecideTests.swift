import Foundation
import JSON
import Model
import Testing
import Wire

@testable import Scheduler

/// Handler flows (`onFailure`, `onCancel`, `onTimeout`) as the Scheduler decides them: owed only
/// when the payload declared one, dispatched like an instance, and started at most once.
@Suite struct HandlerDecideTests {
    let now = Timestamp(millis: 1_000)
    let executor = ExecutorID("e/1")
    let other = ExecutorID("f/1")
    var reportSeq: UInt64 = 0

    /// Applies a decision's events with sequence numbers, as the core does.
    mutating func report(
        _ id: InstanceID, _ kind: ReportKind, handler: String? = nil, from executor: ExecutorID? = nil
    ) -> SchedulerCommand {
        reportSeq += 1
        return .report(
            executor ?? self.executor, Report(seq: reportSeq, instanceID: id, kind: kind, at: now, handler: handler))
    }

    /// An instance running on `executor` whose payload declared `handlers`.
    mutating func running(_ state: inout SchedulerState, handlers: [String]) -> InstanceID {
        let id = InstanceID()
        let start = StartInstance(
            requestID: .random(), entryPoint: "main", arguments: ["color": .string("blue")], timeoutMillis: nil,
            out: [], tags: [], idempotencyKey: nil, principal: "p", handlerTimeoutMillis: 5_000)
        given(
            Decide.decide(.start(start, payload: PayloadRef(digest: "00", size: 1), newID: id), state: state, now: now),
            to: &state)
        given(Decide.decide(.assign(id, executor), state: state, now: now), to: &state)
        given(Decide.decide(report(id, .started), state: state, now: now), to: &state)
        if !handlers.isEmpty {
            given(Decide.decide(report(id, .handlers(flows: handlers)), state: state, now: now), to: &state)
        }
        return id
    }

    @Test mutating func aFailureWithOnFailureDeclaredOwesItsHandlerWithTheVariables() {
        var state = SchedulerState()
        let id = running(&state, handlers: ["onCancel", "onFailure"])
        #expect(state.instances[id]?.handlers == ["onCancel", "onFailure"])
        let variables: [String: JSONValue] = [
            "color": .string("red"), "lastError": .object(["message": .string("boom")]),
        ]
        given(
            Decide.decide(report(id, .failed(error: "boom", out: [:], variables: variables)), state: state, now: now),
            to: &state)
        #expect(state.instances[id] == nil)
        #expect(state.handlers[id]?.flow == "onFailure")
        #expect(state.handlers[id]?.variables == variables)
        #expect(state.handlerQueue.contains(id))

        let assign = Decide.decide(.assignHandler(id, other), state: state, now: now)
        #expect(assign.actions == [.dispatchHandler(id, other, attempt: 1)])
        given(assign, to: &state)
        #expect(state.assigned[other]?.contains(id) == true)

        // A report of the instance's own run (no handler tag) is not the handler's.
        #expect(Decide.decide(report(id, .started, from: other), state: state, now: now).events.isEmpty)
        let started = Decide.decide(report(id, .started, handler: "onFailure", from: other), state: state, now: now)
        #expect(started.events.map(\.event) == [.handlerStarted(HandlerStarted(flow: "onFailure", executorID: other))])
        given(started, to: &state)
        let line = LogLine(at: now, level: .info, text: "cleaning up")
        let logged = Decide.decide(
            report(id, .log(lines: [line]), handler: "onFailure", from: other), state: state, now: now)
        #expect(logged.events.map(\.event) == [.logAppended(LogAppended(lines: [line]))])
        given(logged, to: &state)
        let ended = Decide.decide(
            report(id, .finished(out: [:]), handler: "onFailure", from: other), state: state, now: now)
        #expect(ended.events.map(\.event) == [.handlerEnded(HandlerEnded(flow: "onFailure", error: nil))])
        given(ended, to: &state)
        #expect(state.handlers[id] == nil)
        #expect(state.assigned[other]?.contains(id) != true)
    }

    @Test mutating func withoutADeclaredHandlerNothingIsOwed() {
        var state = SchedulerState()
        let failed = running(&state, handlers: ["onCancel"])
        given(Decide.decide(report(failed, .failed(error: "boom", out: [:])), state: state, now: now), to: &state)
        #expect(state.handlers[failed] == nil)
        let finished = running(&state, handlers: ["onFailure"])
        given(Decide.decide(report(finished, .finished(out: [:])), state: state, now: now), to: &state)
        #expect(state.handlers[finished] == nil)
        #expect(state.handlerQueue.count == 0)
    }

    @Test mutating func aCancelOwesOnCancelWithTheArgumentsAndTheReason() {
        var state = SchedulerState()
        let id = running(&state, handlers: ["onCancel"])
        let cancel = Decide.decide(.cancel(id, RequestID("stop")), state: state, now: now)
        #expect(cancel.actions.contains(.killOnExecutor(id, executor, only: .own, upTo: 1)))
        given(cancel, to: &state)
        let handler = state.handlers[id]
        #expect(handler?.flow == "onCancel")
        #expect(handler?.variables["color"] == .string("blue"))
        #expect(handler?.variables["lastError"] == .object(["message": .string("stopped by a client")]))
    }

    /// Lost before it started, a handler waits again; lost after, it ends, never to run twice.
    @Test mutating func aLostExecutorRequeuesAHandlerNotStartedAndEndsOneStarted() {
        var state = SchedulerState()
        let id = running(&state, handlers: ["onTimeout"])
        given(Decide.decide(.timeOut(id), state: state, now: now), to: &state)
        given(Decide.decide(.assignHandler(id, other), state: state, now: now), to: &state)
        let requeued = Decide.decide(.executorLost(id, other, reason: "gone"), state: state, now: now)
        #expect(
            requeued.events.map(\.event) == [
                .handlerRequeued(HandlerRequeued(flow: "onTimeout", reason: "executor lost: gone"))
            ])
        given(requeued, to: &state)
        #expect(state.handlerQueue.contains(id) && state.handlers[id]?.status == .enqueued)

        given(Decide.decide(.assignHandler(id, other), state: state, now: now), to: &state)
        #expect(state.handlers[id]?.attempt == 2)
        given(
            Decide.decide(report(id, .started, handler: "onTimeout", from: other), state: state, now: now), to: &state)
        let lost = Decide.decide(.executorLost(id, other, reason: "gone"), state: state, now: now)
        #expect(
            lost.events.map(\.event) == [.handlerEnded(HandlerEnded(flow: "onTimeout", error: "executor lost: gone"))])
        given(lost, to: &state)
        #expect(state.handlers[id] == nil && state.handlerQueue.count == 0)
        #expect(Decide.decide(.assignHandler(id, other), state: state, now: now).events.isEmpty)
    }

    @Test mutating func aHandlerPastItsTimeoutIsStoppedAndEnds() {
        var state = SchedulerState()
        let id = running(&state, handlers: ["onFailure"])
        given(Decide.decide(report(id, .failed(error: "boom", out: [:])), state: state, now: now), to: &state)
        #expect(Decide.decide(.handlerTimeOut(id), state: state, now: now).events.isEmpty, "not running yet")
        given(Decide.decide(.assignHandler(id, other), state: state, now: now), to: &state)
        given(
            Decide.decide(report(id, .started, handler: "onFailure", from: other), state: state, now: now), to: &state)
        let timedOut = Decide.decide(.handlerTimeOut(id), state: state, now: now)
        #expect(timedOut.actions == [.killOnExecutor(id, other, only: .handler("onFailure"), upTo: 1)])
        guard case .handlerEnded(let ended)? = timedOut.events.last?.event else {
            Issue.record("no HandlerEnded: \(timedOut.events)")
            return
        }
        #expect(ended.error?.contains("5000 ms") == true)
    }

    /// The state a snapshot holds is the fold of the log: handler runs included.
    @Test mutating func handlerStateSurvivesASnapshotRoundTrip() throws {
        var state = SchedulerState()
        let id = running(&state, handlers: ["onFailure"])
        given(Decide.decide(report(id, .failed(error: "boom", out: [:])), state: state, now: now), to: &state)
        given(Decide.decide(.assignHandler(id, other), state: state, now: now), to: &state)
        let data = try JSONEncoder().encode(state)
        #expect(try JSONDecoder().decode(SchedulerState.self, from: data) == state)
    }
}
