import Archive
import Foundation
import Logging
import Model
import TestSupport
import Testing
import Transport
import Wire

@testable import Executor

/// The executor's bookkeeping of dispatches and cancels, with a shell standing in for the runner
/// (by default it exits at once without a result, so every run ends in a `failed` report).
@Suite struct ExecutorCoreTests {
    /// `runner` is a shell body standing in for the runner. It is run by `/bin/sh -c`, never written
    /// to a file and executed: a file just written by one thread can fail to execute with ETXTBSY
    /// while another thread's spawn holds a copy of the writing descriptor.
    private func makeCore(runner: String = "exit 0") throws -> (ExecutorCore, String) {
        let root = NSTemporaryDirectory() + "accord-core-" + UUID().uuidString
        let config = ExecutorConfig(
            name: "t", schedulerURL: "ipc://\(root)/none.ipc", listenURL: "ipc://\(root)/t.ipc", capacity: 2,
            workRoot: root + "/work", zipLimits: .init(), useControlGroups: false,
            sandbox: .none)
        try FileManager.default.createDirectory(atPath: config.workRoot, withIntermediateDirectories: true)
        let socket = try LeaderLink(config.schedulerURL, probe: [], rank: { _ in 0 })
        let core = try ExecutorCore(
            id: ExecutorID("t/1"), config: config, schedulerSocket: socket, logger: Logger(label: "test"),
            runnerCommand: ["/bin/sh", "-c", runner])
        return (core, root)
    }

    private func dispatch(_ id: InstanceID) -> ExecutorCommand {
        .dispatch(Dispatch(instanceID: id, attempt: 1, entryPoint: "main", arguments: [:], out: []))
    }

    /// Waits until the executor reports how `id`'s run ended. (Any report would not do: `started`
    /// is reported as soon as a waiting runner takes the instance, before that runner dies and a
    /// fresh one is started, and a test that counted runners then counted one too few.)
    private func reported(_ core: ExecutorCore, _ id: InstanceID) async -> Bool {
        await eventually { await core.reporter.hasUnacknowledgedEnd(of: id) }
    }

    @Test func aCancelForAnUnknownInstanceDoesNotSwallowItsLaterDispatch() async throws {
        let (core, root) = try makeCore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let id = InstanceID()
        #expect(await core.handle(.cancel(instanceID: id), payload: []) == .accepted)
        #expect(await core.handle(dispatch(id), payload: ZipBuilder.payload("main:\n- log: x\n")) == .accepted)
        #expect(await reported(core, id), "the dispatch after the cancel never ran")
    }

    /// A handler's dispatch can arrive before the stop of the instance's own run (they travel
    /// apart): the own run is killed and the handler's starts after it; the stop that arrives
    /// late is for a run that has ended and spares the handler's.
    @Test func aHandlerDispatchReplacesTheOwnRunAndALateStopSparesIt() async throws {
        let (core, root) = try makeCore(runner: "exec sleep 60")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let payload = ZipBuilder.payload("main:\n- log: x\n")
        let id = InstanceID()
        #expect(await core.handle(dispatch(id), payload: payload) == .accepted)
        #expect(await core.currentRun(id) == .own)
        let handler = ExecutorCommand.dispatch(
            Dispatch(instanceID: id, attempt: 1, entryPoint: "onFailure", arguments: [:], out: [], handler: "onFailure")
        )
        #expect(await core.handle(handler, payload: payload) == .accepted)
        #expect(await eventually { await core.currentRun(id) == .handler("onFailure") })
        #expect(await core.handle(.cancel(instanceID: id, only: .own), payload: []) == .accepted)
        try await Task.sleep(for: .milliseconds(200))
        #expect(await core.currentRun(id) == .handler("onFailure"), "the late stop killed the handler's run")
        #expect(await core.handle(.cancel(instanceID: id, only: .handler("onFailure")), payload: []) == .accepted)
        #expect(await eventually { await core.currentRun(id) == nil })
        await core.killAll()
    }

    /// A later attempt of the run here (this boot ran the dispatch meant for its predecessor on
    /// the same address) replaces it; a stop of the earlier attempt that arrives after spares it.
    @Test func aLaterAttemptReplacesTheRunAndAStaleStopSparesIt() async throws {
        let (core, root) = try makeCore(runner: "exec sleep 60")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let payload = ZipBuilder.payload("main:\n- log: x\n")
        let id = InstanceID()
        #expect(await core.handle(dispatch(id), payload: payload) == .accepted)
        let started = await core.runnersStarted
        #expect(await core.handle(dispatch(id), payload: payload) == .accepted, "a repeat")
        #expect(await core.runnersStarted == started, "a repeat of the same attempt started a run")
        let second = ExecutorCommand.dispatch(
            Dispatch(instanceID: id, attempt: 2, entryPoint: "main", arguments: [:], out: []))
        #expect(await core.handle(second, payload: payload) == .accepted)
        #expect(await eventually { await core.runnersStarted > started })
        #expect(await core.handle(.cancel(instanceID: id, only: .own, upTo: 1), payload: []) == .accepted)
        try await Task.sleep(for: .milliseconds(200))
        #expect(await core.currentRun(id) == .own, "the stale stop killed attempt 2")
        #expect(await core.handle(.cancel(instanceID: id, only: .own, upTo: 2), payload: []) == .accepted)
        #expect(await eventually { await core.currentRun(id) == nil })
        await core.killAll()
    }

    @Test func capacityIsEnforced() async throws {
        // A runner that takes its instance and never ends: both slots stay busy.
        let (core, root) = try makeCore(runner: "exec sleep 60")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let payload = ZipBuilder.payload("main:\n- log: x\n")
        let first = InstanceID()
        #expect(await core.handle(dispatch(first), payload: payload) == .accepted)
        #expect(await core.handle(dispatch(InstanceID()), payload: payload) == .accepted)
        if case .refused = await core.handle(dispatch(InstanceID()), payload: payload) {
        } else {
            Issue.record("a third dispatch was accepted at capacity 2")
        }
        // A cancelled instance frees its slot at once, while its runner is still being killed.
        #expect(await core.handle(.cancel(instanceID: first), payload: []) == .accepted)
        #expect(await core.handle(dispatch(InstanceID()), payload: payload) == .accepted)
        await core.killAll()
    }

    @Test func aBadPayloadIsReportedAsFailed() async throws {
        let (core, root) = try makeCore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let id = InstanceID()
        #expect(await core.handle(dispatch(id), payload: Array("not a zip".utf8)) == .accepted)
        #expect(await reported(core, id))
    }

    /// A runner binary that dies at once (here `sh -c "exit 0"`) is not restarted in a loop: the
    /// runners started ahead of need are not replaced when they die without ever running anything,
    /// and a dispatch still ends (FAILED, reported) rather than waiting for a runner forever.
    @Test func runnersThatDieAtOnceAreNotRestartedInALoop() async throws {
        let (core, root) = try makeCore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        await core.warmUp()
        let first = await core.runnersStarted
        #expect(first == 2, "capacity 2 caps the runners started ahead of need")
        try await Task.sleep(for: .milliseconds(500))
        #expect(await core.runnersStarted == first, "dead waiting runners were replaced again and again")
        let id = InstanceID()
        #expect(await core.handle(dispatch(id), payload: ZipBuilder.payload("main:\n- log: x\n")) == .accepted)
        #expect(await reported(core, id), "a dispatch with only dead runners around never ended")
        try await Task.sleep(for: .milliseconds(300))
        let after = await core.runnersStarted
        #expect(after == first + 1, "\(after) runners started after one dispatch (\(first) before)")
    }

    /// An instance handed to a waiting runner that then dies without taking it (no `begin`) is run
    /// again on a fresh runner, not failed for the dead one. The stand-in runner exits as soon as the
    /// first byte of its request arrives, whenever that is: the dispatch always reaches a live runner
    /// that then dies without taking it.
    @Test func anInstanceWhoseWaitingRunnerDiesIsRunOnAFreshOne() async throws {
        let (core, root) = try makeCore(runner: "head -c 1 >/dev/null")
        defer { try? FileManager.default.removeItem(atPath: root) }
        await core.warmUp()
        #expect(await core.runnersStarted == 2)
        let id = InstanceID()
        #expect(await core.handle(dispatch(id), payload: ZipBuilder.payload("main:\n- log: x\n")) == .accepted)
        // Its runner dies on receiving it; the instance goes to a fresh one (which dies the same way,
        // and then the instance ends FAILED: it is retried once).
        #expect(await reported(core, id), "the instance never ended")
        #expect(await core.runnersStarted == 3, "the instance was not given to exactly one fresh runner")
        await core.killAll()
    }
}
