import Archive
import ArgumentParser
import Foundation
import Logging
import Model
import ServiceLifecycle
import Transport
import Wire

/// `accord-executor`: runs instances for the Scheduler, each in a runner child process
/// (`accord-runner`).
@main
struct ExecutorMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accord-executor", abstract: "Runs process instances for the Scheduler.",
        subcommands: [Serve.self], defaultSubcommand: Serve.self)

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Run instances for the Scheduler.")

        @Option(help: "Data folder (ipc sockets and working folders live under it).") var data = "./data"
        @Option(help: "This executor's name (unique per deployment).") var name = "executor-1"
        @Option(help: "The Scheduler's executor link (default ipc://<data>/run/executors.ipc).") var scheduler: String?
        @Option(help: "Where to listen for dispatches (default ipc://<data>/run/<name>.ipc).") var listen: String?
        @Option(help: "Instances run at once.") var capacity = 16
        @Option(help: "Largest unpacked payload, in bytes.") var maxUnpackedBytes = 256 << 20
        @Option(help: "Most entries in a payload.") var maxEntries = 10_000
        @Option(help: "Log text one instance may write, in bytes; further output is dropped after a marker line.")
        var maxLogBytes = 16 << 20
        @Option(help: "Processes (and threads) one instance may run at once.") var maxProcesses = 512
        @Option(help: "Memory one instance may use, in bytes.") var maxMemoryBytes = 2 << 30
        @Option(help: "Open files per process of an instance.") var maxOpenFiles = 1024
        @Option(help: "Runners kept started ahead of need (each takes the next instance without a process start).")
        var warmRunners = 4
        @Option(help: "Instances one runner may run in turn (only instances that started no process hand it on).")
        var runnerInstances = 1000
        @Option(help: "The runner program (default: accord-runner next to this binary).") var runner: String?
        @Flag(help: "Do not put instances in control groups (process and memory limits are then not enforced).")
        var noControlGroups = false
        @Flag(help: "Run instances without a sandbox, as this executor's user, seeing what it sees (logged loudly).")
        var unsandboxed = false
        @Flag(help: "Give sandboxed instances an empty network namespace (no network at all).")
        var noNetwork = false
        @Option(help: "The bubblewrap program.") var bwrap = "/usr/bin/bwrap"
        @Option(help: "The unprivileged user (uid[:gid]) sandboxed instances run as; never root.")
        var sandboxUser = "65534:65534"
        @OptionGroup var transport: TransportOptions

        /// `--sandbox-user` read as a uid and gid.
        var sandboxIDs: (uid: uid_t, gid: gid_t)? {
            let parts = sandboxUser.split(separator: ":", omittingEmptySubsequences: false)
            guard (1...2).contains(parts.count), let uid = UInt32(parts[0]), uid != 0 else { return nil }
            guard parts.count == 2 else { return (uid, uid) }
            guard let gid = UInt32(parts[1]), gid != 0 else { return nil }
            return (uid, gid)
        }

        func validate() throws {
            for (name, value, least) in [
                ("--capacity", capacity, 1), ("--max-unpacked-bytes", maxUnpackedBytes, 1),
                ("--max-entries", maxEntries, 1), ("--max-log-bytes", maxLogBytes, 1),
                ("--max-processes", maxProcesses, 1), ("--max-memory-bytes", maxMemoryBytes, 1 << 20),
                ("--max-open-files", maxOpenFiles, 16), ("--warm-runners", warmRunners, 0),
                ("--runner-instances", runnerInstances, 1),
            ] where value < least {
                throw ValidationError("\(name) must be at least \(least) (got \(value))")
            }
            guard sandboxIDs != nil else {
                throw ValidationError("--sandbox-user must be uid or uid:gid, neither 0 (got '\(sandboxUser)')")
            }
            if unsandboxed, noNetwork {
                throw ValidationError("--no-network needs the sandbox; it cannot be used with --unsandboxed")
            }
        }

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let urls = try transport.secure(
                [scheduler ?? "ipc://\(data)/run/executors.ipc", listen ?? "ipc://\(data)/run/\(name).ipc"],
                component: "executor", logger: Logger(label: "accord.executor"))
            let config = ExecutorConfig(
                name: name, schedulerURL: urls[0], listenURL: urls[1],
                capacity: capacity,
                workRoot: "\(data)/work/\(name)",
                zipLimits: ZipLimits(maxEntries: maxEntries, maxUnpackedBytes: maxUnpackedBytes),
                maxLogBytes: maxLogBytes,
                limits: InstanceLimits(
                    maxProcesses: maxProcesses, maxMemoryBytes: maxMemoryBytes, maxOpenFiles: maxOpenFiles),
                useControlGroups: !noControlGroups, warmRunners: warmRunners, runnerInstances: runnerInstances,
                runnerCommand: runner.map { [$0] },
                sandbox: unsandboxed
                    ? .none
                    : .bubblewrap(uid: sandboxIDs!.uid, gid: sandboxIDs!.gid, network: !noNetwork),
                bubblewrap: bwrap)
            try await ExecutorService.build(config).run()
        }
    }
}
