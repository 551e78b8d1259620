import Archive
import Model
import Wire

/// Everything the Executor reads from its command line, with the defaults documented in the README.
struct ExecutorConfig: Sendable {
    /// This executor's name; its id is `<name>/<boot>`.
    var name: String
    /// The Scheduler's executor link (req/rep).
    var schedulerURL: String
    /// Where this executor listens for dispatch and cancel.
    var listenURL: String
    /// Instances run at once.
    var capacity: Int
    /// Where instances' working folders are made.
    var workRoot: String
    /// Limits for unpacking payloads (the Gateway checked them too).
    var zipLimits: ZipLimits
    /// Log text one instance may write; beyond it, output is dropped after one marker line.
    var maxLogBytes: Int = 16 << 20
    /// What each instance may use.
    var limits = InstanceLimits()
    /// Put each instance in control groups of its own (when the system lets the executor).
    var useControlGroups = true
    /// Runners started ahead of need, waiting for an instance.
    var warmRunners = 4
    /// Instances one runner may run in turn (only instances that started no process hand it on).
    var runnerInstances = 1000
    /// The runner program (`accord-runner`) and its first arguments; nil means the one installed
    /// next to this executor's binary.
    var runnerCommand: [String]? = nil
    /// Where instances run: sandboxed unless `--unsandboxed`.
    var sandbox: Sandbox.Mode
    /// The bubblewrap program.
    var bubblewrap = "/usr/bin/bwrap"
    /// Interval between heartbeats.
    var heartbeat: Duration = .seconds(1)
}
