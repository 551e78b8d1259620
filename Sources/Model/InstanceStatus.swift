/// Where an instance stands. Statuses only move forward (`canMove(to:)`), except that a suspended
/// instance comes back to RUNNING through RESUMING; the four terminal ones never change again.
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
    /// Stopped at a `suspend` step, durably, with no executor: waits for its resume event.
    case suspended = "SUSPENDED"
    /// Resumed: waits for an executor to go on from the step after its `suspend`.
    case resuming = "RESUMING"

    /// Whether no event can change this status again.
    package var isTerminal: Bool { rank == 3 }

    /// The order statuses move in; all terminal statuses share the last rank (a suspended or
    /// resuming instance has been running: `canMove(to:)` holds the whole rule).
    package var rank: Int {
        switch self {
        case .enqueued: 0
        case .starting: 1
        case .running, .suspended, .resuming: 2
        case .finished, .failed, .cancelled, .timedOut: 3
        }
    }

    /// Whether an instance at this status may move to `next`: forward through ENQUEUED, STARTING,
    /// RUNNING; RUNNING to SUSPENDED to RESUMING to RUNNING again; anything live to a terminal status.
    package func canMove(to next: InstanceStatus) -> Bool {
        if isTerminal { return false }
        if next.isTerminal { return true }
        switch self {
        case .enqueued: return next == .starting || next == .running
        case .starting: return next == .running
        case .running: return next == .suspended
        case .suspended: return next == .resuming
        case .resuming: return next == .running
        case .finished, .failed, .cancelled, .timedOut: return false
        }
    }

    /// Waiting for an executor or for one to start it: ENQUEUED, STARTING, RESUMING.
    package var awaitsExecutor: Bool { self == .enqueued || self == .starting || self == .resuming }
}
