import Foundation
import Logging
import Model
import ReadModels
import Support
import Synchronization
import Wire

/// Per-instance doorbells for whoever follows an instance as it runs: a ring says "look again",
/// and rings that come while nobody looks fold into one, so a slow follower costs one pending
/// ring, never a queue. Ringing an instance nobody follows is one dictionary lookup. While anyone
/// listens, every bell is also rung each `heartbeat`, so a follower that has nothing new can say
/// so to its client (and learn that the client has gone).
final class Doorbells: Sendable {
    private struct State {
        var bells: [InstanceID: [Int: AsyncStream<Void>.Continuation]] = [:]
        var nextToken = 0
        var ticker: Task<Void, Never>?
    }

    private let state = Mutex(State())
    let heartbeat: Duration

    init(heartbeat: Duration = .seconds(15)) { self.heartbeat = heartbeat }

    deinit { state.withLock { $0.ticker?.cancel() } }

    /// A bell for `id`, rung from now on until `stop` is called with its token.
    func listen(_ id: InstanceID) -> (token: Int, rings: AsyncStream<Void>) {
        let (rings, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let token = state.withLock { state in
            state.nextToken += 1
            state.bells[id, default: [:]][state.nextToken] = continuation
            if state.ticker == nil {
                let interval = heartbeat
                state.ticker = Task { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        guard let self else { return }
                        self.ringAll()
                    }
                }
            }
            return state.nextToken
        }
        return (token, rings)
    }

    /// Ends the bell: its follower's wait returns nil.
    func stop(_ id: InstanceID, _ token: Int) {
        let continuation = state.withLock { state -> AsyncStream<Void>.Continuation? in
            let removed = state.bells[id]?.removeValue(forKey: token)
            if state.bells[id]?.isEmpty == true { state.bells[id] = nil }
            return removed
        }
        continuation?.finish()
    }

    func ring(_ id: InstanceID) {
        state.withLock { state in
            guard let bells = state.bells[id] else { return }
            for continuation in bells.values { continuation.yield() }
        }
    }

    private func ringAll() {
        state.withLock { state in
            for bells in state.bells.values { for continuation in bells.values { continuation.yield() } }
        }
    }

    /// How many bells are listened to (for `/metrics`).
    var listening: Int { state.withLock { $0.bells.values.reduce(0) { $0 + $1.count } } }
}
