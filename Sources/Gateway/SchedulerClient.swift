import Transport
import Wire

/// The Gateway's side of the command link: one req socket, many requests in flight, each bounded
/// by the configured timeout so a missing Scheduler becomes a prompt 503.
struct SchedulerClient: Sendable {
    let socket: NNGSocket
    let timeout: Duration

    func send(_ request: SchedulerRequest, attachment: [UInt8] = []) async throws -> SchedulerReply {
        let frame = try WireFrame.encode(request, attachment: attachment)
        let reply = try await socket.request(frame, timeout: timeout)
        return try WireFrame.decode(SchedulerReply.self, from: reply).message
    }
}
