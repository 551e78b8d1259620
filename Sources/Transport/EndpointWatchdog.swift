// Past 400 lines on purpose: what libnng 1.5.2 needs watched is here, each watch beside the defect it
// answers (decision 0004): listeners and dialers nng stopped, closes that never return, operations
// past their timeout; one tick drives them all. The reaper's canary is in ReaperCanary.swift.

import CNNG
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the watchdog reports.
package enum TransportEvent: Sendable {
    /// A listener or dialer that nng had stopped was started again.
    case endpointRestarted(url: String, kind: String)
    /// An `nng_close` has not returned for `EndpointWatchdog.closeLimit`: libnng 1.5.2 can leave a
    /// close waiting forever on an aio that was prepared but never started (nng #1813, fixed in
    /// 1.8), or wedge its one reaper thread on a pipe whose peer left while a message was being
    /// received; then connections of the process are no longer torn down or dialled again. Only a restart of the
    /// process helps; the services exit so that their supervisor (systemd, accord-local) restarts
    /// them.
    case closeStuck(since: ContinuousClock.Instant)
    /// A pipe the watchdog's own canary connection closed has not been torn down for
    /// `EndpointWatchdog.closeLimit` (`ReaperCanary`): nng's reaper is wedged although no socket
    /// is being closed. Only a restart helps, as for `closeStuck`.
    case reaperStuck(since: ContinuousClock.Instant)
    /// An operation given a timeout (`AIO.run`) has not completed `EndpointWatchdog.overdueLimit`
    /// after its timeout: nng's timers no longer fire, so no request of this process times out,
    /// and a link whose every probe waits for ever stops looking for its leader. Only a restart
    /// helps, as for `closeStuck`.
    case timeoutMissed(operation: String, due: ContinuousClock.Instant)
    /// A `tls+tcp://` listener refused `count` more connections whose certificate the
    /// deployment's CA did not sign (or that brought none): someone without the certificates is
    /// trying to join.
    case tlsRefused(url: String, count: UInt64)
}

/// A socket's listener or dialer, and what the watchdog last saw of it.
struct Endpoint {
    enum Handle {
        case listener(nng_listener)
        case dialer(nng_dialer)
    }

    var handle: Handle
    let url: String
    /// A dialer's "other errors" count when last checked; a listener's "other" and "canceled"
    /// counts, summed, when it was last found accepting.
    var otherErrors: UInt64 = 0
    /// A listener's explained errors when it was last found accepting: the socket's pipes removed
    /// less the listener's "disconnect" count (a pipe that ends in an error other than a reset, a
    /// peer leaving over ipc among them, counts as "other" on its listener too).
    var explainedErrors: Int64 = 0
    /// A listener's probe is under way.
    var probing = false
    /// A listener that was closed to be restarted and could not listen again yet.
    var needsListen = false
    /// A TLS listener's refused handshakes ("auth") already reported.
    var refusalsReported: UInt64 = 0

    static func ipcPath(_ url: String) -> String? {
        url.hasPrefix("ipc://") ? String(url.dropFirst("ipc://".count)) : nil
    }

    /// Listens on `url`; for `ipc://`, a socket file left behind (by a killed process, or by the
    /// listener this one replaces) is removed first.
    static func listen(_ socket: nng_socket, _ url: String, tls: TLSConfigs.Configs?) throws(NNGError) -> Endpoint {
        if let path = ipcPath(url) { unlink(path) }
        var listener = nng_listener()
        guard isTLS(url) else {
            try check(nng_listen(socket, url, &listener, 0), "listen on \(url)")
            return Endpoint(handle: .listener(listener), url: url)
        }
        try check(nng_listener_create(&listener, socket, url), "listen on \(url)")
        do {
            try TLSConfigs.configure(listener: listener, url: url, tls)
            try check(nng_listener_start(listener, 0), "listen on \(url)")
        } catch {
            nng_listener_close(listener)
            throw error
        }
        return Endpoint(handle: .listener(listener), url: url)
    }

    /// Dials `url` in the background (connects when the peer appears, reconnects after it goes).
    static func dial(_ socket: nng_socket, _ url: String, tls: TLSConfigs.Configs?) throws(NNGError) -> Endpoint {
        var dialer = nng_dialer()
        guard isTLS(url) else {
            try check(nng_dial(socket, url, &dialer, Int32(NNG_FLAG_NONBLOCK)), "dial \(url)")
            return Endpoint(handle: .dialer(dialer), url: url)
        }
        try check(nng_dialer_create(&dialer, socket, url), "dial \(url)")
        do {
            try TLSConfigs.configure(dialer: dialer, url: url, tls)
            try check(nng_dialer_start(dialer, Int32(NNG_FLAG_NONBLOCK)), "dial \(url)")
        } catch {
            nng_dialer_close(dialer)
            throw error
        }
        return Endpoint(handle: .dialer(dialer), url: url)
    }

    /// `tls+tcp://`: a link that needs this process's certificates (`NNGSocket.useTLS`).
    static func isTLS(_ url: String) -> Bool { url.hasPrefix("tls+tcp://") }

    var kind: String {
        switch handle {
        case .listener: "listener"
        case .dialer: "dialer"
        }
    }
}

/// Restarts listeners and dialers that nng has silently stopped.
///
/// Debian 12's libnng (1.5.2) ends a listener's accept loop, or a dialer's redialling, for good
/// when a peer hangs up during the SP handshake: the stream's NNG_ECLOSED is taken for the
/// endpoint's own close (nng issue #1518, fixed in 1.6). A stopped listener still completes
/// handshakes but never hands the connections on, so every peer that connects afterwards sends
/// into a connection nobody reads, and nothing fails or is logged. nng offers no event for the
/// stop; the trace it leaves is the endpoint's error counts. So, once a second, from one
/// in-process statistics snapshot:
///
/// - a listener whose "other" or "canceled" count grew (an accept ended in NNG_ECLOSED or
///   NNG_ECANCELED, the only two errors after which nng accepts no more; "other" also counts
///   errors after which it does go on) by more than the pipes its socket lost explain (a pipe that
///   ends, a peer leaving over ipc say, counts as "other" on its listener too) is probed: a socket of the matching pattern dials it, and
///   once the probe's own handshake is through the listening socket must have accepted a pipe; a
///   listener that did not is closed (which drops the connections it held, so their peers dial
///   again) and listens afresh. A listener whose counts did not grow is never probed, and never
///   restarted: a probe is only a confirmation, and on a loaded machine a slow accept is not a
///   stopped one (probing every listener every two seconds once restarted a healthy one under
///   load, resetting 64 requests in flight);
/// - a dialer whose "other errors" grew while it has no pipe is dialled afresh (a healthy one is
///   between retries then, and loses nothing).
///
/// Probes are sockets of their own, never watched, closed only after their handshake (closing one
/// during it is the very thing that stops a listener).
final class EndpointWatchdog: Sendable {
    static let shared = EndpointWatchdog()

    private final class Weak: Sendable {
        weak let socket: NNGSocket?
        init(_ socket: NNGSocket) { self.socket = socket }
    }

    private let sockets = Mutex<[ObjectIdentifier: Weak]>([:])
    private let queue = DispatchQueue(label: "accord.nng.watchdog")
    // Touched only in `init`; kept so that the timer lives as long as the process.
    nonisolated(unsafe) private let timer: any DispatchSourceTimer
    private let ticks = Atomic<Int>(0)
    /// Sees nng's reaper at work every few seconds (nil if its sockets could not be opened).
    let canary = ReaperCanary(url: "inproc://accord-reaper-canary", limit: EndpointWatchdog.closeLimit)

    /// How long a probe waits for its own handshake, then for the listener to accept it.
    static let handshakeWait: Duration = .seconds(10)
    static let acceptWait: Duration = .seconds(2)

    private init() {
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1), leeway: .milliseconds(100))
        timer.setEventHandler { [unowned self] in self.check() }
        timer.activate()
    }

    func watch(_ socket: NNGSocket) {
        sockets.withLock { $0[ObjectIdentifier(socket)] = Weak(socket) }
    }

    /// Where events are reported (set at start-up; the Transport has no logger of its own).
    static let handler = Mutex<(@Sendable (TransportEvent) -> Void)?>(nil)

    /// The `nng_close` calls under way, by a number of their own, and when each began.
    private static let closes = Mutex<(next: UInt64, started: [UInt64: ContinuousClock.Instant])>((0, [:]))

    /// Notes a close beginning; its number goes back to `closeEnded`.
    static func closeStarted() -> UInt64 {
        closes.withLock { closes in
            closes.next += 1
            closes.started[closes.next] = .now
            return closes.next
        }
    }

    static func oldestCloseStart() -> ContinuousClock.Instant? {
        closes.withLock { $0.started.values.min() }
    }

    var tickCount: Int { ticks.load(ordering: .relaxed) }

    /// The operations under way that were given a timeout, by a number of their own: when each
    /// was due to time out at the latest, and what it was.
    private static let timed = Mutex<(next: UInt64, due: [UInt64: (at: ContinuousClock.Instant, operation: String)])>(
        (0, [:]))
    /// How long past its timeout an operation may still be under way before nng counts as wedged.
    static let overdueLimit: Duration = .seconds(30)
    private let overdueReported = Atomic<Bool>(false)

    /// Notes an operation that must end by `due`; its number goes back to `timedEnded`.
    static func timedStarted(due: ContinuousClock.Instant, _ operation: String) -> UInt64 {
        timed.withLock { timed in
            timed.next += 1
            timed.due[timed.next] = (due, operation)
            return timed.next
        }
    }

    static func timedEnded(_ number: UInt64) {
        _ = timed.withLock { $0.due.removeValue(forKey: number) }
    }

    /// The operations under way that were given a timeout.
    static func watched() -> [(at: ContinuousClock.Instant, operation: String)] {
        timed.withLock { Array($0.due.values) }
    }

    static func closeEnded(_ close: UInt64) {
        _ = closes.withLock { $0.started.removeValue(forKey: close) }
    }
    private let stuckReported = Atomic<Bool>(false)
    /// How long a close may take before the process is reported as wedged.
    static let closeLimit: Duration = .seconds(30)

    private func check() {
        let live = sockets.withLock { sockets -> [NNGSocket] in
            sockets = sockets.filter { $0.value.socket != nil }
            return sockets.values.compactMap(\.socket)
        }
        if let started = Self.oldestCloseStart(),
            started.duration(to: .now) > Self.closeLimit,
            !stuckReported.exchange(true, ordering: .relaxed)
        {
            Self.report(.closeStuck(since: started))
        }
        if let since = canary?.check(), !stuckReported.exchange(true, ordering: .relaxed) {
            Self.report(.reaperStuck(since: since))
        }
        if let overdue = Self.watched().min(by: { $0.at < $1.at }), overdue.at.duration(to: .now) > Self.overdueLimit,
            !overdueReported.exchange(true, ordering: .relaxed)
        {
            Self.report(.timeoutMissed(operation: overdue.operation, due: overdue.at))
        }
        ticks.add(1, ordering: .relaxed)
        guard !live.isEmpty else { return }
        var stats: OpaquePointer?
        guard nng_stats_get(&stats) == 0, let stats else { return }
        defer { nng_stats_free(stats) }
        for socket in live {
            socket.redialStoppedDialers(stats)
            socket.probeSuspectListeners(stats)
            socket.reportTLSRefusals(stats)
        }
    }

    /// The last events reported, with when, oldest first (a test that fails shows them).
    static let recent = Mutex<[(at: ContinuousClock.Instant, event: TransportEvent)]>([])

    static func report(_ event: TransportEvent) {
        recent.withLock {
            if $0.count == 64 { $0.removeFirst() }
            $0.append((.now, event))
        }
        handler.withLock { $0 }?(event)
    }
}

extension NNGSocket {
    /// Calls `report` with what the watchdog does or finds, for any socket of this process.
    package static func reportTransportEvents(_ report: @escaping @Sendable (TransportEvent) -> Void) {
        EndpointWatchdog.handler.withLock { $0 = report }
    }

    /// What the watchdog did lately and what nng counts for each of this socket's endpoints, in
    /// words: the evidence a failed connectivity test prints.
    package func transportDiagnosis() -> String {
        let now = ContinuousClock.now
        var lines = EndpointWatchdog.recent.withLock { recent in
            recent.map { "\(now - $0.at) ago: \($0.event)" }
        }
        if let oldest = EndpointWatchdog.oldestCloseStart() {
            lines.append("an nng_close has been under way for \(oldest.duration(to: now))")
        }
        lines.append("watchdog ticks: \(EndpointWatchdog.shared.tickCount)")
        var stats: OpaquePointer?
        guard nng_stats_get(&stats) == 0, let stats else { return lines.joined(separator: "\n") }
        defer { nng_stats_free(stats) }
        let endpoints = gate.withLock { $0.endpoints }
        for endpoint in endpoints {
            let node: OpaquePointer? =
                switch endpoint.handle {
                case .listener(let listener): NNGStats.listener(stats, listener)
                case .dialer(let dialer): NNGStats.dialer(stats, dialer)
                }
            var counters: [String] = []
            var child = node.flatMap { nng_stat_child($0) }
            while let current = child {
                if nng_stat_type(current) == Int32(NNG_STAT_COUNTER.rawValue)
                    || nng_stat_type(current) == Int32(NNG_STAT_LEVEL.rawValue)
                {
                    counters.append("\(String(cString: nng_stat_name(current)))=\(nng_stat_value(current))")
                }
                child = nng_stat_next(current)
            }
            lines.append(
                "\(endpoint.kind) \(endpoint.url) probing=\(endpoint.probing): \(counters.joined(separator: " "))")
        }
        lines.append("pipes added to the socket: \(pipesAdded.count.load(ordering: .relaxed))")
        return lines.joined(separator: "\n")
    }

    /// Dials afresh each dialer that has no pipe and whose "other errors" count grew.
    func redialStoppedDialers(_ stats: OpaquePointer) {
        var restarted: [String] = []
        gate.withLock { gate in
            guard !gate.closed else { return }
            for index in gate.endpoints.indices {
                guard case .dialer(let dialer) = gate.endpoints[index].handle,
                    let node = NNGStats.dialer(stats, dialer),
                    let other = nng_stat_find(node, "other"), let pipes = nng_stat_find(node, "pipes")
                else { continue }
                let errors = nng_stat_value(other)
                guard errors > gate.endpoints[index].otherErrors else { continue }
                gate.endpoints[index].otherErrors = errors
                // Our own count of the socket's pipes too: a dialer is closed (and with it any pipe
                // it has) only when the socket has none by either account.
                guard nng_stat_value(pipes) == 0, pipesAdded.live <= 0 else { continue }
                let url = gate.endpoints[index].url
                nng_dialer_close(dialer)
                // A dial that fails here is tried again at the next error; there will be one.
                guard let fresh = try? Endpoint.dial(socket, url, tls: tls) else { continue }
                gate.endpoints[index] = fresh
                restarted.append(url)
            }
        }
        for url in restarted { EndpointWatchdog.report(.endpointRestarted(url: url, kind: "dialer")) }
    }

    /// nng's count `name` summed over this socket's listeners (for tests).
    package func listenerCount(_ name: String) -> UInt64 {
        var stats: OpaquePointer?
        guard nng_stats_get(&stats) == 0, let stats else { return 0 }
        defer { nng_stats_free(stats) }
        return gate.withLock { $0.endpoints }.reduce(0) { sum, endpoint in
            guard case .listener(let listener) = endpoint.handle, let node = NNGStats.listener(stats, listener),
                let stat = nng_stat_find(node, name)
            else { return sum }
            return sum + nng_stat_value(stat)
        }
    }

    /// A listener's count of the accept errors that can have stopped it, and of the errors its
    /// pipes' ends explain (see `Endpoint.explainedErrors`).
    private func listenerErrors(_ stats: OpaquePointer, _ listener: nng_listener) -> (UInt64, Int64)? {
        guard let node = NNGStats.listener(stats, listener),
            let other = nng_stat_find(node, "other"), let canceled = nng_stat_find(node, "canceled"),
            let disconnects = nng_stat_find(node, "disconnect")
        else { return nil }
        let removed = Int64(pipesAdded.removed.load(ordering: .relaxed))
        return (nng_stat_value(other) + nng_stat_value(canceled), removed - Int64(nng_stat_value(disconnects)))
    }

    /// Starts a probe of each listener with stopping errors that no ended pipe explains since it
    /// was last found accepting (a handshake that failed: what stops a listener), unless one is
    /// under way; listens again where a restart could not. A peer that leaves, or a probe that
    /// hangs up, ends a pipe and explains its own error: it costs no probe.
    func probeSuspectListeners(_ stats: OpaquePointer) {
        let due = gate.withLock { gate -> [(Int, String, UInt64, Int64)] in
            guard !gate.closed else { return [] }
            var due: [(Int, String, UInt64, Int64)] = []
            for index in gate.endpoints.indices {
                guard case .listener(let listener) = gate.endpoints[index].handle, !gate.endpoints[index].probing
                else { continue }
                if gate.endpoints[index].needsListen {
                    if let fresh = try? Endpoint.listen(socket, gate.endpoints[index].url, tls: tls) {
                        gate.endpoints[index] = fresh
                    }
                    continue
                }
                guard let (errors, explained) = listenerErrors(stats, listener) else { continue }
                let unexplained =
                    Int64(errors) - Int64(gate.endpoints[index].otherErrors)
                    - (explained - gate.endpoints[index].explainedErrors)
                guard unexplained > 0 else {
                    gate.endpoints[index].otherErrors = errors
                    gate.endpoints[index].explainedErrors = explained
                    continue
                }
                gate.endpoints[index].probing = true
                due.append((index, gate.endpoints[index].url, errors, explained))
            }
            return due
        }
        for (index, url, errors, explained) in due {
            Task.detached(priority: .utility) { await self.probe(index, url, errors: errors, explained: explained) }
        }
    }

    /// The pattern whose sockets can complete a handshake with this one.
    private var peerPattern: NNGPattern {
        switch pattern {
        case .req: .rep
        case .rep: .req
        case .pub: .sub
        case .sub: .pub
        }
    }

    /// Probes listener `index`; `errors` is its stopping-error count when the probe was decided
    /// (kept as its baseline once it is found accepting; an inconclusive probe is tried again).
    private func probe(_ index: Int, _ url: String, errors: UInt64, explained: Int64) async {
        defer {
            gate.withLock { gate in if gate.endpoints.indices.contains(index) { gate.endpoints[index].probing = false }
            }
        }
        guard let probe = try? NNGSocket(peerPattern, watched: false) else { return }
        let accepted = pipesAdded.count.load(ordering: .relaxed)
        guard (try? probe.dial(url)) != nil else {
            probe.close()
            return
        }
        let through = await Self.waitFor(within: EndpointWatchdog.handshakeWait) {
            probe.pipesAdded.count.load(ordering: .relaxed) > 0
        }
        var handedOn = false
        if through {
            handedOn = await Self.waitFor(within: EndpointWatchdog.acceptWait) {
                self.pipesAdded.count.load(ordering: .relaxed) > accepted
            }
        }
        probe.close()
        if handedOn {
            gate.withLock { gate in
                guard gate.endpoints.indices.contains(index) else { return }
                gate.endpoints[index].otherErrors = errors
                gate.endpoints[index].explainedErrors = explained
            }
        }
        guard through, !handedOn else { return }
        let restarted = gate.withLock { gate -> Bool in
            guard !gate.closed, gate.endpoints.indices.contains(index),
                case .listener(let listener) = gate.endpoints[index].handle
            else { return false }
            nng_listener_close(listener)
            guard let fresh = try? Endpoint.listen(socket, url, tls: tls) else {
                gate.endpoints[index].needsListen = true
                return true
            }
            gate.endpoints[index] = fresh
            return true
        }
        if restarted { EndpointWatchdog.report(.endpointRestarted(url: url, kind: "listener")) }
    }

    /// Checks `condition` every 10 ms until it holds (true) or `limit` has passed (false).
    private static func waitFor(within limit: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}
