import JSON

/// What a flow asks for when it starts a child instance (`- task: concord`, `action: start` or
/// `fork`): another flow of its own payload, for its own team.
package struct ChildStart: Sendable, Hashable, Codable {
    /// The flow the child starts at; nil: the payload's own entry point.
    package var entryPoint: String?
    /// The child's arguments (for a fork, the parent's own arguments with these over them).
    package var arguments: [String: JSONValue]
    /// The child's variables to send back to a parent that waits (`outVars`).
    package var out: [String]
    package var tags: [String]
    /// The parent waits for the child (`sync: true`), suspended.
    package var sync: Bool
    /// `action: fork`: the child starts with the parent's arguments under `arguments`.
    package var fork: Bool

    package init(
        entryPoint: String?, arguments: [String: JSONValue], out: [String] = [], tags: [String] = [],
        sync: Bool = false, fork: Bool = false
    ) {
        self.entryPoint = entryPoint
        self.arguments = arguments
        self.out = out
        self.tags = tags
        self.sync = sync
        self.fork = fork
    }

    /// How deep children may nest (a flow that starts itself as a child stops there).
    package static let maxGenerations = 32

    /// The suspend event of a parent waiting for `child`: the Scheduler resumes it, never a client.
    package static func waitEvent(for child: InstanceID) -> String { waitEventPrefix + child.description }
    package static let waitEventPrefix = "child:"
}

/// How a child instance ended, as its waiting parent resumes with it.
package struct ChildOutcome: Sendable, Hashable, Codable {
    package var id: InstanceID
    /// Its terminal status.
    package var status: InstanceStatus
    /// Its `out` variables (`outVars`), when it finished or failed.
    package var out: [String: JSONValue]
    /// Why it failed, was cancelled or timed out.
    package var error: String?

    package init(id: InstanceID, status: InstanceStatus, out: [String: JSONValue], error: String?) {
        self.id = id
        self.status = status
        self.out = out
        self.error = error
    }

    /// The outcome a terminal event records (nil for any other event).
    package init?(id: InstanceID, ending event: Event) {
        switch event {
        case .instanceFinished(let e): self.init(id: id, status: .finished, out: e.out, error: nil)
        case .instanceFailed(let e): self.init(id: id, status: .failed, out: e.out, error: e.error)
        case .instanceCancelled(let e): self.init(id: id, status: .cancelled, out: [:], error: e.reason)
        case .instanceTimedOut(let e): self.init(id: id, status: .timedOut, out: [:], error: e.error)
        default: return nil
        }
    }
}
