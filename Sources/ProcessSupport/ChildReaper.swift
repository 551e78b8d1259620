import CSupport
import Foundation
import Synchronization

/// One thread that reaps the children this process spawned through it, and only those, and reports
/// each exit status to whoever spawned it. Each child is watched through a pidfd in one epoll set:
/// no polling, no thread per child, and no `waitpid(-1)`, which would also reap children that other
/// code in the process spawned and waits for itself (a script step's shell, Foundation's `Process`):
/// their owners would then see `ECHILD` and take a failed script for a successful one.
package final class ChildReaper: Sendable {
    package static let shared = ChildReaper()

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
    package func spawning(_ body: (inout pid_t) -> Int32) throws(SpawnError) -> pid_t {
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
    package func onExit(_ pid: pid_t, _ handler: @escaping @Sendable (Int32) -> Void) {
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
