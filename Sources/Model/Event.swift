import JSON

/// One fact about an instance, in the past tense. Each case has a stable type name and a version;
/// a name is never reused, and old versions stay decodable (see `EventCodec`).
package enum Event: Sendable, Hashable {
    /// A start was accepted and durably recorded. Status `ENQUEUED`.
    case instanceCreated(InstanceCreated)
    /// The Scheduler gave the instance to an executor. Status `STARTING`.
    case instanceAssigned(InstanceAssigned)
    /// The executor started the runner. Status `RUNNING`.
    case instanceStarted(InstanceStarted)
    /// Lines the process wrote, in order. Never changes the status.
    case logAppended(LogAppended)
    /// The flow ran to its end. Status `FINISHED`.
    case instanceFinished(InstanceFinished)
    /// The flow failed, or could not run. Status `FAILED`.
    case instanceFailed(InstanceFailed)
    /// Stopped by a client. Status `CANCELLED`.
    case instanceCancelled(InstanceCancelled)
    /// Ran past its timeout. Status `TIMED_OUT`.
    case instanceTimedOut(InstanceTimedOut)
    /// Steps the flow executed, in the order they completed. Never changes the status.
    case stepsRecorded(StepsRecorded)
    /// The instance waits for an executor again: the one it was given went away, refused it, or
    /// did not start it in time. Status unchanged (`STARTING`: a dispatch is still owed).
    case instanceRequeued(InstanceRequeued)
    /// An admin made an API key for a team. Not about an instance: its envelope names the key.
    case apiKeyCreated(ApiKeyCreated)
    /// An admin revoked an API key: it is refused from then on. Not about an instance.
    case apiKeyRevoked(ApiKeyRevoked)
    /// Retention: every instance that ended before `before` leaves the read models from here on,
    /// and its events may leave the log. Not about an instance: its envelope names the pass.
    case historyTrimmed(HistoryTrimmed)
    /// The runner read the payload: its flows include these handlers (`onFailure`, `onCancel`,
    /// `onTimeout`). Recorded once, and only for payloads that have any. Never changes the status.
    case handlersDeclared(HandlersDeclared)
    /// The instance ended and its handler flow was given to an executor. Never changes the status
    /// (terminal is final): a handler runs after its instance, beside it.
    case handlerAssigned(HandlerAssigned)
    /// The executor started the handler's runner. From here on the handler is never run again.
    case handlerStarted(HandlerStarted)
    /// The handler waits for an executor again: the one it was given went away or did not start it.
    case handlerRequeued(HandlerRequeued)
    /// The handler ran to its end, failed, timed out, or was lost with its executor.
    case handlerEnded(HandlerEnded)
    /// The files the instance left under `_attachments/` in its working folder, kept as one
    /// archive in the payload store. Never changes the status.
    case attachmentsStored(AttachmentsStored)
    /// The flow stopped at `- suspend: event`; where it stands is stored. Status `SUSPENDED`.
    case instanceSuspended(InstanceSuspended)
    /// A client resumed it with its event. Status `RESUMING` (an executor is owed).
    case instanceResumed(InstanceResumed)

    /// The stable type name written into the log.
    package var typeName: String {
        switch self {
        case .instanceCreated: "InstanceCreated"
        case .instanceAssigned: "InstanceAssigned"
        case .instanceStarted: "InstanceStarted"
        case .logAppended: "LogAppended"
        case .instanceFinished: "InstanceFinished"
        case .instanceFailed: "InstanceFailed"
        case .instanceCancelled: "InstanceCancelled"
        case .instanceTimedOut: "InstanceTimedOut"
        case .stepsRecorded: "StepsRecorded"
        case .instanceRequeued: "InstanceRequeued"
        case .apiKeyCreated: "ApiKeyCreated"
        case .apiKeyRevoked: "ApiKeyRevoked"
        case .historyTrimmed: "HistoryTrimmed"
        case .handlersDeclared: "HandlersDeclared"
        case .handlerAssigned: "HandlerAssigned"
        case .handlerStarted: "HandlerStarted"
        case .handlerRequeued: "HandlerRequeued"
        case .handlerEnded: "HandlerEnded"
        case .attachmentsStored: "AttachmentsStored"
        case .instanceSuspended: "InstanceSuspended"
        case .instanceResumed: "InstanceResumed"
        }
    }

    /// The JSON field that names the event's stream: `instanceId`, or for the events that are not
    /// about an instance `keyId` (a key's) or `trimId` (a retention pass's).
    package var streamField: String { Self.streamField(ofType: typeName) }

    /// `streamField` for a stored type name.
    package static func streamField(ofType type: String) -> String {
        if type.hasPrefix("ApiKey") { return "keyId" }
        if type == "HistoryTrimmed" { return "trimId" }
        return "instanceId"
    }

    /// Whether the event is about an instance (its envelope's id is the instance's).
    package var isInstanceEvent: Bool { !isKeyEvent && !isTrim }

    /// Whether the event is a retention pass's.
    package var isTrim: Bool {
        if case .historyTrimmed = self { true } else { false }
    }

    /// Whether the event is about an API key (its envelope's id is the key's), not an instance.
    package var isKeyEvent: Bool {
        switch self {
        case .apiKeyCreated, .apiKeyRevoked: true
        default: false
        }
    }

    /// Whether the event starts an instance.
    package var isCreation: Bool {
        if case .instanceCreated = self { true } else { false }
    }

    /// The status this event moves its instance to, or `nil` when it carries no status change.
    package var status: InstanceStatus? {
        switch self {
        case .instanceCreated: .enqueued
        case .instanceAssigned: .starting
        case .instanceStarted: .running
        case .logAppended: nil
        case .instanceFinished: .finished
        case .instanceFailed: .failed
        case .instanceCancelled: .cancelled
        case .instanceTimedOut: .timedOut
        case .stepsRecorded: nil
        case .instanceRequeued: nil
        case .apiKeyCreated, .apiKeyRevoked, .historyTrimmed: nil
        case .handlersDeclared, .handlerAssigned, .handlerStarted, .handlerRequeued, .handlerEnded: nil
        case .attachmentsStored: nil
        case .instanceSuspended: .suspended
        case .instanceResumed: .resuming
        }
    }

    /// Whether the event is about an instance's handler run (after the instance ended).
    package var isHandlerRun: Bool {
        switch self {
        case .handlerAssigned, .handlerStarted, .handlerRequeued, .handlerEnded: true
        default: false
        }
    }

    /// A short human reason for the status change, shown in the history.
    package var reason: String {
        switch self {
        case .instanceCreated: "accepted"
        case .instanceAssigned(let e): "assigned to \(e.executorID)"
        case .instanceStarted(let e): "started on \(e.executorID)"
        case .logAppended: "log"
        case .instanceFinished: "finished"
        case .instanceFailed(let e): e.error
        case .instanceCancelled(let e): e.reason
        case .instanceTimedOut(let e): e.error
        case .stepsRecorded: "steps"
        case .instanceRequeued(let e): e.reason
        case .apiKeyCreated(let e): "key '\(e.name)' created"
        case .apiKeyRevoked: "key revoked"
        case .historyTrimmed: "history trimmed"
        case .handlersDeclared(let e): "handlers: " + e.flows.joined(separator: ", ")
        case .handlerAssigned(let e): "\(e.flow) handler assigned to \(e.executorID)"
        case .handlerStarted(let e): "\(e.flow) handler started on \(e.executorID)"
        case .handlerRequeued(let e): "\(e.flow) handler: \(e.reason)"
        case .handlerEnded(let e): e.error.map { "\(e.flow) handler failed: \($0)" } ?? "\(e.flow) handler finished"
        case .attachmentsStored(let e): "\(e.files.count) attachments"
        case .instanceSuspended(let e) where e.event.hasPrefix(ChildStart.waitEventPrefix):
            "waiting for its child process \(e.event.dropFirst(ChildStart.waitEventPrefix.count))"
        case .instanceSuspended(let e): "suspended until '\(e.event)'"
        case .instanceResumed(let e):
            if let child = e.child {
                "its child process \(child.id) ended \(child.status.rawValue)"
            } else {
                "resumed by '\(e.event)'"
            }
        }
    }
}

/// Where the ZIP of an instance is kept: content-addressed by its SHA-256.
package struct PayloadRef: Sendable, Hashable, Codable {
    /// Lower-case hex SHA-256 of the archive bytes.
    package var digest: String
    /// The archive's size in bytes.
    package var size: Int

    package init(digest: String, size: Int) {
        self.digest = digest
        self.size = size
    }
}

/// `InstanceCreated` v1: what the start request asked for, as checked by the Gateway.
package struct InstanceCreated: Sendable, Hashable, Codable {
    /// The flow to start; `nil` lets `concord.yml` or `default` decide.
    package var entryPoint: String?
    /// `_main.json`'s `arguments` (an object).
    package var arguments: [String: JSONValue]
    /// `_main.json`'s `timeout`, in milliseconds, counted from `RUNNING`.
    package var timeoutMillis: Int64?
    /// `_main.json`'s `out`: variable names (dotted paths) copied into the final status.
    package var out: [String]
    /// `_main.json`'s `tags`.
    package var tags: [String]
    /// The stored archive.
    package var payload: PayloadRef
    /// The client's `Idempotency-Key`, if any.
    package var idempotencyKey: String?
    /// Who started it: the id of a recorded API key, or a non-secret fingerprint of a configured one.
    package var principal: String?
    /// The team it belongs to (its starter's); `nil` for one started by a configured admin key,
    /// or before keys had teams. Member keys of other teams never see it.
    package var team: String?
    /// `_main.json`'s `handlerTimeout`, in milliseconds: how long a handler flow may run (absent:
    /// `HandlerFlows.defaultTimeoutMillis`).
    package var handlerTimeoutMillis: Int64?
    /// The instance whose flow started this one (`- task: concord`), if any: it runs the same
    /// payload, for the same team.
    package var parentInstanceId: InstanceID?
    /// Set when the parent waits for this child (`sync: true`): the parent resumes with its outcome.
    package var parentWaits: Bool?

    package init(
        entryPoint: String?, arguments: [String: JSONValue], timeoutMillis: Int64?, out: [String],
        tags: [String], payload: PayloadRef, idempotencyKey: String?, principal: String?, team: String? = nil,
        handlerTimeoutMillis: Int64? = nil, parentInstanceId: InstanceID? = nil, parentWaits: Bool? = nil
    ) {
        self.entryPoint = entryPoint
        self.arguments = arguments
        self.timeoutMillis = timeoutMillis
        self.out = out
        self.tags = tags
        self.payload = payload
        self.idempotencyKey = idempotencyKey
        self.principal = principal
        self.team = team
        self.handlerTimeoutMillis = handlerTimeoutMillis
        self.parentInstanceId = parentInstanceId
        self.parentWaits = parentWaits
    }

    /// What the `Idempotency-Key` is unique within: the team, else (a configured key, or an
    /// instance from before teams) the key that started it.
    package static func idempotencyScope(principal: String?, team: String?, key: String) -> String {
        if let team { return "team:" + team + "\n" + key }
        return (principal ?? "") + "\n" + key
    }
}

/// `InstanceAssigned` v1.
package struct InstanceAssigned: Sendable, Hashable, Codable {
    /// The executor that got it.
    package var executorID: ExecutorID
    /// 1 for the first dispatch, more when an executor was lost before it started the runner.
    package var attempt: Int

    package init(executorID: ExecutorID, attempt: Int) {
        self.executorID = executorID
        self.attempt = attempt
    }
}

/// `InstanceStarted` v1.
package struct InstanceStarted: Sendable, Hashable, Codable {
    /// The executor running it.
    package var executorID: ExecutorID

    package init(executorID: ExecutorID) { self.executorID = executorID }
}

/// How important a log line is.
package enum LogLevel: String, Sendable, Hashable, Codable {
    case debug = "DEBUG"
    case info = "INFO"
    case warn = "WARN"
    case error = "ERROR"
}

/// One line (or one multi-line message) the process wrote.
package struct LogLine: Sendable, Hashable, Codable {
    /// When it was written.
    package var at: Timestamp
    /// Its level.
    package var level: LogLevel
    /// The text; may contain line breaks, which the log read model splits.
    package var text: String

    package init(at: Timestamp, level: LogLevel, text: String) {
        self.at = at
        self.level = level
        self.text = text
    }
}

/// `LogAppended` v1.
package struct LogAppended: Sendable, Hashable, Codable {
    /// The lines, oldest first.
    package var lines: [LogLine]

    package init(lines: [LogLine]) { self.lines = lines }
}

/// `InstanceFinished` v1.
package struct InstanceFinished: Sendable, Hashable, Codable {
    /// The requested `out` variables.
    package var out: [String: JSONValue]

    package init(out: [String: JSONValue]) { self.out = out }
}

/// `InstanceFailed` v1.
package struct InstanceFailed: Sendable, Hashable, Codable {
    /// Why, in words a person can act on.
    package var error: String
    /// The requested `out` variables as they stood.
    package var out: [String: JSONValue]
    /// Every variable of the flow as it failed, `lastError` among them: what its `onFailure`
    /// handler starts with. Only when the payload has one (and the variables fit
    /// `HandlerFlows.maxVariablesBytes`).
    package var variables: [String: JSONValue]?

    package init(error: String, out: [String: JSONValue] = [:], variables: [String: JSONValue]? = nil) {
        self.error = error
        self.out = out
        self.variables = variables
    }
}

/// `InstanceCancelled` v1.
package struct InstanceCancelled: Sendable, Hashable, Codable {
    /// Who or what stopped it.
    package var reason: String

    package init(reason: String) { self.reason = reason }
}

/// `InstanceTimedOut` v1.
package struct InstanceTimedOut: Sendable, Hashable, Codable {
    /// The message shown as the status's `error`.
    package var error: String

    package init(error: String) { self.error = error }
}

/// `InstanceRequeued` v1.
package struct InstanceRequeued: Sendable, Hashable, Codable {
    /// Why the instance waits again (the executor was lost, refused the dispatch, or did not start it).
    package var reason: String

    package init(reason: String) { self.reason = reason }
}

/// `ApiKeyCreated` v1: a key made by an admin. Only the SHA-256 of the secret is recorded; the
/// secret itself was shown once, to whoever made it.
package struct ApiKeyCreated: Sendable, Hashable, Codable {
    /// Unique among the keys not revoked.
    package var name: String
    /// The team whose instances the key starts and sees; `nil` only for an admin key.
    package var team: String?
    /// An admin key sees every team's instances and manages keys.
    package var admin: Bool
    /// Lower-case hex SHA-256 of the secret.
    package var hash: String
    /// The principal of the admin key that made it.
    package var createdBy: String?

    package init(name: String, team: String?, admin: Bool, hash: String, createdBy: String?) {
        self.name = name
        self.team = team
        self.admin = admin
        self.hash = hash
        self.createdBy = createdBy
    }
}

/// `ApiKeyRevoked` v1.
package struct ApiKeyRevoked: Sendable, Hashable, Codable {
    /// The principal of the admin key that revoked it.
    package var revokedBy: String?

    package init(revokedBy: String?) { self.revokedBy = revokedBy }
}

/// `HistoryTrimmed` v1: a retention pass. Every instance whose terminal event is older than
/// `before` is forgotten by the read models that fold this event (as if it had never run), and
/// the log may drop its events; the log's first event always stays (it names the log).
package struct HistoryTrimmed: Sendable, Hashable, Codable {
    /// Instances that ended before this time go.
    package var before: Timestamp
    /// The retention the pass applied, in milliseconds (for people reading the log).
    package var retentionMillis: Int64

    package init(before: Timestamp, retentionMillis: Int64) {
        self.before = before
        self.retentionMillis = retentionMillis
    }
}

/// How a step ended.
package enum StepOutcome: String, Sendable, Hashable, Codable {
    /// It ran to its end.
    case ok
    /// It raised an error (handled further out or not).
    case failed
}

/// One executed step: what, where, when, for how long, and how it ended.
package struct StepRecord: Sendable, Hashable, Codable {
    /// The flow it belongs to.
    package var flow: String
    /// Its `name` label, or its kind (`log`, `call`, ...).
    package var step: String
    /// The file it is written in (`processes/main.yml`).
    package var file: String
    /// Its line in that file.
    package var line: Int
    /// Its column (absent in steps recorded by v1, which kept only `file:line`).
    package var column: Int?
    /// When it started.
    package var startedAt: Timestamp
    /// How long it took, in microseconds (for a call or a group: with everything inside).
    package var durationMicros: Int64
    /// How it ended.
    package var outcome: StepOutcome

    package init(
        flow: String, step: String, file: String, line: Int, column: Int?, startedAt: Timestamp,
        durationMicros: Int64, outcome: StepOutcome
    ) {
        self.flow = flow
        self.step = step
        self.file = file
        self.line = line
        self.column = column
        self.startedAt = startedAt
        self.durationMicros = durationMicros
        self.outcome = outcome
    }

    /// `file:line:column` (or `file:line` for a v1 record), as failure messages print places.
    package var location: String { "\(file):\(line)" + (column.map { ":\($0)" } ?? "") }
}

/// `StepsRecorded` v2: a batch of executed steps (batched so a long flow costs few events). v2
/// places each step by `file`, `line` and `column`; v1 had one `location` string, `file:line`.
package struct StepsRecorded: Sendable, Hashable, Codable {
    /// The steps, in completion order.
    package var steps: [StepRecord]

    package init(steps: [StepRecord]) { self.steps = steps }
}

/// `StepsRecorded` as version 1 wrote it, and its upcaster to the current shape.
struct StepsRecordedV1: Decodable {
    struct Step: Decodable {
        var flow: String
        var step: String
        var location: String
        var startedAt: Timestamp
        var durationMicros: Int64
        var outcome: StepOutcome
    }

    var steps: [Step]

    /// `location` is split at its last `:` (a file name may contain one); the column is unknown.
    var upcast: StepsRecorded {
        StepsRecorded(
            steps: steps.map { step in
                var file = step.location
                var line = 0
                if let colon = step.location.lastIndex(of: ":"),
                    let number = Int(step.location[step.location.index(after: colon)...])
                {
                    file = String(step.location[..<colon])
                    line = number
                }
                return StepRecord(
                    flow: step.flow, step: step.step, file: file, line: line, column: nil, startedAt: step.startedAt,
                    durationMicros: step.durationMicros, outcome: step.outcome)
            })
    }
}
