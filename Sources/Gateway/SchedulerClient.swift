import Transport
import Wire

/// The Gateway's side of the command link over nng: requests to the leading Scheduler, many in
/// flight, each bounded by the configured timeout so a missing Scheduler becomes a prompt 503.
struct SchedulerClient: SchedulerLink {
    let socket: LeaderLink
    let timeout: Duration

    func send(_ request: SchedulerRequest, attachment: [UInt8]) async throws -> SchedulerReply {
        let frame = try WireFrame.encode(request, attachment: attachment)
        let reply = try await socket.request(frame, timeout: timeout)
        return try WireFrame.decode(SchedulerReply.self, from: reply).message
    }
}

/// Committed events from the Scheduler's pub/sub socket. A message that does not decode is
/// skipped: the gap it leaves is noticed by sequence and caught up.
struct SubscriberEventSource: CommittedEventSource {
    let subscriber: NNGSocket

    func next() async -> CommittedEvents? {
        while true {
            do {
                let bytes = try await subscriber.receive()
                if let header = try? WireFrame.split(bytes).header, let message = try? CommittedEvents.decode(header) {
                    return message
                }
            } catch {
                if error.isClosed || Task.isCancelled { return nil }
            }
        }
    }

    func close() { subscriber.close() }
}
