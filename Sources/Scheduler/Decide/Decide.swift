// Past 400 lines on purpose: `decide` is the whole of the Scheduler's decisions, one case per command,
// so every way its state can change reads in one switch; the commands, actions and outcomes it
// speaks are declared above it. Deadlines are in Deadlines.swift, the run loop that acts on decisions
// in Run/.

import EventLog
import JSON
import Model
import Wire

/// A command the Scheduler decides against its state.
enum SchedulerCommand: Sendable {
    /// Start a new instance whose payload is already stored.
    case start(StartInstance, payload: PayloadRef, newID: InstanceID)
    /// Stop an instance (`cascade`: and every live instance it started, down every generation).
    case cancel(InstanceID, RequestID, cascade: Bool = false)
    /// The flow of `parent`, run by `executor` in dispatch `attempt`, starts a child instance.
    case startChild(
        parent: InstanceID, executor: ExecutorID, attempt: Int, RequestID, ChildStart, newID: InstanceID)
    /// The child a suspended instance waits for has ended: resume it with the child's outcome.
    case resumeForChild(InstanceID)
    /// Give a waiting instance to an executor.
    case assign(InstanceID, ExecutorID)
    /// Record an executor's report.
    case report(ExecutorID, Report)
    /// The instance ran past its timeout.
    case timeOut(InstanceID)
    /// The executor running the instance was lost.
    case executorLost(InstanceID, ExecutorID, reason: String)
    /// Dispatch `attempt` did not reach RUNNING within the starting deadline.
    case startingExpired(InstanceID, attempt: Int, maxAttempts: Int)
    /// A dispatch of a STARTING instance is owed again: its executor went away or refused it.
    case requeue(InstanceID, reason: String)
    /// Record an API key.
    case createKey(CreateKey)
    /// Revoke an API key.
    case revokeKey(KeyID, RequestID, by: String?)
    /// Give a waiting handler run to an executor.
    case assignHandler(InstanceID, ExecutorID)
    /// Dispatch `attempt` of a handler did not start within the starting deadline.
    case handlerStartingExpired(InstanceID, attempt: Int, maxAttempts: Int)
    /// A handler ran past its `handlerTimeout`.
    case handlerTimeOut(InstanceID)
    /// A client resumes a suspended instance with its event.
    case resume(InstanceID, event: String, variables: [String: JSONValue], RequestID)
}

/// How a resume ended.
enum ResumeOutcome: Sendable, Equatable {
    case resumed
    /// Not suspended (running, resuming already, or ended), or waiting for another event: why.
    case refused(String)
}

/// What a decision asks the owner to do besides appending its events.
enum SchedulerAction: Sendable, Equatable {
    /// Answer a start with this instance (`created == false`: it already existed).
    case replyStarted(InstanceID, created: Bool)
    /// Answer a stop.
    case replyCancelled(CancelOutcome)
    /// Tell the executor to kill the instance's run (`only` that one, `upTo` that dispatch attempt;
    /// nil: any) after the events are durable.
    case killOnExecutor(InstanceID, ExecutorID, only: InstanceRun? = nil, upTo: Int? = nil)
    /// Send the instance to the executor (after the events are durable).
    case dispatch(InstanceID, ExecutorID, attempt: Int)
    /// Send the instance's handler run to the executor (after the events are durable).
    case dispatchHandler(InstanceID, ExecutorID, attempt: Int)
    /// Answer a key command.
    case replyKey(KeyOutcome)
    /// Answer a resume.
    case replyResumed(ResumeOutcome)
    /// Answer a child's start: its id (`created == false`: a repeat of the request), or why not.
    case replyChild(Result<InstanceID, ChildRefusal>, created: Bool)
}

/// Why a child instance was not started.
struct ChildRefusal: Error, Sendable, Equatable {
    var reason: String
}

/// How a key command ended.
enum KeyOutcome: Sendable, Equatable {
    /// Created now, or a repeat of a creation (answered with the event `seq` that made it).
    case created(repeatOf: UInt64?)
    /// Another live key has that name.
    case nameTaken
    /// Revoked now.
    case revoked
    /// No such live key.
    case unknown
}

/// The outcome of `decide`: events to append (in order) and actions for the owner.
struct Decision: Sendable, Equatable {
    var events: [EventEnvelope] = []
    var actions: [SchedulerAction] = []
}

/// The Scheduler's rules, as a pure function: no I/O, no clock (time comes in as `now`).
enum Decide {
    static func decide(_ command: SchedulerCommand, state: SchedulerState, now: Timestamp) -> Decision {
        var decision = Decision()
        switch command {
        case .start(let start, let payload, let newID):
            if let existing = state.requests[start.requestID] {
                decision.actions = [.replyStarted(existing, created: false)]
                return decision
            }
            if let key = start.idempotencyKey,
                let existing = state.idempotency[
                    InstanceCreated.idempotencyScope(principal: start.principal, team: start.team, key: key)]
            {
                decision.actions = [.replyStarted(existing.id, created: false)]
                return decision
            }
            let created = InstanceCreated(
                entryPoint: start.entryPoint, arguments: start.arguments, timeoutMillis: start.timeoutMillis,
                out: start.out, tags: start.tags, payload: payload, idempotencyKey: start.idempotencyKey,
                principal: start.principal, team: start.team, handlerTimeoutMillis: start.handlerTimeoutMillis)
            decision.events = [
                EventEnvelope(instanceID: newID, at: now, requestID: start.requestID, event: .instanceCreated(created))
            ]
            decision.actions = [.replyStarted(newID, created: true)]

        case .cancel(let id, let request, let cascade):
            let family = cascade ? [id] + state.liveDescendants(of: id) : [id]
            for member in family {
                guard let tracked = state.instances[member], !tracked.status.isTerminal else { continue }
                let reason = member == id ? "stopped by a client" : "stopped with its parent \(id)"
                decision.events.append(
                    EventEnvelope(
                        instanceID: member, at: now, requestID: member == id ? request : nil,
                        event: .instanceCancelled(InstanceCancelled(reason: reason))))
                if let executor = tracked.executor {
                    decision.actions.append(.killOnExecutor(member, executor, only: .own, upTo: tracked.attempt))
                }
            }
            decision.actions.insert(.replyCancelled(decision.events.isEmpty ? .notLive : .cancelled), at: 0)

        case .startChild(let parent, let executor, let attempt, let request, let start, let newID):
            if let existing = state.requests[request] {
                decision.actions = [.replyChild(.success(existing), created: false)]
                return decision
            }
            guard let tracked = state.instances[parent], let created = tracked.created, tracked.executor == executor,
                tracked.attempt == attempt, tracked.status.awaitsExecutor || tracked.status == .running
            else {
                decision.actions = [
                    .replyChild(.failure(ChildRefusal(reason: "the instance no longer runs there")), created: false)
                ]
                return decision
            }
            guard tracked.ancestors.count + 1 < ChildStart.maxGenerations else {
                let reason = "child processes nest at most \(ChildStart.maxGenerations) generations deep"
                decision.actions = [.replyChild(.failure(ChildRefusal(reason: reason)), created: false)]
                return decision
            }
            let child = InstanceCreated(
                entryPoint: start.entryPoint, arguments: start.arguments, timeoutMillis: nil, out: start.out,
                tags: start.tags, payload: created.payload, idempotencyKey: nil, principal: created.principal,
                team: created.team, handlerTimeoutMillis: created.handlerTimeoutMillis, parentInstanceId: parent,
                parentWaits: start.sync ? true : nil)
            decision.events = [
                EventEnvelope(instanceID: newID, at: now, requestID: request, event: .instanceCreated(child))
            ]
            decision.actions = [.replyChild(.success(newID), created: true)]

        case .resumeForChild(let id):
            guard let tracked = state.instances[id], tracked.status == .suspended,
                let event = tracked.suspended?.event, let child = SchedulerState.awaitedChild(event),
                let outcome = tracked.childOutcomes[child]
            else { return decision }
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .instanceResumed(InstanceResumed(event: event, variables: [:], child: outcome)))
            ]

        case .assign(let id, let executor):
            guard let tracked = state.instances[id], tracked.status.awaitsExecutor else { return decision }
            let attempt = tracked.attempt + 1
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .instanceAssigned(InstanceAssigned(executorID: executor, attempt: attempt)))
            ]
            decision.actions = [.dispatch(id, executor, attempt: attempt)]

        case .report(let executor, let report) where report.handler != nil:
            guard (state.reportsApplied[executor] ?? 0) < report.seq else { return decision }
            return decideHandlerReport(executor, report, state: state, now: now)

        case .report(let executor, let report):
            guard (state.reportsApplied[executor] ?? 0) < report.seq, let tracked = state.instances[report.instanceID]
            else { return decision }
            let origin = ReportOrigin(executor: executor, seq: report.seq)
            let id = report.instanceID
            guard tracked.executor == executor, !tracked.status.isTerminal,
                report.attempt.map({ $0 == tracked.attempt }) ?? true
            else {
                // A report for an instance this executor no longer owns, or of an earlier dispatch
                // of it (a boot on the same address ran the one meant for its predecessor): ignored,
                // and that run is killed where it still runs (a later attempt there is spared).
                if case .started = report.kind {
                    decision.actions = [
                        .killOnExecutor(id, executor, only: .own, upTo: report.attempt ?? tracked.attempt)
                    ]
                }
                return decision
            }
            let event: Event
            switch report.kind {
            case .started:
                guard tracked.status == .starting || tracked.status == .resuming else { return decision }
                event = .instanceStarted(InstanceStarted(executorID: executor))
            case .log(let lines):
                event = .logAppended(LogAppended(lines: lines))
            case .steps(let records):
                event = .stepsRecorded(StepsRecorded(steps: records))
            case .finished(let out):
                event = .instanceFinished(InstanceFinished(out: out))
            case .failed(let error, let out, let variables):
                event = .instanceFailed(InstanceFailed(error: error, out: out, variables: variables))
            case .handlers(let flows):
                guard tracked.handlers.isEmpty, !flows.isEmpty else { return decision }
                event = .handlersDeclared(HandlersDeclared(flows: flows))
            case .attachments(let archive, let files):
                event = .attachmentsStored(AttachmentsStored(archive: archive, files: files))
            case .suspended(let suspendEvent, let stateRef):
                guard tracked.status == .running else { return decision }
                event = .instanceSuspended(InstanceSuspended(event: suspendEvent, state: stateRef))
            }
            decision.events = [EventEnvelope(instanceID: id, at: now, origin: origin, event: event)]

        case .timeOut(let id):
            guard let tracked = state.instances[id], !tracked.status.isTerminal else { return decision }
            let limit = tracked.created?.timeoutMillis.map { "\($0) ms" } ?? "its limit"
            let message = "the process ran longer than its timeout (\(limit)) and was stopped"
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .logAppended(LogAppended(lines: [LogLine(at: now, level: .error, text: message)]))),
                EventEnvelope(instanceID: id, at: now, event: .instanceTimedOut(InstanceTimedOut(error: message))),
            ]
            if let executor = tracked.executor {
                decision.actions = [.killOnExecutor(id, executor, only: .own, upTo: tracked.attempt)]
            }

        case .startingExpired(let id, let attempt, let maxAttempts):
            guard let tracked = state.instances[id], tracked.status == .starting || tracked.status == .resuming,
                tracked.executor != nil, tracked.attempt == attempt
            else { return decision }
            if let executor = tracked.executor {
                decision.actions.append(.killOnExecutor(id, executor, only: .own, upTo: tracked.attempt))
            }
            guard attempt >= maxAttempts else {
                let reason = "dispatch \(attempt) did not start within the starting deadline"
                decision.events = [
                    EventEnvelope(instanceID: id, at: now, event: .instanceRequeued(InstanceRequeued(reason: reason)))
                ]
                return decision
            }
            let message = "the instance did not start after \(attempt) dispatches to executors"
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .logAppended(LogAppended(lines: [LogLine(at: now, level: .error, text: message)]))),
                EventEnvelope(instanceID: id, at: now, event: .instanceFailed(InstanceFailed(error: message))),
            ]

        case .requeue(let id, let reason) where state.instances[id] == nil:
            guard let handler = state.handlers[id], handler.status == .starting else { return decision }
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .handlerRequeued(HandlerRequeued(flow: handler.flow, reason: reason)))
            ]

        case .requeue(let id, let reason):
            guard let tracked = state.instances[id], tracked.status == .starting || tracked.status == .resuming,
                !state.queue.contains(id)
            else { return decision }
            decision.events = [
                EventEnvelope(instanceID: id, at: now, event: .instanceRequeued(InstanceRequeued(reason: reason)))
            ]

        case .createKey(let create):
            if let existing = state.keys[create.keyID] {
                // The transport delivered the request twice: the same key, answered again.
                decision.actions = [
                    .replyKey(existing.hash == create.key.hash ? .created(repeatOf: existing.seq) : .nameTaken)
                ]
                return decision
            }
            guard state.liveKey(named: create.key.name) == nil else {
                decision.actions = [.replyKey(.nameTaken)]
                return decision
            }
            decision.events = [
                EventEnvelope(
                    instanceID: create.keyID, at: now, requestID: create.requestID,
                    event: .apiKeyCreated(create.key))
            ]
            decision.actions = [.replyKey(.created(repeatOf: nil))]

        case .revokeKey(let id, let request, let by):
            guard let key = state.keys[id], !key.revoked else {
                decision.actions = [.replyKey(.unknown)]
                return decision
            }
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now, requestID: request, event: .apiKeyRevoked(ApiKeyRevoked(revokedBy: by)))
            ]
            decision.actions = [.replyKey(.revoked)]

        case .executorLost(let id, let executor, let reason) where state.instances[id] == nil:
            // A handler run: started, it is never run again (at most once); not started, it waits again.
            guard let handler = state.handlers[id], handler.executor == executor else { return decision }
            let message = "executor lost: \(reason)"
            let event: Event =
                handler.status == .running
                ? .handlerEnded(HandlerEnded(flow: handler.flow, error: message))
                : .handlerRequeued(HandlerRequeued(flow: handler.flow, reason: message))
            decision.events = [EventEnvelope(instanceID: id, at: now, event: event)]

        case .resume(let id, let resumeEvent, let variables, let request):
            guard let tracked = state.instances[id] else {
                decision.actions = [.replyResumed(.refused("the instance has ended"))]
                return decision
            }
            guard tracked.status == .suspended, let suspended = tracked.suspended else {
                decision.actions = [
                    .replyResumed(.refused("the instance is \(tracked.status.rawValue), not SUSPENDED"))
                ]
                return decision
            }
            if let child = SchedulerState.awaitedChild(suspended.event) {
                decision.actions = [
                    .replyResumed(
                        .refused("the instance waits for its child process \(child) to end, not for a resume"))
                ]
                return decision
            }
            guard suspended.event == resumeEvent else {
                decision.actions = [
                    .replyResumed(.refused("the instance waits for '\(suspended.event)', not '\(resumeEvent)'"))
                ]
                return decision
            }
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now, requestID: request,
                    event: .instanceResumed(InstanceResumed(event: resumeEvent, variables: variables)))
            ]
            decision.actions = [.replyResumed(.resumed)]

        case .assignHandler(let id, let executor):
            guard let handler = state.handlers[id], handler.status == .enqueued else { return decision }
            let attempt = handler.attempt + 1
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .handlerAssigned(HandlerAssigned(flow: handler.flow, executorID: executor, attempt: attempt))
                )
            ]
            decision.actions = [.dispatchHandler(id, executor, attempt: attempt)]

        case .handlerStartingExpired(let id, let attempt, let maxAttempts):
            guard let handler = state.handlers[id], handler.status == .starting, handler.attempt == attempt else {
                return decision
            }
            if let executor = handler.executor {
                decision.actions.append(
                    .killOnExecutor(id, executor, only: .handler(handler.flow), upTo: handler.attempt))
            }
            let event: Event =
                attempt >= maxAttempts
                ? .handlerEnded(
                    HandlerEnded(
                        flow: handler.flow, error: "the handler did not start after \(attempt) dispatches to executors")
                )
                : .handlerRequeued(
                    HandlerRequeued(
                        flow: handler.flow, reason: "dispatch \(attempt) did not start within the starting deadline"))
            decision.events = [EventEnvelope(instanceID: id, at: now, event: event)]

        case .handlerTimeOut(let id):
            guard let handler = state.handlers[id], handler.status == .running else { return decision }
            let limit = handler.created.handlerTimeoutMillis ?? HandlerFlows.defaultTimeoutMillis
            let message = "the \(handler.flow) handler ran longer than its timeout (\(limit) ms) and was stopped"
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .logAppended(LogAppended(lines: [LogLine(at: now, level: .error, text: message)]))),
                EventEnvelope(
                    instanceID: id, at: now, event: .handlerEnded(HandlerEnded(flow: handler.flow, error: message))),
            ]
            if let executor = handler.executor {
                decision.actions = [.killOnExecutor(id, executor, only: .handler(handler.flow), upTo: handler.attempt)]
            }

        case .executorLost(let id, let executor, let reason):
            guard let tracked = state.instances[id], tracked.executor == executor, tracked.status == .running else {
                return decision
            }
            let message = "executor lost: \(reason)"
            decision.events = [
                EventEnvelope(
                    instanceID: id, at: now,
                    event: .logAppended(LogAppended(lines: [LogLine(at: now, level: .error, text: message)]))),
                EventEnvelope(instanceID: id, at: now, event: .instanceFailed(InstanceFailed(error: message))),
            ]
        }
        return decision
    }

    /// A report about a handler's run: applied only while this executor runs that handler.
    private static func decideHandlerReport(
        _ executor: ExecutorID, _ report: Report, state: SchedulerState, now: Timestamp
    ) -> Decision {
        var decision = Decision()
        let id = report.instanceID
        guard let handler = state.handlers[id], handler.executor == executor, handler.flow == report.handler,
            report.attempt.map({ $0 == handler.attempt }) ?? true
        else {
            // Whatever still runs there for a handler that moved on or ended is killed.
            if case .started = report.kind {
                decision.actions = [
                    .killOnExecutor(id, executor, only: InstanceRun(handler: report.handler), upTo: report.attempt)
                ]
            }
            return decision
        }
        let origin = ReportOrigin(executor: executor, seq: report.seq)
        let event: Event
        switch report.kind {
        case .started:
            guard handler.status == .starting else { return decision }
            event = .handlerStarted(HandlerStarted(flow: handler.flow, executorID: executor))
        case .log(let lines): event = .logAppended(LogAppended(lines: lines))
        case .steps(let records): event = .stepsRecorded(StepsRecorded(steps: records))
        case .finished: event = .handlerEnded(HandlerEnded(flow: handler.flow, error: nil))
        case .failed(let error, _, _): event = .handlerEnded(HandlerEnded(flow: handler.flow, error: error))
        case .handlers, .attachments: return decision
        case .suspended:
            event = .handlerEnded(HandlerEnded(flow: handler.flow, error: "a handler flow cannot suspend"))
        }
        decision.events = [EventEnvelope(instanceID: id, at: now, origin: origin, event: event)]
        return decision
    }
}
