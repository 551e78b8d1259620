import Foundation
import Model
import NIOCore
import NIOPosix
import ProcessSupport
import Synchronization
import Wire

/// How one instance's run on a runner ended.
enum RunnerOutcome: Sendable {
    /// The runner sent its result and waits for another instance.
    case handedBack(RunnerResult)
    /// The runner exited and everything in its process group and control groups is dead: its
    /// result if it sent one, the wait status, and whether it had taken the request at all (a
    /// runner that died waiting, before `begin`, ran nothing of the instance).
    case exited(RunnerResult?, status: Int32, began: Bool)
}

/// One runner child process, started ahead of need and given instances one after another. Its
/// stdout carries `RunnerMessage` lines, read on NIO's event loop (no thread per runner); its
/// stderr is kept as log lines of the instance it runs (a crashing runner says why); its stdin
/// carries requests and stays open while the executor lives. An instance's end is reported once
/// its outcome is certain: at a reusable result, or once the runner has exited, both of its output
/// streams are drained and its groups are swept, so the outcome always follows the last log line.
final class RunnerProcess: Sendable {
    /// The instance a runner is running, and where its output goes.
    struct Assignment: Sendable {
        let id: InstanceID
        let onLog: @Sendable ([LogLine]) -> Void
        let onSteps: @Sendable ([StepRecord]) -> Void
        let onEnd: @Sendable (RunnerOutcome) -> Void
        /// The payload's handler flows, as the runner read them (before any line of the flow).
        var onHandlers: @Sendable ([String]) -> Void = { _ in }
        /// The ZIP of the files the run left under `_attachments/` (before its end).
        var onAttachments: @Sendable ([UInt8]) -> Void = { _ in }
        /// The state of a flow that suspended (before its end).
        var onState: @Sendable ([UInt8]) -> Void = { _ in }
        /// The flow starts a child instance; the runner waits for `reply`.
        var onStartChild: @Sendable (ChildStart) -> Void = { _ in }
    }

    private struct State {
        var stdoutBuffer: [UInt8] = []
        var stderrBuffer: [UInt8] = []
        var assignment: Assignment?
        var began = false
        var result: RunnerResult?
        var openStreams = 2
        var exitStatus: Int32?
        var ended = false
        /// Whether it ever took an instance (`begin`).
        var hasRun = false
    }

    let pid: pid_t
    /// Its one writable folder (in a sandbox, the only one it sees); instances' working folders are
    /// made under it. Removed once the runner has exited.
    let home: String
    private let input: EventLoopFuture<any Channel>
    private let state = Mutex(State())
    private let onIdleExit: @Sendable (RunnerProcess) -> Void

    /// Sweeping a control group kills and waits (up to half a second): on a serial queue of its own,
    /// never on `DispatchQueue.global()`, whose threads on Linux are the Swift cooperative pool.
    private static let sweeper = DispatchQueue(label: "accord.cgroup.sweep")

    /// Writing to a runner that has already died must not kill the executor.
    private static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Starts a runner (`command` followed by `--instances N`) that serves up to `instances`
    /// instances, in `sandbox` with `home` as its one writable folder, and in `group` when given
    /// (entered before the runner can start anything). `onIdleExit` is called when it exits with no
    /// instance.
    init(
        command: [String], instances: Int, home: String, sandbox: Sandbox, group: InstanceGroup?,
        onIdleExit: @escaping @Sendable (RunnerProcess) -> Void
    ) throws {
        self.onIdleExit = onIdleExit
        self.home = home
        RunnerProcess.ignoreSIGPIPE
        var argv = sandbox.wrap(command + ["--instances", "\(instances)"], home: home)
        if group != nil {
            // Held at a gate until it is in its control groups: bubblewrap forks the sandbox at
            // once, and a child forked before the move would stay outside every limit.
            argv = ["/bin/sh", "-c", #"read -r go && exec "$@""#, "accord-gate"] + argv
        }
        let child = try Spawn.start(
            argv, environment: Sandbox.environment(home: home), directory: home, stdin: .pipe, output: .separate,
            ownProcessGroup: true, start: ChildReaper.shared.spawning)
        self.pid = child.pid
        if let group {
            let gate: [UInt8] = Array("go\n".utf8)
            guard group.add(child.pid), write(child.stdin, gate, gate.count) == gate.count else {
                _ = Glibc.kill(-child.pid, SIGKILL)
                group.killAllAndRemove()
                close(child.stdin)
                close(child.stdout)
                close(child.stderr)
                throw SpawnError("cannot put the runner in its control groups (\(group.directories))")
            }
        }
        let loops = MultiThreadedEventLoopGroup.singleton
        let stdinFD = child.stdin
        input = NIOPipeBootstrap(group: loops).takingOwnershipOfDescriptor(output: stdinFD)
        input.whenFailure { _ in close(stdinFD) }
        for (fd, isStdout) in [(child.stdout, true), (child.stderr, false)] {
            let handler = StreamHandler(
                onData: { [weak self] bytes in self?.consume(bytes, stdout: isStdout) },
                onClose: { [weak self] in self?.streamClosed(stdout: isStdout) })
            NIOPipeBootstrap(group: loops)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
                }
                .takingOwnershipOfDescriptor(input: fd)
                .whenFailure { [weak self] _ in
                    close(fd)
                    self?.streamClosed(stdout: isStdout)
                }
        }
        ChildReaper.shared.onExit(child.pid) { [weak self] status in
            // Whatever the runner left behind in its process group dies with it, and with control
            // groups so does anything that left the process group (a `setsid` daemon).
            _ = Glibc.kill(-child.pid, SIGKILL)
            if let group {
                let process = self
                RunnerProcess.sweeper.async {
                    group.killAllAndRemove()
                    process?.exited(status)
                }
            } else {
                self?.exited(status)
            }
        }
    }

    /// Hands the runner an instance; false when it has already exited (take another runner).
    func assign(_ request: RunnerRequest, payload: [UInt8], _ assignment: Assignment) -> Bool {
        guard let frame = try? RunnerFrame.encode(request, payload: payload) else { return false }
        let taken = state.withLock { state -> Bool in
            guard state.exitStatus == nil, state.assignment == nil else { return false }
            state.assignment = assignment
            state.began = false
            state.result = nil
            return true
        }
        guard taken else { return false }
        input.whenSuccess { channel in
            channel.writeAndFlush(channel.allocator.buffer(bytes: frame), promise: nil)
        }
        return true
    }

    /// Answers the runner's `startChild` on its stdin.
    func reply(_ reply: RunnerReply) {
        guard let frame = try? RunnerFrame.encode(reply) else { return }
        input.whenSuccess { channel in
            channel.writeAndFlush(channel.allocator.buffer(bytes: frame), promise: nil)
        }
    }

    /// Whether it ever began an instance.
    var hasRun: Bool { state.withLock { $0.hasRun } }

    /// Kills the runner's process group (the runner and everything it started) at once, if it is
    /// running `id`.
    func kill(_ id: InstanceID) {
        let serving = state.withLock { $0.assignment?.id == id }
        if serving { _ = Glibc.kill(-pid, SIGKILL) }
    }

    /// Ends a runner that waits for an instance (more are waiting than wanted, or at shutdown).
    func retire() {
        _ = Glibc.kill(-pid, SIGKILL)
    }

    private func consume(_ bytes: ByteBuffer, stdout: Bool) {
        let (assignment, handlers, blobs, lines, steps, handedBack, child) = state.withLock {
            state -> (
                Assignment?, [String]?, (attachments: [UInt8]?, state: [UInt8]?), [LogLine], [StepRecord],
                RunnerResult?,
                ChildStart?
            ) in
            let assignment = state.assignment
            var child: ChildStart?
            var handlers: [String]?
            var attachments: [UInt8]?
            var suspended: [UInt8]?
            var out: [LogLine] = []
            var steps: [StepRecord] = []
            var handedBack: RunnerResult?
            if stdout {
                state.stdoutBuffer += bytes.readableBytesView
                var start = 0
                while let newline = state.stdoutBuffer[start...].firstIndex(of: 0x0A) {
                    let line = state.stdoutBuffer[start..<newline]
                    start = newline + 1
                    switch RunnerMessage.decode(line) {
                    case .begin(let id):
                        if id == assignment?.id {
                            state.began = true
                            state.hasRun = true
                        }
                    case .log(let logLine): out.append(logLine)
                    case .steps(let records): steps += records
                    case .handlers(let flows): handlers = flows
                    case .attachments(let base64): attachments = Data(base64Encoded: base64).map(Array.init)
                    case .state(let base64): suspended = Data(base64Encoded: base64).map(Array.init)
                    // The runner waits for the answer: nothing follows it in this read.
                    case .startChild(let start): child = start
                    case .result(let outcome) where outcome.reusable && state.exitStatus == nil:
                        // The runner waits for its next instance: this one has ended.
                        handedBack = outcome
                        state.assignment = nil
                    case .result(let outcome): state.result = outcome
                    case nil: out.append(LogLine(at: .now(), level: .info, text: String(decoding: line, as: UTF8.self)))
                    }
                }
                state.stdoutBuffer.removeSubrange(..<start)
            } else {
                state.stderrBuffer += bytes.readableBytesView
                var start = 0
                while let newline = state.stderrBuffer[start...].firstIndex(of: 0x0A) {
                    out.append(
                        LogLine(
                            at: .now(), level: .error,
                            text: String(decoding: state.stderrBuffer[start..<newline], as: UTF8.self)))
                    start = newline + 1
                }
                state.stderrBuffer.removeSubrange(..<start)
            }
            return (assignment, handlers, (attachments, suspended), out, steps, handedBack, child)
        }
        guard let assignment else { return }
        if let handlers { assignment.onHandlers(handlers) }
        if let attachments = blobs.attachments { assignment.onAttachments(attachments) }
        if let suspended = blobs.state { assignment.onState(suspended) }
        if !lines.isEmpty { assignment.onLog(lines) }
        if !steps.isEmpty { assignment.onSteps(steps) }
        if let child { assignment.onStartChild(child) }
        if let handedBack { assignment.onEnd(.handedBack(handedBack)) }
    }

    private func streamClosed(stdout: Bool) {
        let (assignment, leftover) = state.withLock { state -> (Assignment?, [UInt8]) in
            state.openStreams -= 1
            defer { if !stdout { state.stderrBuffer = [] } }
            return (state.assignment, stdout ? [] : state.stderrBuffer)
        }
        if !leftover.isEmpty, let assignment {
            assignment.onLog([LogLine(at: .now(), level: .error, text: String(decoding: leftover, as: UTF8.self))])
        }
        finishIfDone()
    }

    /// A wait status in words: "killed by signal 9" rather than the raw number (a sandboxed
    /// runner's bubblewrap exits with 128 + the signal that killed the runner inside it).
    static func describe(status: Int32) -> String {
        guard status >= 0 else { return "it did not start" }
        let signal = status & 0x7F
        if signal != 0 && signal != 0x7F { return "killed by signal \(signal)" }
        let code = (status >> 8) & 0xFF
        if code > 128 && code < 128 + 65 { return "exit status \(code): killed by signal \(code - 128)" }
        return "exit status \(code)"
    }

    private func exited(_ status: Int32) {
        state.withLock { $0.exitStatus = status }
        finishIfDone()
    }

    private func finishIfDone() {
        let outcome = state.withLock { state -> (Assignment?, RunnerOutcome)? in
            guard !state.ended, state.openStreams == 0, let status = state.exitStatus else { return nil }
            state.ended = true
            defer { state.assignment = nil }
            return (state.assignment, .exited(state.result, status: status, began: state.began))
        }
        guard let (assignment, end) = outcome else { return }
        input.whenSuccess { $0.close(promise: nil) }
        let home = home
        RunnerProcess.sweeper.async { try? FileManager.default.removeItem(atPath: home) }
        if let assignment {
            assignment.onEnd(end)
        } else {
            onIdleExit(self)
        }
    }
}

/// Hands a pipe's bytes and its end to closures.
private final class StreamHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let onData: @Sendable (ByteBuffer) -> Void
    let onClose: @Sendable () -> Void

    init(onData: @escaping @Sendable (ByteBuffer) -> Void, onClose: @escaping @Sendable () -> Void) {
        self.onData = onData
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onData(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
