/// An executor introducing itself (first contact, or again after a Scheduler restart).
package struct ExecutorRegistration: Sendable, Codable, Hashable {
    /// The executor (one boot of it).
    package var executorID: ExecutorID
    /// Where it listens for dispatch and cancel.
    package var address: String
    /// How many instances it runs at once.
    package var capacity: Int
    /// The instances it is running now.
    package var running: [InstanceID]

    package init(executorID: ExecutorID, address: String, capacity: Int, running: [InstanceID]) {
        self.executorID = executorID
        self.address = address
        self.capacity = capacity
        self.running = running
    }
}

/// What an executor saw happen to an instance.
package enum ReportKind: Sendable, Codable, Hashable {
    /// The runner started.
    case started
    /// The process wrote these lines.
    case log(lines: [LogLine])
    /// The flow executed these steps.
    case steps(records: [StepRecord])
    /// The flow ran to its end.
    case finished(out: [String: JSONValue])
    /// The flow failed, or could not start.
    case failed(error: String, out: [String: JSONValue])
}

/// One report, numbered per executor boot so the Scheduler applies each once.
package struct Report: Sendable, Codable, Hashable {
    /// From 1, increasing by one per report.
    package var seq: UInt64
    /// The instance it is about.
    package var instanceID: InstanceID
    /// What happened.
    package var kind: ReportKind
    /// When the executor saw it.
    package var at: Timestamp

    package init(seq: UInt64, instanceID: InstanceID, kind: ReportKind, at: Timestamp) {
        self.seq = seq
        self.instanceID = instanceID
        self.kind = kind
        self.at = at
    }
}

/// Executor → Scheduler, over req/rep.
package enum ExecutorRequest: Sendable, Codable {
    /// First contact, or again after the Scheduler forgot this executor.
    case register(ExecutorRegistration)
    /// Still alive.
    case heartbeat(executorID: ExecutorID)
    /// Reports in order; the reply acknowledges them once durable.
    case reports(executorID: ExecutorID, reports: [Report])
}

/// Scheduler → Executor replies.
package enum ExecutorReply: Sendable, Codable {
    /// Everything up to this report sequence number is durable.
    case ack(upTo: UInt64)
    /// This Scheduler does not know the executor: register again, then resend.
    case unknownExecutor
    /// Could not record now (storage trouble): resend later.
    case unavailable(message: String)
}

/// What an executor needs to run an instance; the ZIP travels as the frame's attachment.
package struct Dispatch: Sendable, Codable, Hashable {
    /// The instance.
    package var instanceID: InstanceID
    /// 1 for the first dispatch.
    package var attempt: Int
    /// `_main.json`'s `entryPoint`.
    package var entryPoint: String?
    /// `_main.json`'s `arguments`.
    package var arguments: [String: JSONValue]
    /// `_main.json`'s `out`.
    package var out: [String]

    package init(
        instanceID: InstanceID, attempt: Int, entryPoint: String?, arguments: [String: JSONValue], out: [String]
    ) {
        self.instanceID = instanceID
        self.attempt = attempt
        self.entryPoint = entryPoint
        self.arguments = arguments
        self.out = out
    }
}

/// Scheduler → Executor, over req/rep (the executor listens).
package enum ExecutorCommand: Sendable, Codable {
    /// Run this instance.
    case dispatch(Dispatch)
    /// Kill this instance's runner and everything it started.
    case cancel(instanceID: InstanceID)
}

/// Executor → Scheduler replies to commands.
package enum ExecutorCommandReply: Sendable, Codable, Hashable {
    /// Taken on.
    case accepted
    /// Not taken on, and why (full, shutting down).
    case refused(reason: String)
}
