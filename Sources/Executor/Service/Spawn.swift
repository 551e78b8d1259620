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
        // The child's ends are its own once it runs (or useless if it does not).
        defer {
            close(input[0])
            close(output[1])
            close(errors[1])
        }
        let pid: pid_t
        do {
            pid = try ChildReaper.shared.spawning { posix_spawn(&$0, executable, &actions, &attributes, argv, environ) }
        } catch {
            close(input[1])
            close(output[0])
            close(errors[0])
            throw SpawnError("cannot start \(executable): \(error)")
        }
        return SpawnedChild(pid: pid, stdin: input[1], stdout: output[0], stderr: errors[0])
    }
}

struct SpawnError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One thread that reaps the children this process spawned through it, and only those, and reports
/// each exit status to whoever spawned it. Each child is watched through a pidfd in one epoll set:
/// no polling, no thread per child, and no `waitpid(-1)`, which would also reap children that other
/// code in the process spawned and waits for itself (a script step's shell, Foundation's `Process`):
/// their owners would then see `ECHILD` and take a failed script for a successful one.
final class ChildReaper: Sendable {
    static let shared = ChildReaper()

    private struct Watched {
        /// pidfd → the child it stands for, until the child is reaped.
        var children: [Int32: pid_t] = [:]
        var handlers: [pid_t: @Sendable (Int32) -> Void] = [:]
        /// Exit statuses that arrived before anyone asked for them.
        var early: [pid_t: Int32] = [:]
    }

    private let epoll: Int32
    private let watched = Mutex(Watched())

    private init() {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epoll >= 0, "epoll_create1: \(String(cString: strerror(errno)))")
        let thread = Thread { [self] in self.loop() }
        thread.name = "accord-reaper"
        thread.start()
    }

    /// Runs a spawn, then watches the new child. A child that cannot be watched (a kernel without
    /// pidfds) is killed and reaped at once, and the spawn fails: it would otherwise never be
    /// reported.
    func spawning(_ body: (inout pid_t) -> Int32) throws(SpawnError) -> pid_t {
        var pid: pid_t = 0
        let result = body(&pid)
        guard result == 0 else { throw SpawnError(String(cString: strerror(result))) }
        let pidfd = accord_pidfd_open(pid)
        guard pidfd >= 0 else {
            let reason = String(cString: strerror(errno))
            _ = kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            throw SpawnError("cannot watch the child (pidfd_open: \(reason); Linux 5.3 or later is needed)")
        }
        watched.withLock { $0.children[pidfd] = pid }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = pidfd
        precondition(epoll_ctl(epoll, EPOLL_CTL_ADD, pidfd, &event) == 0, "epoll_ctl: \(errno)")
        return pid
    }

    /// Calls `handler` with the wait status once `pid` exits (at once if it already has).
    func onExit(_ pid: pid_t, _ handler: @escaping @Sendable (Int32) -> Void) {
        let status = watched.withLock { watched -> Int32? in
            if let status = watched.early.removeValue(forKey: pid) { return status }
            watched.handlers[pid] = handler
            return nil
        }
        if let status { handler(status) }
    }

    private func loop() {
        var events = [epoll_event](repeating: epoll_event(), count: 32)
        while true {
            let ready = epoll_wait(epoll, &events, Int32(events.count), -1)
            if ready < 0 {
                precondition(errno == EINTR, "epoll_wait: \(String(cString: strerror(errno)))")
                continue
            }
            for event in events[0..<Int(ready)] {
                let pidfd = event.data.fd
                guard let pid = watched.withLock({ $0.children[pidfd] }) else { continue }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                // Forgotten before the pidfd is closed: once closed, its number can come back at
                // once for the next child's pidfd, whose entry must not be the one removed here.
                let handler = watched.withLock { watched -> (@Sendable (Int32) -> Void)? in
                    watched.children[pidfd] = nil
                    guard let handler = watched.handlers.removeValue(forKey: pid) else {
                        watched.early[pid] = status
                        return nil
                    }
                    return handler
                }
                epoll_ctl(epoll, EPOLL_CTL_DEL, pidfd, nil)
                close(pidfd)
                handler?(status)
            }
        }
    }
}
