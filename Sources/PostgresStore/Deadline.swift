import EventLog
import Synchronization

/// Runs `operation` and gives up after `limit`, throwing `EventLogError`; the operation is left
/// to end on its own (its caller closes the connection it waits on).
///
/// A query on a connection the server has ended can wait forever (seen with postgres-nio 1.33
/// after `pg_terminate_backend`), and neither a writer nor a leader may wait forever: a leader
/// whose lease renewal hangs must hear that it lost the lead. The operation runs in a task of its
/// own, not a child, because a child that does not end would hold its group open too.
func answered<T: Sendable>(
    within limit: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let waiter = Waiter<T>()
    return try await withCheckedThrowingContinuation { continuation in
        waiter.set(continuation)
        let timer = Task {
            try? await Task.sleep(for: limit)
            if Task.isCancelled { return }
            waiter.resume(with: .failure(EventLogError("\(what): the database did not answer within \(limit)")))
        }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            // The timer ends with the answer: a write a millisecond long leaves no sleeper behind.
            timer.cancel()
            waiter.resume(with: result)
        }
    }
}

/// A continuation resumed by whichever comes first, the answer or the deadline.
private final class Waiter<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ value: CheckedContinuation<T, any Error>) { continuation.withLock { $0 = value } }

    /// Whether this call was the one that resumed it.
    @discardableResult
    func resume(with result: Result<T, any Error>) -> Bool {
        guard let waiting = continuation.withLock({ $0.take() }) else { return false }
        waiting.resume(with: result)
        return true
    }
}
