import JSON

// The events of an instance's life after its own run, and of its pauses: handler flows (decision
// 0015), suspend and resume (0015, 0016), the files it left. Split from Event.swift by concern.

/// The handler flows a payload may define, and their limits.
package enum HandlerFlows {
    /// The handler for each way an instance can end, as the reference server names them.
    package static func flow(for status: InstanceStatus) -> String? {
        switch status {
        case .failed: "onFailure"
        case .cancelled: "onCancel"
        case .timedOut: "onTimeout"
        default: nil
        }
    }

    package static let names: Set<String> = ["onFailure", "onCancel", "onTimeout"]
    /// How long a handler may run unless `_main.json` says otherwise (`handlerTimeout`).
    package static let defaultTimeoutMillis: Int64 = 10 * 60 * 1000
    /// The most variables an `InstanceFailed` carries for its handler, as JSON text. Beyond it the
    /// handler starts from the instance's arguments (and says so in the log).
    package static let maxVariablesBytes = 256 << 10
}

/// `HandlersDeclared` v1.
package struct HandlersDeclared: Sendable, Hashable, Codable {
    /// The handler flows the payload defines, sorted.
    package var flows: [String]

    package init(flows: [String]) { self.flows = flows }
}

/// `HandlerAssigned` v1.
package struct HandlerAssigned: Sendable, Hashable, Codable {
    /// `onFailure`, `onCancel` or `onTimeout`.
    package var flow: String
    /// The executor that got it.
    package var executorID: ExecutorID
    /// 1 for the first dispatch of the handler.
    package var attempt: Int

    package init(flow: String, executorID: ExecutorID, attempt: Int) {
        self.flow = flow
        self.executorID = executorID
        self.attempt = attempt
    }
}

/// `HandlerStarted` v1.
package struct HandlerStarted: Sendable, Hashable, Codable {
    package var flow: String
    /// The executor running it.
    package var executorID: ExecutorID

    package init(flow: String, executorID: ExecutorID) {
        self.flow = flow
        self.executorID = executorID
    }
}

/// `HandlerRequeued` v1.
package struct HandlerRequeued: Sendable, Hashable, Codable {
    package var flow: String
    /// Why it waits again.
    package var reason: String

    package init(flow: String, reason: String) {
        self.flow = flow
        self.reason = reason
    }
}

/// `HandlerEnded` v1.
package struct HandlerEnded: Sendable, Hashable, Codable {
    package var flow: String
    /// `nil`: it ran to its end; otherwise why it did not.
    package var error: String?

    package init(flow: String, error: String?) {
        self.flow = flow
        self.error = error
    }
}

/// `InstanceSuspended` v1.
package struct InstanceSuspended: Sendable, Hashable, Codable {
    /// The event a resume must name.
    package var event: String
    /// Where the flow stands and its working folder, one archive in the payload store.
    package var state: PayloadRef

    package init(event: String, state: PayloadRef) {
        self.event = event
        self.state = state
    }
}

/// `InstanceResumed` v1.
package struct InstanceResumed: Sendable, Hashable, Codable {
    /// The event it was resumed with.
    package var event: String
    /// The variables the resume set (its JSON body).
    package var variables: [String: JSONValue]
    /// Set when the Scheduler resumed it because the child it waited for ended: how that ended.
    package var child: ChildOutcome?

    package init(event: String, variables: [String: JSONValue], child: ChildOutcome? = nil) {
        self.event = event
        self.variables = variables
        self.child = child
    }
}

/// One file of an instance's attachments.
package struct AttachmentFile: Sendable, Hashable, Codable {
    /// Its path under `_attachments/` (`report.txt`, `logs/run.log`).
    package var name: String
    /// Its size in bytes.
    package var size: Int

    package init(name: String, size: Int) {
        self.name = name
        self.size = size
    }
}

/// `AttachmentsStored` v1.
package struct AttachmentsStored: Sendable, Hashable, Codable {
    /// The ZIP of the files, in the payload store (and so under retention with the payloads).
    package var archive: PayloadRef
    /// What it holds, sorted by name.
    package var files: [AttachmentFile]

    package init(archive: PayloadRef, files: [AttachmentFile]) {
        self.archive = archive
        self.files = files
    }
}
