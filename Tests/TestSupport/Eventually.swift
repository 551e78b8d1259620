/// What "eventually" means in a test: a bound on liveness, never a claim about speed.
///
/// Every suite runs at once, on a cooperative pool of two threads on this kind of machine. A test
/// must not hold a thread for long: CPU-bound loops (fuzzing, generated events, folds) yield after
/// each round, and a child process is awaited through `Child`, never by `waitUntilExit` or a
/// read to the end of a pipe. Even so, a task a test waits for can wait seconds for a thread on a
/// machine that something else keeps busy, so a deadline that must not pass in a healthy run is
/// this long, and a test that checks a timeout fires sets its own, short one.
package enum Liveness {
    /// How long a test waits for something that must happen.
    package static let deadline: Duration = .seconds(60)
}

/// Checks `condition` every `interval` until it holds (true) or `within` has passed (false).
package func eventually(
    within limit: Duration = Liveness.deadline, every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while true {
        if try await condition() { return true }
        guard ContinuousClock.now < deadline else { return false }
        try? await Task.sleep(for: interval)
    }
}
