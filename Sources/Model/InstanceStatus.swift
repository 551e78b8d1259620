/// Where an instance stands. Statuses only move forward; the four terminal ones never change again.
package enum InstanceStatus: String, Sendable, Codable, CaseIterable {
    /// Accepted and durable, waiting for an executor.
    case enqueued = "ENQUEUED"
    /// Assigned to an executor, which is unpacking it.
    case starting = "STARTING"
    /// Its runner is running the flow.
    case running = "RUNNING"
    /// The flow ran to its end.
    case finished = "FINISHED"
    /// An unhandled error, a definition error, or a lost executor.
    case failed = "FAILED"
    /// Stopped by `DELETE`.
    case cancelled = "CANCELLED"
    /// Ran past the timeout of its `_main.json`.
    case timedOut = "TIMED_OUT"

    /// Whether no event can change this status again.
    package var isTerminal: Bool { rank == 3 }

    /// The order statuses move in; all terminal statuses share the last rank.
    package var rank: Int {
        switch self {
        case .enqueued: 0
        case .starting: 1
        case .running: 2
        case .finished, .failed, .cancelled, .timedOut: 3
        }
    }
}
