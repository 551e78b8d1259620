import CNNG
import Synchronization

/// Finds nng's reaper wedged even when no socket is being closed.
///
/// libnng 1.5.2 tears every closed connection down on one reaper thread, and that thread can wedge
/// for good (decision 0004, bug 2); from then on no pipe of the process is removed, so a dialer
/// whose connection died never dials again, and a `LeaderLink` keeps probing a connection that
/// answers nothing. `EndpointWatchdog` saw the wedge only through an `nng_close` that did not
/// return; a Gateway that closes nothing would wait for ever (the Gateway of issue 11 that found no
/// leader for over a minute after a failover had closed no socket).
///
/// So the watchdog keeps one connection of its own over `inproc://`, closes its pipe every
/// `every`, and waits for nng's `NNG_PIPE_EV_REM_POST`, which only the reaper sends (`pipe_destroy`).
/// A close not seen through within the watchdog's `closeLimit` is a wedged reaper. The dialer
/// connects again at once (inproc), so the next round has a pipe to close.
final class ReaperCanary: Sendable {
    struct State {
        /// The dialing side's pipe, once through its handshake.
        var pipe: nng_pipe?
        /// Pipes of the dialing side torn down so far.
        var removed = 0
        /// The close under way: when it was asked for, and `removed` then.
        var closing: (at: ContinuousClock.Instant, removedBefore: Int)?
        /// When the last close was asked for.
        var lastClose: ContinuousClock.Instant?
        /// Closes seen through.
        var rounds = 0
    }
    private let state = Mutex(State())
    private let server: nng_socket
    private let client: nng_socket
    private let every: Duration
    private let limit: Duration
    private let closePipe: @Sendable (nng_pipe) -> Void

    /// A canary connection on `url`, closed every `every`, stuck once a close waits past `limit`.
    /// `closePipe` is the close itself (a test replaces it to stand for a reaper that never runs).
    init?(
        url: String, every: Duration = .seconds(5), limit: Duration,
        closePipe: @escaping @Sendable (nng_pipe) -> Void = { _ = nng_pipe_close($0) }
    ) {
        var server = nng_socket()
        var client = nng_socket()
        guard nng_rep0_open(&server) == 0 else { return nil }
        guard nng_req0_open(&client) == 0 else {
            nng_close(server)
            return nil
        }
        self.server = server
        self.client = client
        self.every = every
        self.limit = limit
        self.closePipe = closePipe
        // The canary lives as long as the process (the watchdog's); its callbacks hold it unretained.
        let me = Unmanaged.passRetained(self).toOpaque()
        let note: nng_pipe_cb = { pipe, event, arg in
            let canary = Unmanaged<ReaperCanary>.fromOpaque(arg!).takeUnretainedValue()
            canary.state.withLock { state in
                if event == NNG_PIPE_EV_ADD_POST {
                    state.pipe = pipe
                } else {
                    state.removed += 1
                    if state.pipe?.id == pipe.id { state.pipe = nil }
                }
            }
        }
        guard nng_pipe_notify(client, NNG_PIPE_EV_ADD_POST, note, me) == 0,
            nng_pipe_notify(client, NNG_PIPE_EV_REM_POST, note, me) == 0,
            nng_socket_set_ms(client, NNG_OPT_RECONNMINT, 10) == 0,
            nng_socket_set_ms(client, NNG_OPT_RECONNMAXT, 100) == 0,
            nng_listen(server, url, nil, 0) == 0,
            nng_dial(client, url, nil, Int32(NNG_FLAG_NONBLOCK)) == 0
        else {
            nng_close(client)
            nng_close(server)
            Unmanaged<ReaperCanary>.fromOpaque(me).release()
            return nil
        }
    }

    /// Closes seen through so far.
    var rounds: Int { state.withLock { $0.rounds } }
    /// When the close under way was asked for.
    var closingSince: ContinuousClock.Instant? { state.withLock { $0.closing?.at } }

    /// One look, from the watchdog's tick: a close seen through ends its round, and the next close
    /// is asked for once `every` has passed since the last. Returns when the close under way was
    /// asked for, if it has waited past `limit` (the reaper is wedged).
    func check(now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant? {
        let (stuck, close) = state.withLock { state -> (ContinuousClock.Instant?, nng_pipe?) in
            if let closing = state.closing {
                guard state.removed > closing.removedBefore else {
                    return (closing.at.duration(to: now) > limit ? closing.at : nil, nil)
                }
                state.closing = nil
                state.rounds += 1
            }
            guard let pipe = state.pipe, state.lastClose.map({ $0.duration(to: now) >= every }) ?? true else {
                return (nil, nil)
            }
            state.pipe = nil
            state.closing = (now, state.removed)
            state.lastClose = now
            return (nil, pipe)
        }
        // Outside the lock: nng may call back on another thread while it closes.
        if let close { closePipe(close) }
        return stuck
    }
}
