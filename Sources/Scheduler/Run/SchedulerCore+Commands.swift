import EventLog
import Foundation
import JSON
import Logging
import Model
import Transport
import Wire

/// The Gateway's commands: start and stop, each decided, appended and answered once durable.
extension SchedulerCore {
    /// Decided once, by `decide`: a repeat (its request id or `Idempotency-Key` already known) is
    /// answered with the first instance. The payload is stored first (content-addressed, so a
    /// repeat's is found and not written again), because the decision must name it.
    func start(_ start: StartInstance, payload: [UInt8]) async -> SchedulerReply {
        if let failure = log.failed { return Self.logUnavailable(failure) }
        let ref: PayloadRef
        do {
            ref = try await payloads.put(payload)
        } catch {
            logger.error("could not store a payload", metadata: ["error": "\(error)"])
            return .unavailable(message: "the server could not store the archive; try again later")
        }
        let decision = Decide.decide(.start(start, payload: ref, newID: InstanceID()), state: state, now: .now())
        var seq: UInt64 = 0
        if !decision.events.isEmpty {
            let ticket = stage(decision)
            pumpDispatch()
            guard await durable(ticket) else {
                return .unavailable(message: "the event log could not record the start")
            }
            seq = ticket.envelopes.first?.seq ?? 0
        }
        for action in decision.actions {
            guard case .replyStarted(let id, let created) = action else { continue }
            // A repeat: answered once the instance it names is durable (its fsync may be in flight).
            if !created { return await answerExisting(id) }
            return .started(instanceID: id, created: true, seq: seq)
        }
        return .unavailable(message: "the start was not decided")
    }

    /// An idempotent repeat is acknowledged only once the instance it names is durable: the first
    /// request's fsync may still be in flight.
    func answerExisting(_ id: InstanceID) async -> SchedulerReply {
        // An instance that ended is no longer tracked; everything staged so far covers its start.
        let seq = state.instances[id]?.createdSeq ?? state.head
        do {
            try await log.waitDurable(seq)
        } catch {
            return .unavailable(message: "the event log could not record the start")
        }
        return .started(instanceID: id, created: false, seq: seq)
    }

    func cancel(_ id: InstanceID, request: RequestID, cascade: Bool = false) async -> SchedulerReply {
        if let failure = log.failed { return Self.logUnavailable(failure) }
        let decision = Decide.decide(.cancel(id, request, cascade: cascade), state: state, now: .now())
        var seq = state.head
        if !decision.events.isEmpty {
            let ticket = stage(decision)
            guard await durable(ticket) else { return .unavailable(message: "the event log could not record the stop") }
            seq = ticket.envelopes.last?.seq ?? seq
        }
        // Not live: the terminal event that ended it may itself still be on its way to disk.
        do { try await log.waitDurable(seq) } catch {
            return .unavailable(message: "the event log could not record the stop")
        }
        var outcome = CancelOutcome.notLive
        for action in decision.actions {
            switch action {
            case .replyCancelled(let result): outcome = result
            default: perform(action)
            }
        }
        if outcome == .cancelled { pumpDispatch() }
        return .cancelled(outcome, seq: seq)
    }

    /// A resume: decided, appended and answered once durable; the instance then waits for an
    /// executor as RESUMING.
    func resume(_ id: InstanceID, event: String, variables: [String: JSONValue], request: RequestID) async
        -> SchedulerReply
    {
        if let failure = log.failed { return Self.logUnavailable(failure) }
        let decision = Decide.decide(
            .resume(id, event: event, variables: variables, request), state: state, now: .now())
        for case .replyResumed(let outcome) in decision.actions {
            guard case .resumed = outcome else {
                if case .refused(let why) = outcome { return .conflict(message: why) }
                break
            }
            let ticket = stage(decision)
            pumpDispatch()
            guard await durable(ticket) else {
                return .unavailable(message: "the event log could not record the resume")
            }
            return .resumed(seq: ticket.envelopes.last?.seq ?? 0)
        }
        return .unavailable(message: "the resume was not decided")
    }

    /// A flow starts a child instance: decided (a repeat of the request names the same child),
    /// appended and answered once durable.
    func startChild(
        parent: InstanceID, executor: ExecutorID, attempt: Int, request: RequestID, _ start: ChildStart
    ) async -> ExecutorReply {
        if let failure = log.failed { return .unavailable(message: "the event log cannot be written: \(failure)") }
        guard !recovering else { return .unavailable(message: "the event log is being recovered") }
        let decision = Decide.decide(
            .startChild(parent: parent, executor: executor, attempt: attempt, request, start, newID: InstanceID()),
            state: state, now: .now())
        for case .replyChild(let outcome, let created) in decision.actions {
            switch outcome {
            case .failure(let refusal): return .childRefused(reason: refusal.reason)
            case .success(let id) where !created:
                guard case .started = await answerExisting(id) else {
                    return .unavailable(message: "the event log could not record the child")
                }
                return .childStarted(id)
            case .success(let id):
                let ticket = stage(decision)
                pumpDispatch()
                guard await durable(ticket) else {
                    return .unavailable(message: "the event log could not record the child")
                }
                return .childStarted(id)
            }
        }
        return .unavailable(message: "the child's start was not decided")
    }

    /// Resumes every suspended instance whose awaited child has ended (`SchedulerState.childResumes`,
    /// owed by the fold: after a restart too). Durable with the next fsync, like a dispatch; lost
    /// in a crash before it, it is owed again by the rebuilt state.
    func resumeParents() {
        guard !resumingParents, log.failed == nil, !recovering, !state.childResumes.isEmpty else { return }
        resumingParents = true
        defer { resumingParents = false }
        var progressed = true
        while progressed {
            progressed = false
            for id in state.childResumes.sorted() {
                let decision = Decide.decide(.resumeForChild(id), state: state, now: .now())
                guard !decision.events.isEmpty else { continue }
                let ticket = stage(decision)
                progressed = true
                Task { await self.durable(ticket) }
            }
        }
        pumpDispatch()
    }

    /// Creating and revoking API keys: decided, appended, and answered once durable.
    func key(_ command: SchedulerCommand) async -> SchedulerReply {
        if let failure = log.failed { return Self.logUnavailable(failure) }
        let decision = Decide.decide(command, state: state, now: .now())
        var seq: UInt64 = 0
        if !decision.events.isEmpty {
            let ticket = stage(decision)
            guard await durable(ticket) else {
                return .unavailable(message: "the event log could not record the key change")
            }
            seq = ticket.envelopes.last?.seq ?? 0
        }
        for case .replyKey(let outcome) in decision.actions {
            switch outcome {
            case .created(let repeatOf):
                guard let repeatOf else { return .keyCreated(seq: seq) }
                do { try await log.waitDurable(repeatOf) } catch {
                    return .unavailable(message: "the event log could not record the key")
                }
                return .keyCreated(seq: repeatOf)
            case .nameTaken: return .conflict(message: "an API key with that name exists already")
            case .revoked: return .keyRevoked(seq: seq)
            case .unknown: return .keyUnknown
            }
        }
        return .unavailable(message: "the key command was not decided")
    }

    /// Queue depth, registered executors and instances waiting too long, for `/metrics`.
    func load() -> (queued: Int, executors: Int, overdue: Int) {
        overdue = overdue.filter { state.queue.contains($0) }
        return (state.queue.count, executors.values.filter { $0.address != nil }.count, overdue.count)
    }
}
