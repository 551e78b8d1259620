import CNNG
import Synchronization

/// Requests to whichever of several peers leads: the Gateway's and the executor's link to a
/// deployment's Schedulers, given every Scheduler's address.
///
/// One req socket per address. With a single address the link is that socket and nothing more.
/// With several, a probe asks each connected socket, every `interval`, who it is (`probe`); `rank`
/// reads the answer (the Scheduler's epoch; nil: not leading), and requests go to the socket that
/// answered with the highest rank. One socket shared by every address would not do: nng hands a
/// request to any connected pipe, and a leader that is paused or cut off keeps its TCP connections
/// open (no one closes them), so a share of the requests would wait out their whole timeout on
/// it, for as long as the connection lasts (seen in the rehearsal: every second start through a
/// Gateway took 10 s and answered 503 after the leader's link was cut, until the connection died).
///
/// A leader is left at once when its connection is gone or another answers with a rank as high or
/// higher; for a lower rank, or for no one, only after `patience` probes in a row that it did not
/// answer (one slow answer on a busy host is not a new leader). While no peer leads, requests wait
/// (within their own timeout) and are sent once one does.
package final class LeaderLink: Sendable {
    package typealias Rank = @Sendable ([UInt8]) -> UInt64?

    package let addresses: [String]
    let sockets: [NNGSocket]
    private let probe: [UInt8]
    private let rank: Rank
    private let interval: Duration
    private let probeTimeout: Duration
    private let patience: Int

    struct State {
        /// The socket requests go to, and the rank it answered with.
        var leader: (index: Int, rank: UInt64)?
        /// Probes in a row that the leader did not answer.
        var unanswered = 0
        var closed = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var cancelled: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
        var prober: Task<Void, Never>?
    }
    private let state = Mutex(State())

    /// Dials every address of the comma-separated `list` (each on a socket of its own).
    package init(
        _ list: String, maxMessageBytes: Int = 1 << 20, probe: [UInt8], rank: @escaping Rank,
        every interval: Duration = .milliseconds(200), probeTimeout: Duration = .milliseconds(500), patience: Int = 2
    ) throws(NNGError) {
        addresses = list.split(separator: ",").map(String.init)
        guard !addresses.isEmpty else {
            throw NNGError(code: Int32(NNG_EADDRINVAL.rawValue), operation: "dial \(list): no address")
        }
        var sockets: [NNGSocket] = []
        for address in addresses {
            // A standby refuses the dial until it leads; then it is dialled within 100 ms.
            let socket = try NNGSocket(
                .req, maxMessageBytes: maxMessageBytes,
                reconnectMax: addresses.count > 1 ? .milliseconds(100) : .milliseconds(500))
            sockets.append(socket)
            do { try socket.dial(address) } catch {
                for opened in sockets { opened.close() }
                throw error
            }
        }
        self.sockets = sockets
        self.probe = probe
        self.rank = rank
        self.interval = interval
        self.probeTimeout = probeTimeout
        self.patience = patience
        if sockets.count == 1 {
            state.withLock { $0.leader = (0, 0) }
        } else {
            // Holds the link only while it probes: a link nobody closes is still freed.
            let task = Task { [weak self] in
                while !Task.isCancelled {
                    guard let interval = await self?.probeOnce() else { return }
                    try? await Task.sleep(for: interval)
                }
            }
            state.withLock { $0.prober = task }
        }
    }

    /// The address requests go to now, if any peer answered.
    package var leaderAddress: String? { state.withLock { $0.leader.map { addresses[$0.index] } } }

    /// What may be sent again to the next leader when the lead moves while a request waits.
    package enum Resend: Sendable {
        /// Only a request no peer was handed: one queued on the socket of a leader whose
        /// connection went before it could be sent.
        case ifUnsent
        /// Also one the old leader may have received and applied: for a request that is safe to
        /// apply twice (a Scheduler command with a request id its state remembers, a numbered
        /// report, a blob named by its digest, a read).
        case always
    }

    /// Sends `bytes` to the leading peer and waits for its reply, all within `timeout`.
    ///
    /// With several peers, a request whose leader is left while it waits (its connection went, or
    /// another peer leads now) is sent to the peer that leads next, within the same timeout, as
    /// far as `resend` allows: otherwise a request queued on the socket of a leader whose
    /// connection went would wait out its whole timeout with no one to answer it (seen in the
    /// failover test: 3 of 20 starts waited the client's own 5 s). A request `resend` does not let
    /// go again waits for its own answer or fails as before (the caller answers 503).
    package func request(
        _ bytes: [UInt8], timeout: Duration, resend: Resend = .ifUnsent
    ) async throws(NNGError) -> [UInt8] {
        if sockets.count == 1 { return try await sockets[0].request(bytes, timeout: timeout) }
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let index = await leader(before: deadline) else {
                if state.withLock({ $0.closed }) {
                    throw NNGError(code: Int32(NNG_ECLOSED.rawValue), operation: "send request")
                }
                throw NNGError(code: Int32(NNG_ETIMEDOUT.rawValue), operation: "send request: no Scheduler answers")
            }
            switch await attempt(bytes, on: index, before: deadline, resend: resend) {
            case .answered(let reply): return reply
            case .failed(let error) where error.code == Int32(NNG_ECONNRESET.rawValue) && resend == .always:
                // Its connection went after it was sent: the next leader is asked.
                continue
            case .failed(let error): throw error
            case .leaderLeft: continue
            }
        }
    }

    private enum Attempt: Sendable {
        case answered([UInt8])
        case failed(NNGError)
        /// Cancelled (and safe to send again) because its leader was left.
        case leaderLeft
    }

    /// `bytes` sent on the socket at `index`, until it answers or fails, or, as far as `resend`
    /// allows, until that socket is no longer the leader's (seen at the end of each probe).
    private func attempt(
        _ bytes: [UInt8], on index: Int, before deadline: ContinuousClock.Instant, resend: Resend
    ) async -> Attempt {
        let sent = SentFlag()
        // The watch ends without an outcome when the request goes on by itself (to its answer or its
        // timeout); the request always ends with one.
        return await withTaskGroup(of: Attempt?.self) { group in
            group.addTask {
                do throws(NNGError) {
                    let reply = try await self.sockets[index].request(
                        bytes, timeout: deadline - .now, sent: { sent.value.store(true, ordering: .relaxed) })
                    return .answered(reply)
                } catch {
                    return .failed(error)
                }
            }
            group.addTask {
                while ContinuousClock.now < deadline, !Task.isCancelled {
                    await self.nextProbe(before: deadline)
                    let left = self.state.withLock { $0.closed || $0.leader?.index != index }
                    guard !Task.isCancelled, left || self.sockets[index].pipesAdded.live == 0 else { continue }
                    // Sent and not to be sent again: it waits for its answer or its timeout.
                    if resend == .ifUnsent && sent.value.load(ordering: .relaxed) { return nil }
                    return .leaderLeft
                }
                return nil
            }
            var outcome: Attempt = .failed(NNGError(code: Int32(NNG_ETIMEDOUT.rawValue), operation: "send request"))
            for await case let result? in group {
                outcome = result
                break
            }
            group.cancelAll()
            return outcome
        }
    }

    private final class SentFlag: Sendable { let value = Atomic<Bool>(false) }

    /// Connections its dialers could not make because TLS refused them (every address's).
    package func dialerAuthFailures() -> UInt64 { sockets.reduce(0) { $0 + $1.dialerAuthFailures() } }

    package func close() {
        let (prober, waiters) = state.withLock { state in
            state.closed = true
            defer { state.waiters = [:] }
            return (state.prober, Array(state.waiters.values))
        }
        prober?.cancel()
        for waiter in waiters { waiter.resume() }
        for socket in sockets { socket.close() }
    }

    /// The leader's socket, once it has a connection: until `deadline`, each probe's end is
    /// awaited while there is none (or its connection is gone: a request would wait in a socket
    /// with no pipe for its whole timeout).
    private func leader(before deadline: ContinuousClock.Instant) async -> Int? {
        while true {
            let (leader, closed) = state.withLock { ($0.leader?.index, $0.closed) }
            if closed { return nil }
            if let leader, sockets[leader].pipesAdded.live > 0 { return leader }
            if ContinuousClock.now >= deadline { return nil }
            await nextProbe(before: deadline)
        }
    }

    /// Returns when the next probe has ended, the link is closed, or `deadline` has passed.
    private func nextProbe(before deadline: ContinuousClock.Instant) async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let now = self.state.withLock { state -> Bool in
                            if state.closed || state.cancelled.remove(id) != nil { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if now { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                        if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
                        state.cancelled.insert(id)
                        return nil
                    }
                    waiter?.resume()
                }
            }
            group.addTask { try? await Task.sleep(until: deadline) }
            _ = await group.next()
            group.cancelAll()
        }
        state.withLock { _ = $0.cancelled.remove(id) }
    }

    /// Asks every connected socket at once; the highest rank leads (the current leader keeps a tie).
    /// Returns the time until the next probe.
    @discardableResult
    func probeOnce() async -> Duration {
        let answers = await withTaskGroup(of: (Int, UInt64?).self) { group in
            for (index, socket) in sockets.enumerated() {
                group.addTask {
                    // A standby binds nothing: its socket has no pipe, and nothing to ask.
                    guard socket.pipesAdded.live > 0,
                        let reply = try? await socket.request(self.probe, timeout: self.probeTimeout)
                    else { return (index, nil) }
                    return (index, self.rank(reply))
                }
            }
            var answers: [Int: UInt64] = [:]
            for await (index, rank) in group { if let rank { answers[index] = rank } }
            return answers
        }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.closed else { return [] }
            defer { state.waiters = [:] }
            let current = state.leader?.index
            let best = answers.max(by: { a, b in a.value != b.value ? a.value < b.value : b.key == current })
            if let best, let leader = state.leader, answers[leader.index] == nil, best.value < leader.rank,
                sockets[leader.index].pipesAdded.live > 0
            {
                // The leader missed this probe (a slow answer, a busy host) and only lower ranks
                // answered: ranks are epochs, so those are deposed leaders that have not noticed yet.
                // They lead only once the leader has been silent for `patience` probes.
                state.unanswered += 1
                if state.unanswered >= patience {
                    state.leader = (best.key, best.value)
                    state.unanswered = 0
                }
            } else if let best {
                state.leader = (best.key, best.value)
                state.unanswered = 0
            } else if let current, sockets[current].pipesAdded.live == 0 {
                // Its connection is gone (the process died, or was cut off and the link noticed).
                state.leader = nil
            } else {
                // Silent but connected: `patience` probes before it is left.
                state.unanswered += 1
                if state.unanswered >= patience { state.leader = nil }
            }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
        return interval
    }
}
