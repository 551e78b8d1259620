import Events
import Foundation

/// One runner child process and the pipes to it. Its stdout carries `RunnerMessage` lines; its
/// stderr is kept as log lines (a crashing runner says why); its stdin stays open while the
/// executor lives.
final class RunnerProcess: @unchecked Sendable {
    // @unchecked: `process` and the pipes are set up once in `start` and only read afterwards;
    // `buffer`, `stderrBuffer` and `result` are touched only on the serial `queue`.
    let instanceID: InstanceID
    private let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    private let stderr = Pipe()
    private let queue: DispatchQueue
    private var buffer = Data()
    private var stderrBuffer = Data()
    private var result: RunnerResult?
    private var openStreams = 2
    private var exited = false
    private let onLog: @Sendable ([LogLine]) -> Void
    private let onEnd: @Sendable (RunnerResult?, Int32) -> Void

    init(
        instanceID: InstanceID, onLog: @escaping @Sendable ([LogLine]) -> Void,
        onEnd: @escaping @Sendable (RunnerResult?, Int32) -> Void
    ) {
        self.instanceID = instanceID
        self.queue = DispatchQueue(label: "accord.runner.\(instanceID)")
        self.onLog = onLog
        self.onEnd = onEnd
    }

    var pid: Int32 { process.processIdentifier }

    func start(executable: String, requestPath: String, workDir: String) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["runner", requestPath]
        process.currentDirectoryURL = URL(fileURLWithPath: workDir)
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        process.terminationHandler = { [weak self] process in
            guard let self else { return }
            // Whatever the runner left behind in its group dies with it.
            _ = Glibc.kill(-process.processIdentifier, SIGKILL)
            self.queue.async {
                self.exited = true
                self.finishIfDone()
            }
        }
        stdout.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.queue.async { self.consumeStdout(data) }
        }
        stderr.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.queue.async { self.consumeStderr(data) }
        }
        try process.run()
    }

    /// Kills the runner's process group (the runner and everything it started) at once.
    func kill() {
        let pid = process.processIdentifier
        guard pid > 0 else { return }
        if Glibc.kill(-pid, SIGKILL) != 0 { _ = Glibc.kill(pid, SIGKILL) }
    }

    private func consumeStdout(_ data: Data) {
        if data.isEmpty {
            stdout.fileHandleForReading.readabilityHandler = nil
            streamClosed()
            return
        }
        buffer.append(data)
        var lines: [LogLine] = []
        let decoder = JSONDecoder()
        while let newline = buffer.firstIndex(of: 0x0A) {
            let line = buffer[buffer.startIndex..<newline]
            buffer.removeSubrange(buffer.startIndex...newline)
            switch try? decoder.decode(RunnerMessage.self, from: line) {
            case .log(let logLine): lines.append(logLine)
            case .result(let outcome): result = outcome
            case nil: lines.append(LogLine(at: .now(), level: .info, text: String(decoding: line, as: UTF8.self)))
            }
        }
        if !lines.isEmpty { onLog(lines) }
    }

    private func consumeStderr(_ data: Data) {
        if data.isEmpty {
            stderr.fileHandleForReading.readabilityHandler = nil
            if !stderrBuffer.isEmpty {
                onLog([LogLine(at: .now(), level: .error, text: String(decoding: stderrBuffer, as: UTF8.self))])
                stderrBuffer = Data()
            }
            streamClosed()
            return
        }
        stderrBuffer.append(data)
        var lines: [LogLine] = []
        while let newline = stderrBuffer.firstIndex(of: 0x0A) {
            let text = String(decoding: stderrBuffer[stderrBuffer.startIndex..<newline], as: UTF8.self)
            stderrBuffer.removeSubrange(stderrBuffer.startIndex...newline)
            lines.append(LogLine(at: .now(), level: .error, text: text))
        }
        if !lines.isEmpty { onLog(lines) }
    }

    private func streamClosed() {
        openStreams -= 1
        finishIfDone()
    }

    private func finishIfDone() {
        guard exited, openStreams == 0 else { return }
        openStreams = -1
        try? stdin.fileHandleForWriting.close()
        onEnd(result, process.terminationStatus)
    }
}
