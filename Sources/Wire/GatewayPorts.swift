/// The Gateway's side of its command link to the Scheduler: one request, one reply. The real one
/// is nng req/rep (`SchedulerClient` in the Gateway); tests use an in-memory Scheduler
/// (`InMemoryScheduler` in `TestSupport`).
package protocol SchedulerLink: Sendable {
    /// Sends `request` (with the ZIP of a start as `attachment`) and returns the reply.
    ///
    /// - Throws: when no reply came in time (the Gateway answers 503; nothing was recorded by it).
    func send(_ request: SchedulerRequest, attachment: [UInt8]) async throws -> SchedulerReply

    /// Sends `request` and returns the reply with the bytes it carries (`fetchBlob`).
    func fetch(_ request: SchedulerRequest) async throws -> (SchedulerReply, [UInt8])
}

extension SchedulerLink {
    package func send(_ request: SchedulerRequest) async throws -> SchedulerReply {
        try await send(request, attachment: [])
    }

    /// A link whose replies carry no bytes.
    package func fetch(_ request: SchedulerRequest) async throws -> (SchedulerReply, [UInt8]) {
        (try await send(request, attachment: []), [])
    }
}

/// Where a Gateway hears of committed events: the Scheduler's pub/sub in production. Messages may
/// be lost (the Gateway catches up over `SchedulerLink` when it sees a gap), never reordered.
package protocol CommittedEventSource: Sendable {
    /// The next message; nil once the source is closed.
    func next() async -> CommittedEvents?
    /// Stops the source: a pending and every later `next` returns nil.
    func close()
}
