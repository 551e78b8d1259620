import EventLog
import Logging

@testable import Scheduler

/// A Scheduler run loop over `log`, with its payloads and sockets under `root` (none is opened:
/// the tests call the core directly) and executors never declared lost on their own.
func schedulerCore(root: String, log: FileEventLog, fsync: Bool) async throws -> SchedulerCore {
    let config = SchedulerConfig(
        dataDirectory: root, commandsURL: "ipc://\(root)/commands.ipc", eventsURL: "ipc://\(root)/events.ipc",
        executorsURL: "ipc://\(root)/executors.ipc", fsync: fsync, executorLossTimeout: .seconds(600),
        maxCommandBytes: 1 << 20)
    return try await SchedulerCore(
        log: log, payloads: try PayloadStore(directory: root + "/payloads", fsync: fsync), config: config,
        logger: Logger(label: "test"))
}
