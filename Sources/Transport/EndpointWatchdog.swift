import CNNG
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A socket's listener or dialer, and what the watchdog last saw of it.
struct Endpoint {
    enum Handle {
        case listener(nng_listener)
        case dialer(nng_dialer)
    }

    var handle: Handle
    let url: String
    /// The endpoint's "other errors" count when last checked.
    var otherErrors: UInt64 = 0

    static func ipcPath(_ url: String) -> String? {
        url.hasPrefix("ipc://") ? String(url.dropFirst("ipc://".count)) : nil
    }

    /// Listens on `url`; for `ipc://`, a socket file left behind (by a killed process, or by the
    /// listener this one replaces) is removed first.
    static func listen(_ socket: nng_socket, _ url: String) throws(NNGError) -> Endpoint {
        if let path = ipcPath(url) { unlink(path) }
        var listener = nng_listener()
        try check(nng_listen(socket, url, &listener, 0), "listen on \(url)")
        return Endpoint(handle: .listener(listener), url: url)
    }

    /// Dials `url` in the background (connects when the peer appears, reconnects after it goes).
    static func dial(_ socket: nng_socket, _ url: String) throws(NNGError) -> Endpoint {
        var dialer = nng_dialer()
        try check(nng_dial(socket, url, &dialer, Int32(NNG_FLAG_NONBLOCK)), "dial \(url)")
        return Endpoint(handle: .dialer(dialer), url: url)
    }
}

/// Restarts listeners and dialers that nng has silently stopped.
///
/// Debian 12's libnng (1.5.2) ends a listener's accept loop, or a dialer's redialling, for good
/// when a peer hangs up during the SP handshake: the stream's NNG_ECLOSED is taken for the
/// endpoint's own close (nng issue #1518, fixed in 1.6). A Scheduler killed while a Gateway
/// connected, or a session socket closed right after it dialled, then leaves a link that never
/// comes back: a Gateway timing out against a healthy Scheduler, an executor that never reads its
/// dispatches again. nng counts that stop among an endpoint's "other" errors (as it does the
/// rare error it retries after), and offers no event for it, so once a second this reads that
/// counter for every endpoint of every open socket (one in-process statistics snapshot) and
/// restarts an endpoint whose count grew: a dialer is dialled afresh (it has no pipe then); a
/// listener is closed and listens again. Closing it matters: a stopped listener still completes
/// handshakes but never hands the connections on, so a peer that connected since would send into
/// a connection nobody reads, for good; closed, those peers (and the ones it served before) see
/// the connection drop and dial again.
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

    private init() {
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1), leeway: .milliseconds(100))
        timer.setEventHandler { [unowned self] in self.check() }
        timer.activate()
    }

    func watch(_ socket: NNGSocket) {
        sockets.withLock { $0[ObjectIdentifier(socket)] = Weak(socket) }
    }

    /// Where restarts are reported (set at start-up; the Transport has no logger of its own).
    static let onRestart = Mutex<(@Sendable (_ url: String, _ kind: String) -> Void)?>(nil)

    private func check() {
        let live = sockets.withLock { sockets -> [NNGSocket] in
            sockets = sockets.filter { $0.value.socket != nil }
            return sockets.values.compactMap(\.socket)
        }
        guard !live.isEmpty else { return }
        var stats: OpaquePointer?
        guard nng_stats_get(&stats) == 0, let stats else { return }
        defer { nng_stats_free(stats) }
        for socket in live { socket.restartStoppedEndpoints(stats) }
    }
}

extension NNGSocket {
    /// Calls `report` with the address and kind ("listener" or "dialer") of every endpoint the
    /// watchdog restarts, in any socket of this process.
    package static func reportEndpointRestarts(_ report: @escaping @Sendable (_ url: String, _ kind: String) -> Void) {
        EndpointWatchdog.onRestart.withLock { $0 = report }
    }

    /// Restarts each endpoint whose "other errors" count grew since the last check.
    func restartStoppedEndpoints(_ stats: OpaquePointer) {
        var restarted: [(String, String)] = []
        gate.withLock { gate in
            guard !gate.closed else { return }
            for index in gate.endpoints.indices {
                let endpoint = gate.endpoints[index]
                let node: OpaquePointer? =
                    switch endpoint.handle {
                    case .listener(let listener): nng_stat_find_listener(stats, listener)
                    case .dialer(let dialer): nng_stat_find_dialer(stats, dialer)
                    }
                guard let node, let counter = nng_stat_find(node, "other") else { continue }
                let errors = nng_stat_value(counter)
                guard errors > endpoint.otherErrors else { continue }
                gate.endpoints[index].otherErrors = errors
                guard let fresh = restart(endpoint) else { continue }
                gate.endpoints[index] = fresh
                restarted.append((endpoint.url, fresh.handleKind))
            }
        }
        guard !restarted.isEmpty, let report = EndpointWatchdog.onRestart.withLock({ $0 }) else { return }
        for (url, kind) in restarted { report(url, kind) }
    }

    /// A new endpoint in place of `endpoint`, or nil when none could be made (checked again in a
    /// second: the count will not have grown, so a failed restart is retried only after another
    /// error; that is rare enough to leave to the next one).
    private func restart(_ endpoint: Endpoint) -> Endpoint? {
        switch endpoint.handle {
        case .dialer(let dialer):
            nng_dialer_close(dialer)
            return try? Endpoint.dial(socket, endpoint.url)
        case .listener(let listener):
            nng_listener_close(listener)
            return try? Endpoint.listen(socket, endpoint.url)
        }
    }
}

extension Endpoint {
    var handleKind: String {
        switch handle {
        case .listener: "listener"
        case .dialer: "dialer"
        }
    }
}
