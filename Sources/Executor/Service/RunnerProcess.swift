import Events
import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// One runner child process. Its stdout carries `RunnerMessage` lines, read on NIO's event loop
/// (no thread per runner); its stderr is kept as log lines (a crashing runner says why); its stdin
/// stays open while the executor lives. `onEnd` fires once the runner has exited and both of its
/// output streams are drained, so the outcome always follows the last log line.
final class RunnerProcess: Sendable {
    private struct State {
        var stdoutBuffer: [UInt8] = []
        var stderrBuffer: [UInt8] = []
        var result: RunnerResult?
        var openStreams = 2
        var exitStatus: Int32?
        var ended = false
    }

    let pid: pid_t
    private let stdinFD: Int32
    private let state = Mutex(State())
    private let onLog: @Sendable ([LogLine]) -> Void
    private let onSteps: @Sendable ([StepRecord]) -> Void
    private let onEnd: @Sendable (RunnerResult?, Int32) -> Void

    /// Sweeping a control group kills and waits (up to half a second): on a serial queue of its own,
    /// never on `DispatchQueue.global()`, whose threads on Linux are the Swift cooperative pool.
    private static let sweeper = DispatchQueue(label: "accord.cgroup.sweep")

    /// Writing "go" to a runner that has already died must not kill the executor.
    private static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    init(
        executable: String, requestPath: String, group: InstanceGroup? = nil,
        onLog: @escaping @Sendable ([LogLine]) -> Void, onSteps: @escaping @Sendable ([StepRecord]) -> Void,
        onEnd: @escaping @Sendable (RunnerResult?, Int32) -> Void
    ) throws {
        self.onLog = onLog
        self.onSteps = onSteps
        self.onEnd = onEnd
        RunnerProcess.ignoreSIGPIPE
        let child = try SpawnedChild.spawn(executable, ["runner", requestPath])
        self.pid = child.pid
        self.stdinFD = child.stdin
        if let group, !group.add(child.pid) {
            _ = Glibc.kill(-child.pid, SIGKILL)
            group.killAllAndRemove()
            throw SpawnError("cannot put the runner in its control groups (\(group.directories))")
        }
        var go: UInt8 = 0x67
        _ = write(child.stdin, &go, 1)
        let loops = MultiThreadedEventLoopGroup.singleton
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

    /// Kills the runner's process group (the runner and everything it started) at once.
    func kill() {
        _ = Glibc.kill(-pid, SIGKILL)
    }

    private func consume(_ bytes: ByteBuffer, stdout: Bool) {
        let (lines, steps) = state.withLock { state -> ([LogLine], [StepRecord]) in
            var out: [LogLine] = []
            var steps: [StepRecord] = []
            if stdout {
                state.stdoutBuffer += bytes.readableBytesView
                while let newline = state.stdoutBuffer.firstIndex(of: 0x0A) {
                    let line = Array(state.stdoutBuffer[..<newline])
                    state.stdoutBuffer.removeSubrange(...newline)
                    switch try? JSONDecoder().decode(RunnerMessage.self, from: Data(line)) {
                    case .log(let logLine): out.append(logLine)
                    case .steps(let records): steps += records
                    case .result(let outcome): state.result = outcome
                    case nil: out.append(LogLine(at: .now(), level: .info, text: String(decoding: line, as: UTF8.self)))
                    }
                }
            } else {
                state.stderrBuffer += bytes.readableBytesView
                while let newline = state.stderrBuffer.firstIndex(of: 0x0A) {
                    let text = String(decoding: state.stderrBuffer[..<newline], as: UTF8.self)
                    state.stderrBuffer.removeSubrange(...newline)
                    out.append(LogLine(at: .now(), level: .error, text: text))
                }
            }
            return (out, steps)
        }
        if !lines.isEmpty { onLog(lines) }
        if !steps.isEmpty { onSteps(steps) }
    }

    private func streamClosed(stdout: Bool) {
        let leftover = state.withLock { state -> [UInt8] in
            state.openStreams -= 1
            defer { if !stdout { state.stderrBuffer = [] } }
            return stdout ? [] : state.stderrBuffer
        }
        if !leftover.isEmpty {
            onLog([LogLine(at: .now(), level: .error, text: String(decoding: leftover, as: UTF8.self))])
        }
        finishIfDone()
    }

    private func exited(_ status: Int32) {
        state.withLock { $0.exitStatus = status }
        finishIfDone()
    }

    private func finishIfDone() {
        let outcome = state.withLock { state -> (RunnerResult?, Int32)? in
            guard !state.ended, state.openStreams == 0, let status = state.exitStatus else { return nil }
            state.ended = true
            return (state.result, status)
        }
        guard let (result, status) = outcome else { return }
        close(stdinFD)
        onEnd(result, status)
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
