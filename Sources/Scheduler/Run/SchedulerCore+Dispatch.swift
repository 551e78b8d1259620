import EventLog
import Foundation
import Logging
import Model
import Transport
import Wire

/// Dispatch: queued instances to executors with free capacity.
extension SchedulerCore {
    /// Gives waiting instances to executors with free capacity, least loaded first.
    func pumpDispatch() {
        guard log.failed == nil, !recovering else { return }
        // Handlers first: their instances have ended, and a handler is short.
        while state.handlerQueue.count > 0 || state.queue.count > 0 {
            let candidates = executors.values.filter { $0.socket != nil && load(of: $0.id) < $0.capacity }
            guard let executor = candidates.min(by: { load(of: $0.id) < load(of: $1.id) }) else { return }
            let command: SchedulerCommand
            if let id = state.handlerQueue.pop() {
                command = .assignHandler(id, executor.id)
            } else if let id = state.queue.pop() {
                command = .assign(id, executor.id)
            } else {
                return
            }
            let decision = Decide.decide(command, state: state, now: .now())
            guard !decision.events.isEmpty else { continue }
            let ticket = stage(decision)
            Task {
                guard await self.durable(ticket) else { return }
                self.performAll(decision.actions)
            }
        }
    }

    func load(of executor: ExecutorID) -> Int { state.assigned[executor]?.count ?? 0 }

    func performAll(_ actions: [SchedulerAction]) { actions.forEach(perform) }

    func perform(_ action: SchedulerAction) {
        switch action {
        case .replyStarted, .replyCancelled, .replyKey, .replyResumed, .replyChild:
            break
        case .dispatch(let id, let executor, let attempt):
            guard let tracked = state.instances[id], let created = tracked.created, let session = executors[executor],
                let socket = session.socket
            else {
                return
            }
            let dispatch = Dispatch(
                instanceID: id, attempt: attempt, entryPoint: created.entryPoint, arguments: created.arguments,
                out: created.out)
            guard tracked.status == .resuming, let suspended = tracked.suspended else {
                return send(.dispatch(dispatch), payload: created.payload, to: socket, for: id, executor)
            }
            // A resumed run: the payload, then the state its suspend stored.
            let resumed = tracked.resumed
            let payloads = payloads
            send(to: socket, for: id, executor) {
                let payload = try await payloads.get(created.payload)
                let stateBytes = try await payloads.get(suspended.state)
                var dispatch = dispatch
                dispatch.resume = Resumption(
                    event: resumed?.event ?? suspended.event, variables: resumed?.variables ?? [:],
                    payloadBytes: payload.count, child: resumed?.child)
                return try WireFrame.encode(ExecutorCommand.dispatch(dispatch), attachment: payload + stateBytes)
            }
        case .dispatchHandler(let id, let executor, let attempt):
            guard let handler = state.handlers[id], let socket = executors[executor]?.socket else { return }
            let command = ExecutorCommand.dispatch(
                Dispatch(
                    instanceID: id, attempt: attempt, entryPoint: handler.flow, arguments: handler.variables, out: [],
                    handler: handler.flow))
            send(command, payload: handler.created.payload, to: socket, for: id, executor)
        case .killOnExecutor(let id, let executor, let only, let upTo):
            guard let socket = executors[executor]?.socket else { return }
            let timeout = config.executorRequestTimeout
            let logger = logger
            Task {
                do {
                    _ = try await socket.request(
                        try WireFrame.encode(ExecutorCommand.cancel(instanceID: id, only: only, upTo: upTo)),
                        timeout: timeout)
                } catch {
                    logger.warning(
                        "could not tell an executor to stop an instance",
                        metadata: ["instance.id": "\(id)", "executor.id": "\(executor)", "error": "\(error)"])
                }
            }
        }
    }

    /// Sends a dispatch with its payload; a refusal or a failure to deliver puts it back in its queue.
    private func send(
        _ command: ExecutorCommand, payload ref: PayloadRef, to socket: NNGSocket, for id: InstanceID,
        _ executor: ExecutorID
    ) {
        let payloads = payloads
        send(to: socket, for: id, executor) {
            try WireFrame.encode(command, attachment: try await payloads.get(ref))
        }
    }

    /// Sends the dispatch `frame` makes; a refusal or a failure to deliver puts it back in its queue.
    private func send(
        to socket: NNGSocket, for id: InstanceID, _ executor: ExecutorID,
        _ frame: @escaping @Sendable () async throws -> [UInt8]
    ) {
        let timeout = config.executorRequestTimeout
        Task {
            do {
                let reply = try await socket.request(try await frame(), timeout: timeout)
                let (answer, _) = try WireFrame.decode(ExecutorCommandReply.self, from: reply)
                if case .refused(let reason) = answer { self.dispatchRefused(id, executor, reason: reason) }
            } catch {
                self.dispatchRefused(id, executor, reason: "\(error)")
            }
        }
    }

    func dispatchRefused(_ id: InstanceID, _ executor: ExecutorID, reason: String) {
        let owner =
            state.instances[id].map { ($0.executor, $0.status) } ?? state.handlers[id].map { ($0.executor, $0.status) }
        guard let (assignee, status) = owner, assignee == executor, status == .starting || status == .resuming else {
            return
        }
        logger.warning(
            "dispatch failed; the instance waits for another executor",
            metadata: ["instance.id": "\(id)", "executor.id": "\(executor)", "reason": "\(reason)"])
        requeue(id, reason: "the executor refused the dispatch: \(reason)")
        pumpDispatch()
    }
}
