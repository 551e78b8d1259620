import Foundation
import Synchronization

/// A process a test started, whose end is awaited without holding a thread.
///
/// The suites share one cooperative pool of two threads on this kind of machine. A test that
/// blocks one of them (`Process.waitUntilExit`, a read to the end of a pipe, a sleep in a loop)
/// for as long as its child runs makes every other test's work wait behind it, and liveness
/// bounds that have nothing to do with it fail when the machine is busy. So a child's exit
/// resumes its waiters from Foundation's termination handler, and its output goes to files, read
/// once it has ended.
package final class Child: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [UUID: CheckedContinuation<Int32?, Never>] = [:]
    }

    package var pid: Int32 { process.processIdentifier }
    private let state = Mutex(State())
    /// Held until it ends: its termination handler holds this child in turn, so that a child a
    /// test let go of still runs to its end and is reaped.
    private let process = Process()

    /// Starts `program`. Its standard output and error are appended to the files at `output` and
    /// `errors` (`errors` nil: to `output` too; both nil: discarded); its input is empty.
    package init(
        _ program: String, _ arguments: [String], environment: [String: String]? = nil, output: String? = nil,
        errors: String? = nil
    ) throws {
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        let out = try Child.appending(to: output)
        process.standardOutput = out
        process.standardError = errors == nil ? out : try Child.appending(to: errors)
        process.terminationHandler = { ended in self.finish(ended.terminationStatus) }
        try process.run()
    }

    private static func appending(to path: String?) throws -> FileHandle {
        guard let path else { return FileHandle.nullDevice }
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw TestFailure("cannot write \(path)") }
        handle.seekToEndOfFile()
        return handle
    }

    private func finish(_ status: Int32) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        process.terminationHandler = nil
        for waiter in waiters { waiter.resume(returning: status) }
    }

    /// Its exit status (the signal's number if a signal ended it), once it has ended.
    package var exitStatus: Int32? { state.withLock { $0.status } }

    package var isRunning: Bool { exitStatus == nil }

    /// Sends `signal` unless it has ended (its pid may then be another process's).
    package func signal(_ signal: Int32) {
        state.withLock { state in
            if state.status == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits for its end and returns its exit status, or nil once `limit` has passed.
    package func exit(within limit: Duration? = nil) async -> Int32? {
        let id = UUID()
        return await withCheckedContinuation { waiter in
            let ended = state.withLock { state -> Int32? in
                if state.status == nil { state.waiters[id] = waiter }
                return state.status
            }
            if let ended {
                waiter.resume(returning: ended)
            } else if let limit {
                Task {
                    try? await Task.sleep(for: limit)
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
                }
            }
        }
    }

    /// Runs `program` to its end: its exit status, standard output and standard error.
    package static func run(
        _ program: String, _ arguments: [String], environment: [String: String]? = nil
    ) async throws -> (status: Int32, out: String, err: String) {
        let base = NSTemporaryDirectory() + "accord-child-" + UUID().uuidString
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        let child = try Child(
            program, arguments, environment: environment, output: base + ".out", errors: base + ".err")
        let status = await child.exit() ?? -1
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return (status, read(base + ".out"), read(base + ".err"))
    }
}
