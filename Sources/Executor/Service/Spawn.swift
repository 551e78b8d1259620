import CSupport
import Foundation
import Synchronization

/// Starts a child process with `posix_spawn`, in a new process group of its own (set atomically
/// at spawn, so a kill can never miss a child that has not called `setpgid` yet), with pipes for
/// its stdin, stdout and stderr and every other descriptor closed.
struct SpawnedChild {
    let pid: pid_t
    /// Our end of the child's stdin (kept open: the child watches it to notice our death).
    let stdin: Int32
    let stdout: Int32
    let stderr: Int32

    static func spawn(_ executable: String, _ arguments: [String]) throws -> SpawnedChild {
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        var errors: [Int32] = [0, 0]
        guard accord_pipe_cloexec(&input) == 0, accord_pipe_cloexec(&output) == 0, accord_pipe_cloexec(&errors) == 0
        else {
            throw SpawnError("cannot create pipes: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        accord_spawn_closefrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = ChildReaper.shared.spawning {
            posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        }
        close(input[0])
        close(output[1])
        close(errors[1])
        guard spawned == 0 else {
            close(input[1])
            close(output[0])
            close(errors[0])
            throw SpawnError("cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        return SpawnedChild(pid: pid, stdin: input[1], stdout: output[0], stderr: errors[0])
    }
}

struct SpawnError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One thread that reaps every child of this process and reports each exit status to whoever
/// spawned it. It blocks in `waitpid` while children exist and sleeps on a condition otherwise:
/// no polling, and no thread per child.
final class ChildReaper: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `condition`.
    static let shared = ChildReaper()

    private let condition = NSCondition()
    private var children = 0
    private var handlers: [pid_t: @Sendable (Int32) -> Void] = [:]
    private var early: [pid_t: Int32] = [:]

    private init() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "accord-reaper"
        thread.start()
    }

    /// Runs a spawn, then counts the new child. Counting only after the child exists matters: a
    /// count raised before the spawn lets the reaper call `waitpid` too early, see `ECHILD`, and
    /// lose track of the child that follows.
    func spawning(_ body: () -> Int32) -> Int32 {
        let result = body()
        if result == 0 {
            condition.lock()
            children += 1
            condition.signal()
            condition.unlock()
        }
        return result
    }

    /// Calls `handler` with the wait status once `pid` exits (at once if it already has).
    func onExit(_ pid: pid_t, _ handler: @escaping @Sendable (Int32) -> Void) {
        condition.lock()
        if let status = early.removeValue(forKey: pid) {
            condition.unlock()
            handler(status)
            return
        }
        handlers[pid] = handler
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while children == 0 { condition.wait() }
            condition.unlock()
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid <= 0 {
                if errno == ECHILD {
                    condition.lock()
                    children = 0
                    condition.unlock()
                }
                continue
            }
            condition.lock()
            children -= 1
            let handler = handlers.removeValue(forKey: pid)
            if handler == nil { early[pid] = status }
            condition.unlock()
            handler?(status)
        }
    }
}
