import CNNG
import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An nng failure: the operation and nng's own error text.
package struct NNGError: Error, CustomStringConvertible {
    /// nng's error number.
    package let code: Int32
    /// What was being done.
    package let operation: String

    /// Whether the operation ran out of time (the peer is absent or slow).
    package var isTimeout: Bool { code == Int32(NNG_ETIMEDOUT.rawValue) }
    /// Whether the socket was closed under the operation (shutdown).
    package var isClosed: Bool { code == Int32(NNG_ECLOSED.rawValue) }
    /// Whether the connection the operation used went away under it (the peer, or our own close).
    package var isConnectionReset: Bool { code == Int32(NNG_ECONNRESET.rawValue) }
    /// Whether the operation was cancelled.
    package var isCancelled: Bool { code == Int32(NNG_ECANCELED.rawValue) }

    package var description: String { "\(operation): \(String(cString: nng_strerror(code)))" }
}

@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(NNGError) {
    if code != 0 { throw NNGError(code: code, operation: operation()) }
}

/// The socket patterns Accord uses; which link uses which is in `docs/MESSAGING.md`.
package enum NNGPattern: Sendable {
    /// Request side of req/rep (commands, reports).
    case req
    /// Reply side of req/rep.
    case rep
    /// Publisher of committed events.
    case pub
    /// Subscriber to committed events.
    case sub
}

/// One nng socket. Operations are safe from any thread; `close` ends every pending operation with
/// `NNGError.isClosed` (or `isConnectionReset`, for a request whose pipe went down first).
///
/// Every call into nng on the socket or its contexts passes through `gate`, and none is made once
/// `close` has begun: `nng_close` frees the socket, and with nng 1.5.2 a context call racing with
/// it or coming after it (a request closing its context as it ended) aborted the whole process
/// ("pthread_mutex_unlock: Invalid argument" in `nng_ctx_close`). `close` itself closes the open
/// contexts first, under the gate, and only then hands the socket to `nng_close`.
package final class NNGSocket: Sendable {
    let socket: nng_socket
    /// The pattern it was opened with.
    package let pattern: NNGPattern
    /// Whether `EndpointWatchdog` looks after its listeners and dialers.
    let watched: Bool
    /// What its `tls+tcp://` endpoints present and trust.
    let tls: TLSConfigs.Configs?

    struct Gate {
        var closed = false
        /// Contexts opened and not yet closed, by id.
        var contexts: Set<UInt32> = []
        /// The socket's listeners and dialers, watched by `EndpointWatchdog`.
        var endpoints: [Endpoint] = []
    }
    let gate = Mutex(Gate())

    /// Opens a socket; `maxMessageBytes` bounds what it accepts (larger messages are dropped by nng).
    /// `watched: false` leaves its endpoints out of `EndpointWatchdog` (the watchdog's own probes).
    /// `tls` is the identity its `tls+tcp://` endpoints use, when not the process's (`useTLS`).
    /// `reconnectMax` bounds the dialers' backoff: how long a peer that has just started
    /// listening may wait to be dialled again.
    package init(
        _ pattern: NNGPattern, maxMessageBytes: Int = 1 << 20, watched: Bool = true, tls identity: TLSIdentity? = nil,
        reconnectMax: Duration = .milliseconds(500)
    ) throws(NNGError) {
        self.watched = watched
        self.tls =
            try identity.map { identity throws(NNGError) in try TLSConfigs.Configs(identity) }
            ?? TLSConfigs.current.withLock { $0 }
        var socket = nng_socket()
        let opened: Int32
        switch pattern {
        case .req: opened = nng_req0_open(&socket)
        case .rep: opened = nng_rep0_open(&socket)
        case .pub: opened = nng_pub0_open(&socket)
        case .sub: opened = nng_sub0_open(&socket)
        }
        try check(opened, "open \(pattern) socket")
        self.socket = socket
        self.pattern = pattern
        try check(nng_socket_set_size(socket, NNG_OPT_RECVMAXSZ, maxMessageBytes), "set recv-size-max")
        try check(nng_socket_set_ms(socket, NNG_OPT_RECONNMINT, 20), "set reconnect-time-min")
        try check(
            nng_socket_set_ms(socket, NNG_OPT_RECONNMAXT, nng_duration(clamping: reconnectMax.nngMilliseconds)),
            "set reconnect-time-max")
        switch pattern {
        case .req:
            // Requests are retried by their callers, which know whether a retry is safe; nng's own
            // resend would repeat a start behind our back.
            try check(nng_socket_set_ms(socket, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE), "set req:resend-time")
        case .sub:
            try check(nng_socket_set(socket, NNG_OPT_SUB_SUBSCRIBE, nil, 0), "subscribe")
            try check(nng_socket_set_int(socket, NNG_OPT_RECVBUF, 1024), "set recv-buffer")
        case .pub:
            try check(nng_socket_set_int(socket, NNG_OPT_SENDBUF, 1024), "set send-buffer")
        case .rep: break
        }
        let counter = Unmanaged.passRetained(pipesAdded).toOpaque()
        // One callback for both notifications: nng says which one it is.
        let note: nng_pipe_cb = { _, event, arg in
            let counter = Unmanaged<PipeCounter>.fromOpaque(arg!).takeUnretainedValue()
            if event == NNG_PIPE_EV_ADD_POST {
                counter.count.add(1, ordering: .relaxed)
            } else {
                counter.removed.add(1, ordering: .relaxed)
            }
        }
        for event in [NNG_PIPE_EV_ADD_POST, NNG_PIPE_EV_REM_POST] {
            try check(nng_pipe_notify(socket, event, note, counter), "watch pipes")
        }
    }

    /// Pipes added to the socket so far (connections through their handshake and accepted), and
    /// pipes removed, counted by nng's pipe notifications. Released once `nng_close` has returned:
    /// no callback comes later.
    final class PipeCounter: Sendable {
        let count = Atomic<Int>(0)
        let removed = Atomic<Int>(0)
        /// Pipes the socket has now.
        var live: Int { count.load(ordering: .relaxed) - removed.load(ordering: .relaxed) }
    }
    let pipesAdded = PipeCounter()
    /// Set once `nng_close` has returned.
    private let closeReturned = CloseFlag()

    /// Listens on `url` (`ipc:///path` or `tcp://host:port`). For `ipc://` the socket's folder is
    /// created and a stale socket file left by a killed process is removed first.
    package func listen(_ url: String) throws(NNGError) {
        if let path = Endpoint.ipcPath(url), let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            NNGSocket.makeDirectories(String(path[..<slash]))
        }
        try gate.withLock { gate throws(NNGError) in
            guard !gate.closed else { throw NNGError(code: Int32(NNG_ECLOSED.rawValue), operation: "listen on \(url)") }
            gate.endpoints.append(try Endpoint.listen(socket, url, tls: tls))
        }
        if watched { EndpointWatchdog.shared.watch(self) }
    }

    private static func makeDirectories(_ path: String) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o755)
        }
    }

    /// Dials `url` in the background: the socket connects when the peer appears and reconnects
    /// after it goes away.
    package func dial(_ url: String) throws(NNGError) {
        try gate.withLock { gate throws(NNGError) in
            guard !gate.closed else { throw NNGError(code: Int32(NNG_ECLOSED.rawValue), operation: "dial \(url)") }
            gate.endpoints.append(try Endpoint.dial(socket, url, tls: tls))
        }
        if watched { EndpointWatchdog.shared.watch(self) }
    }

    /// Dials every address of a comma-separated list: the Gateway's subscription to every
    /// Scheduler's events (standbys bind nothing, and a deposed leader publishes nothing more).
    /// Requests go through `LeaderLink` instead, which sends to the one that leads.
    package func dial(all list: String) throws(NNGError) {
        for url in list.split(separator: ",") { try dial(String(url)) }
    }

    /// Closes the socket; pending operations fail with `isClosed`. Returns at once: `nng_close`
    /// blocks until every operation on the socket has wound down, and some of them resume tasks
    /// that need the cooperative pool (two threads here) to finish; called from that pool, it
    /// could wait on itself forever (seen: a Gateway that never stopped, a Scheduler actor that
    /// froze after an executor registered again). So the close runs on a thread of its own, one
    /// per close: libnng 1.5.2 can leave an `nng_close` waiting forever (an aio prepared but never
    /// started, nng #1813, fixed in 1.8), and behind a shared close queue that one socket kept
    /// every later socket of the process open, their dialers redialling ten times a second each
    /// until the process ran out of file descriptors (seen in the test process: 20,000 unconnected
    /// unix sockets, then `EMFILE` everywhere). A stuck close still costs its socket; the watchdog
    /// reports it (`TransportEvent.closeStuck`).
    package func close() {
        let first = gate.withLock { gate -> Bool in
            guard !gate.closed else { return false }
            gate.closed = true
            for id in gate.contexts { nng_ctx_close(nng_ctx(id: id)) }
            gate.contexts = []
            return true
        }
        guard first else { return }
        let socket = socket
        let counter = Unmanaged.passUnretained(pipesAdded)
        let closing = EndpointWatchdog.closeStarted()
        let closeReturned = closeReturned
        let thread = Thread {
            NNGSocket.closeFault.withLock { $0 }?(socket.id)
            nng_close(socket)
            EndpointWatchdog.closeEnded(closing)
            closeReturned.value.store(true, ordering: .releasing)
            counter.release()
        }
        thread.name = "accord-nng-close"
        thread.start()
    }

    /// Fault injection for tests: runs on a close's thread before `nng_close` (a test makes one
    /// close hang, as nng's own bug does, and checks that other sockets still close).
    package static let closeFault = Mutex<(@Sendable (_ socketID: UInt32) -> Void)?>(nil)

    /// Whether `nng_close` has returned for this socket.
    package var hasClosed: Bool { closeReturned.value.load(ordering: .acquiring) }

    /// Runs `body` (a call into nng) unless the socket is closing; false when it did not run.
    private func ifOpen(_ body: () -> Void) -> Bool {
        gate.withLock { gate in
            guard !gate.closed else { return false }
            body()
            return true
        }
    }

    private func openContext(_ operation: String) throws(NNGError) -> nng_ctx {
        try gate.withLock { gate throws(NNGError) -> nng_ctx in
            guard !gate.closed else { throw NNGError(code: Int32(NNG_ECLOSED.rawValue), operation: operation) }
            var ctx = nng_ctx()
            try check(nng_ctx_open(&ctx, socket), operation)
            gate.contexts.insert(ctx.id)
            return ctx
        }
    }

    /// Closes a context unless `close` already has.
    private func closeContext(_ ctx: nng_ctx) {
        gate.withLock { gate in
            if gate.contexts.remove(ctx.id) != nil { nng_ctx_close(ctx) }
        }
    }

    /// Publishes (pub) without blocking; a subscriber that is not keeping up loses messages and
    /// recovers by catching up.
    package func publish(_ bytes: [UInt8]) throws(NNGError) {
        var code = Int32(NNG_ECLOSED.rawValue)
        _ = ifOpen {
            code = bytes.withUnsafeBytes { raw in
                nng_send(
                    socket, UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count, Int32(NNG_FLAG_NONBLOCK))
            }
        }
        if code != 0, code != Int32(NNG_EAGAIN.rawValue) { try check(code, "publish") }
    }

    /// Receives the next message (sub), waiting as long as it takes, or at most `timeout`.
    package func receive(timeout: Duration? = nil) async throws(NNGError) -> [UInt8] {
        let msg = try await AIO.run(timeout: timeout, "receive") { aio in ifOpen { nng_recv_aio(socket, aio) } }
        return AIO.take(msg)
    }

    /// Closes every dialer (and the connections it made) and dials its address afresh. For a
    /// socket that only listens to its peers (sub): a peer that died while cut off leaves a
    /// connection that looks open for as long as nothing is sent on it, and its dialer never dials
    /// the process that listens there next.
    package func redialAll() {
        gate.withLock { gate in
            guard !gate.closed else { return }
            for index in gate.endpoints.indices {
                guard case .dialer(let dialer) = gate.endpoints[index].handle else { continue }
                let url = gate.endpoints[index].url
                nng_dialer_close(dialer)
                // A dial that fails here (it does not: the address was dialled before) leaves the
                // closed dialer in place, and the next redial tries again.
                guard let fresh = try? Endpoint.dial(socket, url, tls: tls) else { continue }
                gate.endpoints[index] = fresh
            }
        }
    }

    /// Sends a request and waits for its reply (req). Many requests may be in flight at once: each
    /// runs on its own nng context.
    /// `sent` is called once the request is handed to a connection (until then no peer can have
    /// received it).
    package func request(
        _ bytes: [UInt8], timeout: Duration, sent: (@Sendable () -> Void)? = nil
    ) async throws(NNGError) -> [UInt8] {
        let ctx = try openContext("open request context")
        defer { closeContext(ctx) }
        let msg = try AIO.message(bytes)
        _ = try await AIO.run(timeout: timeout, "send request", owning: msg) { aio in
            nng_aio_set_msg(aio, msg)
            return ifOpen { nng_ctx_send(ctx, aio) }
        }
        sent?()
        let reply = try await AIO.run(timeout: timeout, "receive reply") { aio in
            ifOpen { nng_ctx_recv(ctx, aio) }
        }
        return AIO.take(reply)
    }

    /// Answers requests (rep) with `workers` concurrent handlers until the socket is closed.
    package func serve(
        workers: Int, _ handler: @escaping @Sendable ([UInt8]) async -> [UInt8]
    ) async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, workers) {
                group.addTask { await self.serveLoop(handler) }
            }
        }
    }

    private func serveLoop(_ handler: @Sendable ([UInt8]) async -> [UInt8]) async {
        guard let ctx = try? openContext("open reply context") else { return }
        defer { closeContext(ctx) }
        while true {
            let request: [UInt8]
            do {
                let msg = try await AIO.run(timeout: nil, "receive request") { aio in
                    ifOpen { nng_ctx_recv(ctx, aio) }
                }
                request = AIO.take(msg)
            } catch {
                if error.isClosed || Task.isCancelled { return }
                continue
            }
            let reply = await handler(request)
            do {
                let msg = try AIO.message(reply)
                _ = try await AIO.run(timeout: .seconds(10), "send reply", owning: msg) { aio in
                    nng_aio_set_msg(aio, msg)
                    return ifOpen { nng_ctx_send(ctx, aio) }
                }
            } catch {
                if error.isClosed { return }
            }
        }
    }
}

/// A flag the close thread sets and anyone may read.
private final class CloseFlag: Sendable {
    let value = Atomic<Bool>(false)
}
