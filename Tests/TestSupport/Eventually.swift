/// What "eventually" means in a test: a bound on liveness, never a claim about speed.
///
/// Every suite runs at once, on a cooperative pool of two threads on this kind of machine, and the
/// CPU-bound suites (fuzzing, generated events, flow runs) hold both threads for several seconds at
/// the start of a run. A task a test waits for (a server's worker, an actor's job) can wait that
/// long for a thread, so a deadline that must not pass in a healthy run is this long, and a test
/// that checks a timeout fires sets its own, short one.
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
