import Synchronization

/// A value that arrives once, awaited by any number of tasks. Fulfilling twice keeps the first.
/// A waiting task that is cancelled stops waiting at once (with `CancellationError`).
package final class Promise<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, any Error>?
        var waiters: [Int: CheckedContinuation<Value, any Error>] = [:]
        var nextToken = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// Delivers the outcome to every waiter, present and future.
    package func fulfill(_ result: Result<Value, any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// Whether the outcome has arrived (a read that need not wait).
    package var isFulfilled: Bool { state.withLock { $0.result != nil } }

    /// Waits for the outcome.
    package func value() async throws -> Value {
        let token = state.withLock { state -> Int in
            state.nextToken += 1
            return state.nextToken
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { state -> Result<Value, any Error>? in
                    if let result = state.result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[token] = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: token) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
