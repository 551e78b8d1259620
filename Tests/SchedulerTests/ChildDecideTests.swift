import JSON
import Model
import Testing
import Wire

@testable import Scheduler

/// Children as the Scheduler decides them: a child is an instance of the parent's payload and
/// team; a parent waiting for one is resumed with its outcome, whichever of the two (the child's
/// end, the parent's suspend) is recorded first; a cascade stop reaches every generation.
@Suite struct ChildDecideTests {
    let now = Timestamp(millis: 1_000)
    let executor = ExecutorID("e/1")
    let payload = PayloadRef(digest: "00", size: 1)

    func report(_ id: InstanceID, _ kind: ReportKind, _ state: SchedulerState) -> SchedulerCommand {
        .report(
            executor,
            Report(
                seq: (state.reportsApplied[executor] ?? 0) + 1, instanceID: id, kind: kind, at: now,
                attempt: state.instances[id]?.attempt))
    }

    /// An instance of team `t` running on `executor`.
    func running(_ state: inout SchedulerState, parent: InstanceID? = nil, sync: Bool = false) -> InstanceID {
        let id = InstanceID()
        if let parent {
            let tracked = state.instances[parent]!
            given(
                Decide.decide(
                    .startChild(
                        parent: parent, executor: executor, attempt: tracked.attempt, .random(),
                        ChildStart(entryPoint: "child", arguments: [:], sync: sync), newID: id), state: state, now: now),
                to: &state)
        } else {
            let start = StartInstance(
                requestID: .random(), entryPoint: "main", arguments: [:], timeoutMillis: nil, out: [], tags: [],
                idempotencyKey: nil, principal: "p", team: "t")
            given(Decide.decide(.start(start, payload: payload, newID: id), state: state, now: now), to: &state)
        }
        given(Decide.decide(.assign(id, executor), state: state, now: now), to: &state)
        given(Decide.decide(report(id, .started, state), state: state, now: now), to: &state)
        return id
    }

    func suspendOn(_ child: InstanceID, _ parent: InstanceID, _ state: inout SchedulerState) {
        given(
            Decide.decide(
                report(parent, .suspended(event: ChildStart.waitEvent(for: child), state: payload), state),
                state: state, now: now), to: &state)
    }

    @Test func aChildRunsTheParentsPayloadForItsTeam() throws {
        var state = SchedulerState()
        let parent = running(&state)
        let request = RequestID.random()
        let start = ChildStart(
            entryPoint: "child", arguments: ["a": .int(1)], out: ["x"], tags: ["kid"], sync: true)
        let decision = Decide.decide(
            .startChild(parent: parent, executor: executor, attempt: 1, request, start, newID: InstanceID()),
            state: state, now: now)
        guard case .replyChild(.success(let id), created: true)? = decision.actions.first,
            case .instanceCreated(let created)? = decision.events.first?.event
        else {
            Issue.record("\(decision)")
            return
        }
        #expect(decision.events.first?.instanceID == id)
        #expect(created.payload == payload && created.team == "t" && created.principal == "p")
        #expect(created.parentInstanceId == parent && created.parentWaits == true)
        #expect(created.entryPoint == "child" && created.arguments == ["a": .int(1)] && created.out == ["x"])
        given(decision, to: &state)
        #expect(state.instances[id]?.ancestors == [parent] && state.queue.contains(id))
        // The same request again (its reply was lost): the same child, nothing new.
        let again = Decide.decide(
            .startChild(parent: parent, executor: executor, attempt: 1, request, start, newID: InstanceID()),
            state: state, now: now)
        #expect(again.events.isEmpty && again.actions == [.replyChild(.success(id), created: false)])
    }

    @Test func onlyTheRunThatIsUnderWayStartsChildren() {
        var state = SchedulerState()
        let parent = running(&state)
        let start = ChildStart(entryPoint: nil, arguments: [:])
        for (executor, attempt) in [(ExecutorID("other/1"), 1), (executor, 2)] {
            let refused = Decide.decide(
                .startChild(
                    parent: parent, executor: executor, attempt: attempt, .random(), start, newID: InstanceID()),
                state: state, now: now)
            #expect(refused.events.isEmpty)
            #expect(
                refused.actions == [
                    .replyChild(.failure(ChildRefusal(reason: "the instance no longer runs there")), created: false)
                ])
        }
        given(Decide.decide(report(parent, .finished(out: [:]), state), state: state, now: now), to: &state)
        let ended = Decide.decide(
            .startChild(parent: parent, executor: executor, attempt: 1, .random(), start, newID: InstanceID()),
            state: state, now: now)
        #expect(ended.events.isEmpty)
    }

    @Test func childrenNestOnlySoDeep() {
        var state = SchedulerState()
        var current = running(&state)
        for _ in 1..<(ChildStart.maxGenerations - 1) { current = running(&state, parent: current) }
        #expect(state.instances[current]?.ancestors.count == ChildStart.maxGenerations - 2)
        let deepest = running(&state, parent: current)
        let refused = Decide.decide(
            .startChild(
                parent: deepest, executor: executor, attempt: 1, .random(), ChildStart(entryPoint: nil, arguments: [:]),
                newID: InstanceID()), state: state, now: now)
        #expect(refused.events.isEmpty)
        guard case .replyChild(.failure(let why), _)? = refused.actions.first else {
            Issue.record("\(refused)")
            return
        }
        #expect(why.reason.contains("at most \(ChildStart.maxGenerations) generations"))
    }

    @Test func aWaitingParentResumesWithItsChildsOutcome() {
        var state = SchedulerState()
        let parent = running(&state)
        let child = running(&state, parent: parent, sync: true)
        suspendOn(child, parent, &state)
        #expect(state.instances[parent]?.status == .suspended && state.childResumes.isEmpty)
        // No client resumes it: it waits for the child.
        let byClient = Decide.decide(
            .resume(parent, event: ChildStart.waitEvent(for: child), variables: [:], RequestID("r")), state: state,
            now: now)
        #expect(byClient.events.isEmpty)
        #expect(Decide.decide(.resumeForChild(parent), state: state, now: now).events.isEmpty, "the child still runs")

        given(
            Decide.decide(report(child, .failed(error: "boom", out: ["x": .int(2)]), state), state: state, now: now),
            to: &state)
        #expect(state.childResumes == [parent])
        let resume = Decide.decide(.resumeForChild(parent), state: state, now: now)
        guard case .instanceResumed(let resumed)? = resume.events.first?.event else {
            Issue.record("\(resume)")
            return
        }
        #expect(resumed.child == ChildOutcome(id: child, status: .failed, out: ["x": .int(2)], error: "boom"))
        given(resume, to: &state)
        #expect(state.childResumes.isEmpty && state.instances[parent]?.status == .resuming)
        #expect(state.instances[parent]?.childOutcomes.isEmpty == true && state.queue.contains(parent))
    }

    /// The child can end before its parent's suspend is recorded (it is fast, the parent's state
    /// is being stored): the suspend then finds the outcome waiting.
    @Test func aChildThatEndsBeforeItsParentSuspendsIsNotMissed() {
        var state = SchedulerState()
        let parent = running(&state)
        let child = running(&state, parent: parent, sync: true)
        given(Decide.decide(report(child, .finished(out: [:]), state), state: state, now: now), to: &state)
        #expect(state.childResumes.isEmpty && state.instances[parent]?.childOutcomes[child] != nil)
        suspendOn(child, parent, &state)
        #expect(state.childResumes == [parent])
        #expect(Decide.decide(.resumeForChild(parent), state: state, now: now).events.count == 1)
    }

    /// A child nobody waits for leaves nothing in its parent.
    @Test func anUnawaitedChildsEndIsNotKept() {
        var state = SchedulerState()
        let parent = running(&state)
        let child = running(&state, parent: parent)
        given(Decide.decide(report(child, .finished(out: [:]), state), state: state, now: now), to: &state)
        #expect(state.instances[parent]?.childOutcomes.isEmpty == true)
    }

    @Test func aCascadeStopsEveryLiveGeneration() {
        var state = SchedulerState()
        let root = running(&state)
        let child = running(&state, parent: root, sync: true)
        let grandchild = running(&state, parent: child)
        let sibling = running(&state, parent: root)
        given(Decide.decide(report(sibling, .finished(out: [:]), state), state: state, now: now), to: &state)
        suspendOn(grandchild, child, &state)
        let unrelated = running(&state)

        // A plain stop of the root leaves its family running.
        let plain = Decide.decide(.cancel(root, RequestID("a")), state: state, now: now)
        #expect(plain.events.map(\.instanceID) == [root])
        given(plain, to: &state)
        let cascade = Decide.decide(.cancel(root, RequestID("b"), cascade: true), state: state, now: now)
        #expect(cascade.events.map(\.instanceID) == [child, grandchild], "the live ones, oldest first")
        #expect(cascade.events.allSatisfy { $0.event.status == .cancelled })
        #expect(cascade.actions.first == .replyCancelled(.cancelled))
        #expect(cascade.actions.contains(.killOnExecutor(grandchild, executor, only: .own, upTo: 1)))
        #expect(!cascade.actions.contains { if case .killOnExecutor(child, _, _, _) = $0 { true } else { false } })
        given(cascade, to: &state)
        #expect(state.instances[unrelated]?.status == .running)
        let again = Decide.decide(.cancel(root, RequestID("c"), cascade: true), state: state, now: now)
        #expect(again.events.isEmpty && again.actions == [.replyCancelled(.notLive)])
    }
}
