import Synchronization
import Transport
import Wire

/// The Gateway's side of the command link over nng: requests to the leading Scheduler, many in
/// flight, each bounded by the configured timeout so a missing Scheduler becomes a prompt 503.
struct SchedulerClient: SchedulerLink {
    let socket: LeaderLink
    let timeout: Duration

    func send(_ request: SchedulerRequest, attachment: [UInt8]) async throws -> SchedulerReply {
        let frame = try WireFrame.encode(request, attachment: attachment)
        let reply = try await socket.request(frame, timeout: timeout, resend: Self.resend(request))
        return try WireFrame.decode(SchedulerReply.self, from: reply).message
    }

    func fetch(_ request: SchedulerRequest) async throws -> (SchedulerReply, [UInt8]) {
        let reply = try await socket.request(
            try WireFrame.encode(request), timeout: timeout, resend: Self.resend(request))
        let (message, attachment) = try WireFrame.decode(SchedulerReply.self, from: reply)
        return (message, Array(attachment))
    }

    /// Whether `request` may go to the next leader when the one that may have received it is left.
    /// A start is answered once per request id and a key once per key id, whoever is asked; reads
    /// change nothing. A stop, a revocation or a resume applied by the old leader would be refused
    /// by the next one (it finds the instance ended, the key revoked, the instance no longer
    /// suspended), so those go again only if they were never sent.
    static func resend(_ request: SchedulerRequest) -> LeaderLink.Resend {
        switch request {
        case .start, .createKey, .catchUp, .readEvents, .ping, .stats, .fetchBlob: .always
        case .cancel, .cancelCascade, .revokeKey, .resume: .ifUnsent
        }
    }
}

/// Committed events from the Scheduler's pub/sub socket. A message that does not decode is
/// skipped: the gap it leaves is noticed by sequence and caught up.
///
/// The leader announces its head every second, so `silence` without a message means that no
/// connection reaches it: every Scheduler is dialled afresh. A subscriber only receives, so a
/// connection to a leader that died while cut off from this host stays open as far as it can
/// tell, and its dialer never dials the Scheduler that leads on that host next (seen in the
/// rehearsal: both Gateways' read models stopped at the takeover, every later instance listed
/// ENQUEUED for good).
struct SubscriberEventSource: CommittedEventSource {
    let subscriber: NNGSocket
    var silence: Duration = .seconds(3)
    /// Called at the first silence after messages (not again until messages came back).
    var onSilence: @Sendable () -> Void = {}
    private let silent = SilenceFlag()

    final class SilenceFlag: Sendable { let reported = Atomic<Bool>(false) }

    func next() async -> CommittedEvents? {
        while true {
            do {
                let bytes = try await subscriber.receive(timeout: silence)
                silent.reported.store(false, ordering: .relaxed)
                if let header = try? WireFrame.split(bytes).header, let message = try? CommittedEvents.decode(header) {
                    return message
                }
            } catch {
                if error.isClosed || Task.isCancelled { return nil }
                if error.isTimeout {
                    if !silent.reported.exchange(true, ordering: .relaxed) { onSilence() }
                    subscriber.redialAll()
                }
            }
        }
    }

    func close() { subscriber.close() }
}
