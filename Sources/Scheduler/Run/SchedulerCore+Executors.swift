import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// The executor link: registration, heartbeats and liveness, reports.
extension SchedulerCore {
    func executorRequest(_ request: ExecutorRequest, attachment: ArraySlice<UInt8> = []) async -> ExecutorReply {
        switch request {
        case .storeBlob(let executorID):
            guard let session = executors[executorID], session.address != nil else { return .unknownExecutor }
            session.lastSeen = .now
            do {
                return .stored(try await payloads.put(Array(attachment)))
            } catch {
                logger.error("could not store an instance's files", metadata: ["error": "\(error)"])
                return .unavailable(message: "the server could not store the files")
            }
        case .startChild(let executorID, let parent, let attempt, let requestID, let start):
            guard let session = executors[executorID], session.address != nil else { return .unknownExecutor }
            session.lastSeen = .now
            return await startChild(
                parent: parent, executor: executorID, attempt: attempt, request: requestID, start)
        case .register(let registration):
            register(registration)
            return .ack(upTo: state.reportsApplied[registration.executorID] ?? 0)
        case .ping:
            return .pong(epoch: log.epoch)
        case .heartbeat(let executorID):
            guard let session = executors[executorID], session.address != nil else { return .unknownExecutor }
            session.lastSeen = .now
            return .ack(upTo: state.reportsApplied[executorID] ?? 0)
        case .reports(let executorID, let reports):
            // While the log is failed the state holds events it refused: a repeat of a report
            // applied there but never recorded would be acknowledged as a duplicate, and lost.
            if let failure = log.failed { return .unavailable(message: "the event log cannot be written: \(failure)") }
            guard !recovering else { return .unavailable(message: "the event log is being recovered") }
            guard let session = executors[executorID], session.address != nil else { return .unknownExecutor }
            session.lastSeen = .now
            var upTo: UInt64 = 0
            var tickets: [AppendTicket] = []
            var actions: [SchedulerAction] = []
            for report in reports {
                let decision = Decide.decide(.report(executorID, report), state: state, now: .now())
                tickets.append(stage(decision))
                actions += decision.actions
                upTo = max(upTo, report.seq)
            }
            for ticket in tickets {
                guard await durable(ticket) else {
                    return .unavailable(message: "the event log could not record reports")
                }
            }
            actions.forEach(perform)
            pumpDispatch()
            return .ack(upTo: upTo)
        }
    }

    func register(_ registration: ExecutorRegistration) {
        let id = registration.executorID
        let name = id.rawValue.split(separator: "/").first.map(String.init) ?? id.rawValue
        // An executor that restarted comes back as a new boot: whatever the old boot had is lost.
        for other in Array(executors.keys) where other != id && other.rawValue.hasPrefix(name + "/") {
            declareLost(other, reason: "it restarted")
        }
        // The same boot registering again (after a Scheduler restart, or twice at once) keeps its
        // link: closing a socket right after it dialled hangs up during the handshake, and
        // dispatches in flight on it would fail for nothing.
        let socket: NNGSocket?
        if let previous = executors[id], previous.address == registration.address, let kept = previous.socket {
            socket = kept
        } else {
            executors[id]?.close()
            do {
                let s = try NNGSocket(.req, maxMessageBytes: 1 << 20)
                try s.dial(registration.address)
                socket = s
            } catch {
                logger.error("cannot reach executor", metadata: ["executor.id": "\(id)", "error": "\(error)"])
                socket = nil
            }
        }
        let session = ExecutorSession(
            id: id, address: registration.address, capacity: registration.capacity, socket: socket)
        executors[id] = session
        watch(session)
        logger.info("executor registered", metadata: ["executor.id": "\(id)", "capacity": "\(registration.capacity)"])

        let running = Set(registration.running)
        for instance in state.assigned[id] ?? [] where !running.contains(instance) {
            guard let status = state.instances[instance]?.status ?? state.handlers[instance]?.status else { continue }
            if status == .starting || status == .resuming {
                requeue(instance, reason: "the executor registered again without it")
            } else if status == .running {
                let decision = Decide.decide(
                    .executorLost(instance, id, reason: "the executor no longer runs it"), state: state, now: .now())
                Task { await self.commit(decision) }
            }
        }
        for instance in running where (state.instances[instance]?.executor ?? state.handlers[instance]?.executor) != id
        {
            // Runs of earlier attempts only: a later one may be on its way to this executor.
            perform(
                .killOnExecutor(
                    instance, id, upTo: state.instances[instance]?.attempt ?? state.handlers[instance]?.attempt))
        }
        pumpDispatch()
    }

    /// Re-arms a deadline for the executor after each heartbeat; silence past the loss timeout
    /// declares it lost. This is a deadline, not a poll: nothing is read until it expires.
    func watch(_ session: ExecutorSession) {
        let timeout = config.executorLossTimeout
        Task { [weak session] in
            while let current = session {
                let deadline = current.lastSeen + timeout
                if ContinuousClock.now >= deadline {
                    self.declareLostIfCurrent(current)
                    return
                }
                try? await Task.sleep(until: deadline, clock: .continuous)
            }
        }
    }

    func declareLostIfCurrent(_ session: ExecutorSession) {
        guard executors[session.id] === session else { return }
        declareLost(session.id, reason: "no heartbeat for \(config.executorLossTimeout)")
    }

    func declareLost(_ executor: ExecutorID, reason: String) {
        executors.removeValue(forKey: executor)?.close()
        logger.warning("executor lost", metadata: ["executor.id": "\(executor)", "reason": "\(reason)"])
        for id in state.assigned[executor] ?? [] {
            guard let status = state.instances[id]?.status ?? state.handlers[id]?.status else { continue }
            if status == .starting || status == .resuming {
                requeue(id, reason: "executor lost: \(reason)")
            } else {
                let decision = Decide.decide(.executorLost(id, executor, reason: reason), state: state, now: .now())
                Task { await self.commit(decision) }
            }
        }
        pumpDispatch()
    }
}
