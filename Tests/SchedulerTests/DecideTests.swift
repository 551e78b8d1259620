// Past 400 lines: given/when/then for every command of `decide`, in Decide.swift's order, so a
// command's rules are found where its case is.

import EventLog
import Foundation
import JSON
import Model
import Testing
import Wire

@testable import Scheduler

/// Given events, when a command, then these events and actions.
@Suite struct DecideTests {
    let now = Timestamp(millis: 1_000)
    let executor = ExecutorID("e/1")
    let payload = PayloadRef(digest: "00", size: 1)

    func start(request: String = "r1", key: String? = nil, principal: String? = "p") -> StartInstance {
        StartInstance(
            requestID: RequestID(request), entryPoint: "main", arguments: [:], timeoutMillis: nil, out: [], tags: [],
            idempotencyKey: key, principal: principal)
    }

    /// Applies a decision's events with sequence numbers, as the core does.
    func given(_ decisions: [Decision], to state: inout SchedulerState) {
        for decision in decisions { SchedulerTests.given(decision, to: &state) }
    }

    func started(_ state: inout SchedulerState, key: String? = nil, request: String = "r1") -> InstanceID {
        let id = InstanceID()
        given(
            [
                Decide.decide(
                    .start(start(request: request, key: key), payload: payload, newID: id), state: state, now: now)
            ], to: &state)
        return id
    }

    @Test func startRecordsInstanceCreated() {
        let state = SchedulerState()
        let id = InstanceID()
        let decision = Decide.decide(.start(start(), payload: payload, newID: id), state: state, now: now)
        #expect(decision.events.count == 1)
        #expect(decision.events.first?.event.status == .enqueued)
        #expect(decision.actions == [.replyStarted(id, created: true)])
    }

    @Test func sameIdempotencyKeyAnswersTheFirstInstance() {
        var state = SchedulerState()
        let first = started(&state, key: "k")
        let again = Decide.decide(
            .start(start(request: "r2", key: "k"), payload: payload, newID: InstanceID()), state: state, now: now)
        #expect(again.events.isEmpty)
        #expect(again.actions == [.replyStarted(first, created: false)])
        let otherPrincipal = Decide.decide(
            .start(start(request: "r3", key: "k", principal: "q"), payload: payload, newID: InstanceID()), state: state,
            now: now)
        #expect(otherPrincipal.events.count == 1, "idempotency keys are scoped by API key")
    }

    @Test func idempotencyKeysAreScopedByTeamAcrossItsKeys() {
        var state = SchedulerState()
        func decide(_ principal: String, _ team: String?, _ request: String) -> Decision {
            var command = start(request: request, key: "deploy", principal: principal)
            command.team = team
            let decision = Decide.decide(.start(command, payload: payload, newID: InstanceID()), state: state, now: now)
            given([decision], to: &state)
            return decision
        }
        let first = decide("key-1", "payments", "r1")
        let sameTeam = decide("key-2", "payments", "r2")
        #expect(sameTeam.events.isEmpty, "another key of the same team shares the scope")
        #expect(
            sameTeam.actions
                == first.actions.map {
                    if case .replyStarted(let id, _) = $0 { .replyStarted(id, created: false) } else { $0 }
                })
        #expect(decide("key-3", "search", "r3").events.count == 1, "another team's key does not")
        #expect(decide("payments", nil, "r4").events.count == 1, "a configured key named like a team does not")
    }

    @Test func keysAreCreatedOnceByNameAndRevokedOnce() {
        var state = SchedulerState()
        let id = KeyID()
        let create = CreateKey(
            requestID: RequestID("k1"), keyID: id,
            key: ApiKeyCreated(name: "ci-bot", team: "payments", admin: false, hash: "aa", createdBy: "p"))
        let made = Decide.decide(.createKey(create), state: state, now: now)
        #expect(made.actions == [.replyKey(.created(repeatOf: nil))])
        guard case .apiKeyCreated(let event)? = made.events.first?.event else {
            Issue.record("no ApiKeyCreated: \(made)")
            return
        }
        #expect(event == ApiKeyCreated(name: "ci-bot", team: "payments", admin: false, hash: "aa", createdBy: "p"))
        #expect(made.events.first?.instanceID == id)
        given([made], to: &state)
        #expect(state.instances.isEmpty, "a key is not an instance")
        // The transport delivered it twice: answered with the first, nothing new.
        let again = Decide.decide(.createKey(create), state: state, now: now)
        #expect(again.events.isEmpty && again.actions == [.replyKey(.created(repeatOf: 1))])
        var other = create
        other.keyID = KeyID()
        other.key.hash = "bb"
        let taken = Decide.decide(.createKey(other), state: state, now: now)
        #expect(taken.events.isEmpty && taken.actions == [.replyKey(.nameTaken)])
        #expect(
            Decide.decide(.revokeKey(KeyID(), RequestID("x"), by: nil), state: state, now: now).actions == [
                .replyKey(.unknown)
            ])
        let revoked = Decide.decide(.revokeKey(id, RequestID("r"), by: "p"), state: state, now: now)
        #expect(revoked.actions == [.replyKey(.revoked)])
        #expect(revoked.events.map(\.event) == [.apiKeyRevoked(ApiKeyRevoked(revokedBy: "p"))])
        given([revoked], to: &state)
        #expect(
            Decide.decide(.revokeKey(id, RequestID("r2"), by: "p"), state: state, now: now).actions == [
                .replyKey(.unknown)
            ])
        // The name is free again once its key is revoked; a revoked id is never reused.
        #expect(Decide.decide(.createKey(other), state: state, now: now).events.count == 1)
        #expect(Decide.decide(.createKey(create), state: state, now: now).events.isEmpty)
        // And a stop for a key's id is no stop of an instance.
        #expect(
            Decide.decide(.cancel(id, RequestID("c")), state: state, now: now).actions == [.replyCancelled(.notLive)])
    }

    @Test func aRedeliveredRequestIsNotStartedTwice() {
        var state = SchedulerState()
        let first = started(&state, request: "same")
        let again = Decide.decide(
            .start(start(request: "same"), payload: payload, newID: InstanceID()), state: state, now: now)
        #expect(again.events.isEmpty)
        #expect(again.actions == [.replyStarted(first, created: false)])
    }

    @Test func cancelOutcomes() {
        var state = SchedulerState()
        #expect(
            Decide.decide(.cancel(InstanceID(), RequestID("x")), state: state, now: now).actions == [
                .replyCancelled(.notLive)
            ])
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        let cancel = Decide.decide(.cancel(id, RequestID("x")), state: state, now: now)
        #expect(cancel.events.map(\.event.status) == [.cancelled])
        #expect(cancel.actions == [.replyCancelled(.cancelled), .killOnExecutor(id, executor, only: .own, upTo: 1)])
        given([cancel], to: &state)
        let again = Decide.decide(.cancel(id, RequestID("y")), state: state, now: now)
        #expect(again.events.isEmpty)
        #expect(again.actions == [.replyCancelled(.notLive)])
    }

    @Test func reportsMoveAnInstanceThrough() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        #expect(state.instances[id]?.status == .starting)
        for (seq, kind) in [(1, ReportKind.started), (2, .log(lines: [])), (3, .finished(out: ["x": .int(1)]))] {
            let decision = Decide.decide(
                .report(executor, Report(seq: UInt64(seq), instanceID: id, kind: kind, at: now)), state: state, now: now
            )
            #expect(decision.events.count == 1)
            #expect(decision.events.first?.origin == ReportOrigin(executor: executor, seq: UInt64(seq)))
            given([decision], to: &state)
        }
        #expect(state.instances[id] == nil, "an instance that ended is no longer tracked")
        #expect(state.assigned[executor]?.isEmpty == true)
    }

    @Test func aReportAppliedOnceIsIgnoredWhenResent() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        let report = Report(seq: 1, instanceID: id, kind: .log(lines: []), at: now)
        given([Decide.decide(.report(executor, report), state: state, now: now)], to: &state)
        #expect(Decide.decide(.report(executor, report), state: state, now: now).events.isEmpty)
    }

    /// Stop racing completion: whichever is decided first wins; the other changes nothing.
    @Test func stopRacingCompletionEndsInOneTerminalStatus() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        given(
            [
                Decide.decide(
                    .report(executor, Report(seq: 1, instanceID: id, kind: .started, at: now)), state: state, now: now)
            ], to: &state)
        var cancelFirst = state
        given([Decide.decide(.cancel(id, RequestID("x")), state: cancelFirst, now: now)], to: &cancelFirst)
        let late = Decide.decide(
            .report(executor, Report(seq: 2, instanceID: id, kind: .finished(out: [:]), at: now)), state: cancelFirst,
            now: now)
        #expect(late.events.isEmpty)
        #expect(cancelFirst.instances[id] == nil)

        var finishFirst = state
        given(
            [
                Decide.decide(
                    .report(executor, Report(seq: 2, instanceID: id, kind: .finished(out: [:]), at: now)),
                    state: finishFirst, now: now)
            ], to: &finishFirst)
        let lateCancel = Decide.decide(.cancel(id, RequestID("x")), state: finishFirst, now: now)
        #expect(lateCancel.events.isEmpty)
        #expect(lateCancel.actions == [.replyCancelled(.notLive)])
    }

    @Test func reportsFromAnotherExecutorAreIgnoredAndKilled() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        let stranger = ExecutorID("e/2")
        let decision = Decide.decide(
            .report(stranger, Report(seq: 1, instanceID: id, kind: .started, at: now)), state: state, now: now)
        #expect(decision.events.isEmpty)
        #expect(decision.actions == [.killOnExecutor(id, stranger, only: .own, upTo: 1)])
    }

    /// An executor that came back on its predecessor's address ran the dispatch meant for that
    /// boot (attempt 1); the instance was then dispatched to it again (attempt 2). The first run's
    /// reports are not the instance's: its start is ignored and only attempt 1 is killed there.
    @Test func reportsOfAnEarlierAttemptAreIgnoredAndOnlyThatAttemptIsKilled() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, ExecutorID("e/0")), state: state, now: now)], to: &state)
        given([Decide.decide(.requeue(id, reason: "executor lost"), state: state, now: now)], to: &state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        #expect(state.instances[id]?.attempt == 2)
        let stale = Decide.decide(
            .report(executor, Report(seq: 1, instanceID: id, kind: .started, at: now, attempt: 1)), state: state,
            now: now)
        #expect(stale.events.isEmpty)
        #expect(stale.actions == [.killOnExecutor(id, executor, only: .own, upTo: 1)])
        let staleEnd = Decide.decide(
            .report(executor, Report(seq: 2, instanceID: id, kind: .finished(out: [:]), at: now, attempt: 1)),
            state: state, now: now)
        #expect(staleEnd.events.isEmpty && staleEnd.actions.isEmpty)
        let current = Decide.decide(
            .report(executor, Report(seq: 3, instanceID: id, kind: .started, at: now, attempt: 2)), state: state,
            now: now)
        #expect(current.events.first?.event.status == .running)
    }

    @Test func timeoutAndExecutorLossFailOnlyWhatIsStillRunning() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        #expect(
            Decide.decide(.executorLost(id, executor, reason: "gone"), state: state, now: now).events.isEmpty,
            "STARTING is re-dispatched, not failed")
        given(
            [
                Decide.decide(
                    .report(executor, Report(seq: 1, instanceID: id, kind: .started, at: now)), state: state, now: now)
            ], to: &state)
        let lost = Decide.decide(.executorLost(id, executor, reason: "gone"), state: state, now: now)
        #expect(lost.events.last?.event.status == .failed)
        if case .instanceFailed(let failed) = lost.events.last?.event {
            #expect(failed.error.contains("executor lost"))
        }
        let timeout = Decide.decide(.timeOut(id), state: state, now: now)
        #expect(timeout.events.last?.event.status == .timedOut)
        #expect(timeout.actions == [.killOnExecutor(id, executor, only: .own, upTo: 1)])
        given([timeout], to: &state)
        #expect(Decide.decide(.timeOut(id), state: state, now: now).events.isEmpty)
    }

    /// STARTING has a deadline: dispatched again, then failed after the last attempt; a stale
    /// deadline (an older attempt, or an instance that moved on) changes nothing.
    @Test func startingDeadlineRedispatchesThenFails() {
        var state = SchedulerState()
        let id = started(&state)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        let first = Decide.decide(.startingExpired(id, attempt: 1, maxAttempts: 2), state: state, now: now)
        #expect(first.events.map(\.event.typeName) == ["InstanceRequeued"])
        #expect(first.actions == [.killOnExecutor(id, executor, only: .own, upTo: 1)])
        given([first], to: &state)
        #expect(state.queue.contains(id) && state.instances[id]?.executor == nil)
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        #expect(Decide.decide(.startingExpired(id, attempt: 1, maxAttempts: 2), state: state, now: now) == Decision())
        let last = Decide.decide(.startingExpired(id, attempt: 2, maxAttempts: 2), state: state, now: now)
        #expect(last.events.last?.event.status == .failed)
        given(
            [
                Decide.decide(
                    .report(executor, Report(seq: 1, instanceID: id, kind: .started, at: now)), state: state, now: now)
            ], to: &state)
        #expect(Decide.decide(.startingExpired(id, attempt: 2, maxAttempts: 2), state: state, now: now) == Decision())
    }

    /// A requeue is an event like every other change: only a STARTING instance that is not queued
    /// already is requeued, and folding the events gives the state the Scheduler holds.
    @Test func aRequeueIsAnEventAndOnlyForAStartingInstance() {
        var state = SchedulerState()
        let id = started(&state)
        #expect(Decide.decide(.requeue(id, reason: "x"), state: state, now: now) == Decision())  // ENQUEUED
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        let requeue = Decide.decide(.requeue(id, reason: "executor lost: gone"), state: state, now: now)
        #expect(requeue.events.map(\.event) == [.instanceRequeued(InstanceRequeued(reason: "executor lost: gone"))])
        #expect(requeue.actions.isEmpty)
        given([requeue], to: &state)
        #expect(state.queue.contains(id) && state.assigned[executor]?.contains(id) != true)
        #expect(Decide.decide(.requeue(id, reason: "again"), state: state, now: now) == Decision())  // queued already
        given([Decide.decide(.assign(id, executor), state: state, now: now)], to: &state)
        given(
            [
                Decide.decide(
                    .report(executor, Report(seq: 1, instanceID: id, kind: .started, at: now)), state: state, now: now)
            ], to: &state)
        #expect(Decide.decide(.requeue(id, reason: "late"), state: state, now: now) == Decision())  // RUNNING
    }

    @Test func queueIsFifoAndSkipsRemoved() {
        var queue = DispatchQueueState()
        let ids = (0..<5).map { _ in InstanceID() }
        ids.forEach { queue.push($0) }
        queue.push(ids[0])
        queue.remove(ids[1])
        #expect(queue.count == 4)
        #expect(queue.pop() == ids[0])
        #expect(queue.pop() == ids[2])
        queue.push(ids[1])
        #expect([queue.pop(), queue.pop(), queue.pop()] == [ids[3], ids[4], ids[1]])
        #expect(queue.pop() == nil)
    }

    /// Rebuilding from the log gives the same state as deciding step by step.
    @Test func replayRebuildsTheSameState() {
        var state = SchedulerState()
        var log: [EventEnvelope] = []
        func record(_ decision: Decision) {
            for var e in decision.events {
                e.seq = state.head + 1
                state.apply(e)
                log.append(e)
            }
        }
        var ids: [InstanceID] = []
        for n in 0..<6 {
            let id = InstanceID()
            ids.append(id)
            record(
                Decide.decide(
                    .start(start(request: "r\(n)", key: "k\(n)"), payload: payload, newID: id), state: state, now: now))
        }
        record(Decide.decide(.assign(ids[0], executor), state: state, now: now))
        record(Decide.decide(.assign(ids[1], executor), state: state, now: now))
        record(Decide.decide(.cancel(ids[2], RequestID("c")), state: state, now: now))
        record(
            Decide.decide(
                .report(executor, Report(seq: 1, instanceID: ids[0], kind: .started, at: now)), state: state, now: now))
        let key = KeyID()
        record(
            Decide.decide(
                .createKey(
                    CreateKey(
                        requestID: RequestID("k"), keyID: key,
                        key: ApiKeyCreated(name: "ci-bot", team: "t-1", admin: false, hash: "aa", createdBy: nil))),
                state: state, now: now))
        record(Decide.decide(.revokeKey(key, RequestID("kr"), by: nil), state: state, now: now))
        var rebuilt = SchedulerState()
        log.forEach { rebuilt.apply($0) }
        #expect(rebuilt.instances == state.instances)
        #expect(rebuilt.idempotency == state.idempotency)
        #expect(rebuilt.assigned == state.assigned)
        #expect(rebuilt.reportsApplied == state.reportsApplied)
        #expect(rebuilt.keys == state.keys && rebuilt.keys[key]?.revoked == true)
        #expect(rebuilt.queue.count == 3)
    }

    /// Thousands of instances run and end: what the state holds is what is live (its snapshots
    /// stay the same size however long the history), and a repeat of a finished start is still
    /// answered with its instance while its request id is remembered.
    @Test func theStateHoldsWhatIsLiveNotWhatRan() {
        var state = SchedulerState()
        var last = InstanceID()
        for n in 0..<2000 {
            last = started(&state, request: "r\(n)")
            given([Decide.decide(.cancel(last, RequestID("c\(n)")), state: state, now: now)], to: &state)
        }
        let live = started(&state, request: "live")
        #expect(state.instances.keys.sorted() == [live])
        #expect(state.queue.count == 1 && state.assigned.values.allSatisfy(\.isEmpty))
        let repeated = Decide.decide(
            .start(start(request: "r1999"), payload: payload, newID: InstanceID()), state: state, now: now)
        #expect(repeated.actions == [.replyStarted(last, created: false)] && repeated.events.isEmpty)
        #expect(state.requests.count == 2001)
    }

    /// A start's request id is forgotten once the log has moved `requestWindow` past it, by the
    /// events' own times, so a replay forgets exactly the same ones.
    @Test func requestIdsAreForgottenAfterTheWindow() {
        var state = SchedulerState()
        let old = Decide.decide(
            .start(start(request: "old"), payload: payload, newID: InstanceID()), state: state, now: now)
        given([old], to: &state)
        let later = Timestamp(millis: now.millis + SchedulerState.requestWindowMillis + 1)
        let fresh = Decide.decide(
            .start(start(request: "fresh"), payload: payload, newID: InstanceID()), state: state, now: later)
        given([fresh], to: &state)
        #expect(state.requests.keys.map(\.rawValue) == ["fresh"])
        #expect(state.requestsByAge.count == 1)
        var replayed = SchedulerState()
        for var envelope in old.events + fresh.events {
            envelope.seq = replayed.head + 1
            replayed.apply(envelope)
        }
        #expect(replayed == state)
    }

    /// Assigning removes from the queue by marking (a replay assigns every instance it queued):
    /// the marks are swept, so the queue and its snapshot hold what waits, in order, not every
    /// instance that ever waited (a snapshot of ten million replayed instances held them all).
    @Test func theQueueHoldsWhatWaitsNotWhatWaited() throws {
        var queue = DispatchQueueState()
        let ids = (0..<5000).map { _ in InstanceID() }
        ids.forEach { queue.push($0) }
        for id in ids.dropLast(3) { queue.remove(id) }
        #expect(queue.ordered == Array(ids.suffix(3)))
        let encoded = try JSONEncoder().encode(queue)
        #expect(encoded.count < 200, "\(encoded.count) bytes")
        let decoded = try JSONDecoder().decode(DispatchQueueState.self, from: encoded)
        #expect(decoded == queue && decoded.count == 3)
        var popped = decoded
        #expect([popped.pop(), popped.pop(), popped.pop(), popped.pop()] == ids.suffix(3).map(Optional.some) + [nil])
    }

    /// An idempotency key answers its instance after it ended, until retention forgets the
    /// instance (`HistoryTrimmed`): then the key goes too, and a live instance's key stays.
    @Test func idempotencyKeysGoWithTheirTrimmedInstance() {
        var state = SchedulerState()
        let ended = started(&state, key: "old", request: "r-old")
        given([Decide.decide(.cancel(ended, RequestID("c")), state: state, now: now)], to: &state)
        let live = started(&state, key: "live", request: "r-live")
        func repeatStart(_ key: String) -> Decision {
            Decide.decide(
                .start(start(request: "again-\(key)", key: key), payload: payload, newID: InstanceID()), state: state,
                now: now)
        }
        #expect(repeatStart("old").actions == [.replyStarted(ended, created: false)])
        let trim = EventEnvelope(
            instanceID: InstanceID(), at: now,
            event: .historyTrimmed(HistoryTrimmed(before: Timestamp(millis: now.millis + 1), retentionMillis: 1)))
        given([Decision(events: [trim])], to: &state)
        #expect(repeatStart("old").events.count == 1, "the key went with its instance")
        #expect(repeatStart("live").actions == [.replyStarted(live, created: false)])
        #expect(state.idempotency.count == 1)
    }
}
