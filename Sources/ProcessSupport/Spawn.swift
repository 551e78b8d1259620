import CSupport
import Foundation

/// The one place this code base calls `posix_spawn`: the executor starting a runner, a runner
/// starting a script step. Every other descriptor is closed in the child (none leaks into user
/// code), and the signal mask and dispositions are reset, so a child never inherits what its parent
/// blocked or ignored.
package enum Spawn {
    /// Where a child's standard descriptor comes from.
    package enum Input: Sendable {
        /// `/dev/null` (a script step reads nothing).
        case null
        /// A new pipe; our end is returned.
        case pipe
    }

    /// Where a child's stdout and stderr go.
    package enum Output: Sendable {
        /// One pipe each; our ends are returned.
        case separate
        /// Both into one pipe, in the order they were written (a script step's log).
        case merged
    }

    /// A started child and our ends of its pipes (-1 where there is none).
    package struct Child: Sendable {
        package let pid: pid_t
        package let stdin: Int32
        package let stdout: Int32
        package let stderr: Int32
    }

    /// Starts `argv[0]` with `argv`.
    ///
    /// - Parameters:
    ///   - environment: the child's environment; nil passes this process's own.
    ///   - directory: the child's working folder; nil keeps ours.
    ///   - ownProcessGroup: the child leads a new process group, set atomically at spawn, so a kill
    ///     of the group can never miss a child that has not called `setpgid` yet.
    ///   - start: calls `posix_spawn` (given as its arguments); `ChildReaper.spawning` passes it
    ///     through so that it watches the child from its first instant.
    package static func start(
        _ argv: [String], environment: [String: String]? = nil, directory: String? = nil, stdin: Input,
        output: Output, ownProcessGroup: Bool,
        start: (_ spawn: (inout pid_t) -> Int32) throws -> pid_t = Spawn.unwatched
    ) throws -> Child {
        precondition(!argv.isEmpty, "nothing to start")
        // Our ends, then the child's ends; closed on every path below.
        var input: [Int32] = [-1, -1]
        var out: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        func closeAll(_ fds: [Int32]) { for fd in fds where fd >= 0 { close(fd) } }
        guard stdin == .null || accord_pipe_cloexec(&input) == 0, accord_pipe_cloexec(&out) == 0,
            output == .merged || accord_pipe_cloexec(&errors) == 0
        else {
            let reason = String(cString: strerror(errno))
            closeAll(input + out + errors)
            throw SpawnError("cannot create pipes: \(reason)")
        }
        // The child's ends are its own once it runs (or useless if it does not).
        defer { closeAll([input[0], out[1], errors[1]]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch stdin {
        case .null: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        case .pipe: posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output == .merged ? out[1] : errors[1], 2)
        accord_spawn_closefrom(&actions, 3)
        if let directory { accord_spawn_chdir(&actions, directory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup { flags |= POSIX_SPAWN_SETPGROUP }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        posix_spawnattr_setpgroup(&attributes, 0)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            cArguments.forEach { free($0) }
            cEnvironment?.forEach { free($0) }
        }
        let pid: pid_t
        do {
            pid = try start { pid in
                if let cEnvironment {
                    return posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, cEnvironment)
                }
                return posix_spawn(&pid, argv[0], &actions, &attributes, cArguments, environ)
            }
        } catch {
            closeAll([input[1], out[0], errors[0]])
            throw SpawnError("cannot start \(argv[0]): \(error)")
        }
        return Child(pid: pid, stdin: input[1], stdout: out[0], stderr: errors[0])
    }

    /// Spawns without a reaper: the caller waits for the child itself (`waitpid(pid)`).
    package static func unwatched(_ spawn: (inout pid_t) -> Int32) throws -> pid_t {
        var pid: pid_t = 0
        let result = spawn(&pid)
        guard result == 0 else { throw SpawnError(String(cString: strerror(result))) }
        return pid
    }

    /// `waitpid` for one child, as a shell reports it: the exit status, or 128 + the signal.
    package static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return exitCode(status)
    }

    /// A wait status as a shell reports it: the exit status, or 128 + the signal that ended it.
    package static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}

package struct SpawnError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
