import Archive
import Events
import Foundation
import Logging
import TestSupport
import Testing
import Transport

@testable import Executor

/// The executor's bookkeeping of dispatches and cancels, with `/bin/true` standing in for the
/// runner (it exits at once without a result, so every run ends in a `failed` report).
@Suite struct ExecutorCoreTests {
    private func makeCore(runner: String = "/bin/true") throws -> (ExecutorCore, String) {
        let root = NSTemporaryDirectory() + "accord-core-" + UUID().uuidString
        let config = ExecutorConfig(
            name: "t", schedulerURL: "ipc://\(root)/none.ipc", listenURL: "ipc://\(root)/t.ipc", capacity: 2,
            workRoot: root + "/work", zipLimits: .init(), useControlGroups: false)
        try FileManager.default.createDirectory(atPath: config.workRoot, withIntermediateDirectories: true)
        let socket = try NNGSocket(.req)
        let core = try ExecutorCore(
            id: ExecutorID("t/1"), config: config, schedulerSocket: socket, logger: Logger(label: "test"),
            runnerExecutable: runner)
        return (core, root)
    }

    private func dispatch(_ id: InstanceID) -> ExecutorCommand {
        .dispatch(Dispatch(instanceID: id, attempt: 1, entryPoint: "main", arguments: [:], out: []))
    }

    /// Waits until the executor has something to report about `id` (its run happened).
    private func reported(_ core: ExecutorCore, _ id: InstanceID) async -> Bool {
        for _ in 0..<200 {
            if await core.reporter.unacknowledgedInstances.contains(id) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test func aCancelForAnUnknownInstanceDoesNotSwallowItsLaterDispatch() async throws {
        let (core, root) = try makeCore()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let id = InstanceID()
        #expect(await core.handle(.cancel(instanceID: id), payload: []) == .accepted)
        #expect(await core.handle(dispatch(id), payload: ZipBuilder.payload("main:\n- log: x\n")) == .accepted)
        #expect(await reported(core, id), "the dispatch after the cancel never ran")
    }

    @Test func capacityIsEnforced() async throws {
        // A runner that takes its instance and never ends: both slots stay busy.
        let script = NSTemporaryDirectory() + "accord-stuck-runner-" + UUID().uuidString
        try "#!/bin/sh\nexec sleep 60\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let (core, root) = try makeCore(runner: script)
        defer {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: script)
        }
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

    /// A runner binary that dies at once (here `/bin/true`) is not restarted in a loop: the
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
    /// again on a fresh runner, not failed for the dead one. The stand-in runner ignores its stdin and
    /// exits after 0.3 s, so the dispatch reaches a live runner that dies later.
    @Test func anInstanceWhoseWaitingRunnerDiesIsRunOnAFreshOne() async throws {
        let script = NSTemporaryDirectory() + "accord-dying-runner-" + UUID().uuidString
        try "#!/bin/sh\nsleep 0.3\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let (core, root) = try makeCore(runner: script)
        defer {
            try? FileManager.default.removeItem(atPath: root)
            try? FileManager.default.removeItem(atPath: script)
        }
        await core.warmUp()
        #expect(await core.runnersStarted == 2)
        let id = InstanceID()
        #expect(await core.handle(dispatch(id), payload: ZipBuilder.payload("main:\n- log: x\n")) == .accepted)
        // The runner dies 0.3 s after it started; its instance goes to a fresh one then.
        for _ in 0..<100 where await core.runnersStarted < 3 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(await core.runnersStarted == 3, "the instance was not given to a fresh runner")
    }
}
