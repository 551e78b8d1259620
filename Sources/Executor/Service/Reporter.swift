import Logging
import Model
import ProcessSupport
import Transport
import Wire

/// Sends reports to the Scheduler in order, each batch acknowledged once durable. While a batch is
/// in flight, new reports queue up and consecutive log lines of one instance merge into one report,
/// so a chatty process costs few events. Unacknowledged reports are resent (the Scheduler applies
/// each sequence number once); `unknownExecutor` makes the executor register again first.
actor Reporter {
    private let executorID: ExecutorID
    private let socket: LeaderLink
    private let logger: Logger
    private var registration: (@Sendable () async -> ExecutorRegistration)?
    private var nextSeq: UInt64 = 1
    private var pending: [Report] = []
    private var inFlight: [Report] = []
    private var sending = false
    private(set) var registered = false

    init(executorID: ExecutorID, socket: LeaderLink, logger: Logger) {
        self.executorID = executorID
        self.socket = socket
        self.logger = logger
    }

    /// Where registrations get the executor's current instances from.
    func provideRegistration(_ provider: @escaping @Sendable () async -> ExecutorRegistration) {
        registration = provider
    }

    /// Instances with reports not yet acknowledged: the Scheduler must not give up on them.
    var unacknowledgedInstances: Set<InstanceID> { Set((inFlight + pending).map(\.instanceID)) }

    /// Whether how `id`'s run ended (finished, failed or suspended) waits to be acknowledged.
    func hasUnacknowledgedEnd(of id: InstanceID) -> Bool {
        (inFlight + pending).contains { report in
            guard report.instanceID == id else { return false }
            switch report.kind {
            case .finished, .failed, .suspended: return true
            default: return false
            }
        }
    }

    /// `handler` and `attempt`: the run this is about (its dispatch's).
    func report(_ instanceID: InstanceID, _ kind: ReportKind, handler: String? = nil, attempt: Int? = nil) {
        if var last = pending.last, last.instanceID == instanceID, last.handler == handler, last.attempt == attempt,
            let merged = Reporter.merge(last.kind, kind)
        {
            last.kind = merged
            pending[pending.count - 1] = last
        } else {
            pending.append(
                Report(
                    seq: nextSeq, instanceID: instanceID, kind: kind, at: .now(), handler: handler, attempt: attempt))
            nextSeq += 1
        }
        kick()
    }

    /// Consecutive log lines (or step records) of one instance travel as one report, up to a bound.
    static func merge(_ earlier: ReportKind, _ later: ReportKind) -> ReportKind? {
        switch (earlier, later) {
        case (.log(let a), .log(let b)) where a.count < 1000 && weight(earlier) + weight(later) <= maxReportWeight:
            .log(lines: a + b)
        case (.steps(let a), .steps(let b)) where a.count < 5000: .steps(records: a + b)
        default: nil
        }
    }

    /// Bounds on what travels together. Log lines are at most 64 KiB each (the runner cuts them),
    /// so even text that JSON escapes sixfold keeps a batch far below the Scheduler's 64 MiB
    /// message limit, which nng would enforce by dropping the message (and this reporter would
    /// resend it forever).
    static let maxReportWeight = 1 << 20
    static let maxBatchWeight = 4 << 20

    /// Roughly the bytes a report takes on the wire.
    static func weight(_ kind: ReportKind) -> Int {
        switch kind {
        case .log(let lines): lines.reduce(0) { $0 + $1.text.utf8.count + 64 }
        case .steps(let records): records.count * 160
        default: 256
        }
    }

    /// The first reports of `pending` that fit in one message (always at least one).
    static func batchCount(_ pending: [Report]) -> Int {
        var total = 0
        for (index, report) in pending.enumerated() {
            total += weight(report.kind)
            if total > maxBatchWeight { return max(index, 1) }
        }
        return pending.count
    }

    /// The registration under way, shared by everyone who asks for one meanwhile (a heartbeat
    /// told "unknown executor" and a batch of reports, say): one executor boot, one registration.
    private var registering: Task<Void, Never>?

    /// Registers (again); returns once the Scheduler has answered, or once the caller is cancelled
    /// (the executor stopping), which ends the attempt: an executor the Scheduler never answers
    /// (refused by TLS, say) stopped only when its 5 s stop deadline forced it.
    func register() async {
        if let registering { return await Self.await(registering) }
        let attempt = Task { await self.registerUntilAnswered() }
        registering = attempt
        await Self.await(attempt)
        registering = nil
    }

    private static func await(_ attempt: Task<Void, Never>) async {
        await withTaskCancellationHandler {
            await attempt.value
        } onCancel: {
            attempt.cancel()
        }
    }

    private func registerUntilAnswered() async {
        var refusalsReported: UInt64 = 0
        while true {
            // A TLS handshake that failed is the one refusal nng counts but never reports: say so.
            let refusals = socket.dialerAuthFailures()
            if refusals > refusalsReported {
                refusalsReported = refusals
                logger.error(
                    "the scheduler's link refused the TLS handshake: this executor's certificate, or the scheduler's, is not signed by the deployment's CA (--tls)",
                    metadata: ["handshakes refused": "\(refusals)"])
            }
            guard let provider = registration else { return }
            let registration = await provider()
            do {
                let reply = try await send(.register(registration))
                if case .ack = reply {
                    if !registered {
                        logger.info("registered with the scheduler", metadata: ["executor.id": "\(executorID)"])
                    }
                    registered = true
                    return
                }
            } catch {
                if error.isClosed { return }
            }
            if Task.isCancelled { return }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    func heartbeat() async {
        guard registered else { return }
        do {
            if case .unknownExecutor = try await send(.heartbeat(executorID: executorID)) {
                registered = false
                await register()
            }
        } catch {
            if !error.isTimeout { logger.debug("heartbeat failed", metadata: ["error": "\(error)"]) }
        }
    }

    private func kick() {
        guard !sending, !pending.isEmpty else { return }
        sending = true
        Task { await self.drain() }
    }

    private func drain() async {
        while !pending.isEmpty {
            if !registered { await register() }
            let count = Reporter.batchCount(pending)
            inFlight = Array(pending[..<count])
            pending.removeFirst(count)
            do {
                switch try await send(.reports(executorID: executorID, reports: inFlight)) {
                case .ack(let upTo):
                    inFlight.removeAll { $0.seq <= upTo }
                    pending = inFlight + pending
                    inFlight = []
                case .unknownExecutor:
                    registered = false
                    pending = inFlight + pending
                    inFlight = []
                case .pong, .stored, .childStarted, .childRefused:
                    // Not an answer to reports (a Scheduler of another version?): send them again.
                    pending = inFlight + pending
                    inFlight = []
                    try? await Task.sleep(for: .milliseconds(200))
                case .unavailable(let message):
                    logger.warning(
                        "the scheduler could not record reports; retrying", metadata: ["reason": "\(message)"])
                    pending = inFlight + pending
                    inFlight = []
                    try? await Task.sleep(for: .milliseconds(200))
                }
            } catch {
                pending = inFlight + pending
                inFlight = []
                if error.isClosed { break }
                // The Scheduler is down or restarting: retry after a short pause.
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        sending = false
    }

    /// Stores `bytes` (an archive of an instance's files) with the Scheduler's payloads; nil when
    /// that did not succeed within `limit` (or the link closed).
    func storeBlob(_ bytes: [UInt8], within limit: Duration = .seconds(60)) async -> PayloadRef? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if !registered { await register() }
            do {
                let frame = try WireFrame.encode(ExecutorRequest.storeBlob(executorID: executorID), attachment: bytes)
                let reply = try await socket.request(frame, timeout: .seconds(10), resend: .always)
                switch try WireFrame.decode(ExecutorReply.self, from: reply).message {
                case .stored(let ref): return ref
                case .unknownExecutor: registered = false
                default: break
                }
            } catch {
                if (error as? NNGError)?.isClosed == true { return nil }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    /// Asks the Scheduler to start a child of `parent` (run here in dispatch `attempt`); a repeat
    /// after a lost reply carries the same request id, so it names the same child. Refused when
    /// the Scheduler cannot be reached within `limit`.
    func startChild(
        _ start: ChildStart, parent: InstanceID, attempt: Int, within limit: Duration = .seconds(60)
    ) async -> RunnerReply {
        let request = RequestID.random()
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if !registered { await register() }
            do {
                let reply = try await send(
                    .startChild(executorID: executorID, parent: parent, attempt: attempt, requestID: request, start))
                switch reply {
                case .childStarted(let id): return .childStarted(id)
                case .childRefused(let reason): return .childRefused(reason)
                case .unknownExecutor: registered = false
                default: break
                }
            } catch {
                if error.isClosed { return .childRefused("the executor is shutting down") }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return .childRefused("the Scheduler could not be reached within \(limit)")
    }

    /// Every executor request may go to the next leader when the one that may have received it is
    /// left (`resend: .always`): a registration or a heartbeat says the same again, reports are
    /// numbered per boot and applied once, a child start is answered once per request id, a blob
    /// is named by its digest.
    private func send(_ request: ExecutorRequest) async throws(NNGError) -> ExecutorReply {
        let frame: [UInt8]
        do { frame = try WireFrame.encode(request) } catch { return .unavailable(message: "\(error)") }
        let reply = try await socket.request(frame, timeout: .seconds(5), resend: .always)
        do {
            return try WireFrame.decode(ExecutorReply.self, from: reply).message
        } catch {
            return .unavailable(message: "\(error)")
        }
    }
}
