import CNNG
import Synchronization

/// Bridges one nng asynchronous operation to `async`: no thread waits while nng works.
///
/// The continuation is stored before the operation starts (the callback may fire at once), the
/// callback only resumes it, and the aio is freed after the callback has returned, never from the
/// callback itself (nng_aio_free there would wait on itself). A task cancellation that reaches for
/// the aio holds a reference to it: the aio is freed by whichever of the awaiting task and the
/// cancellation lets go last (freeing it in the task while a cancellation was still calling
/// `nng_aio_cancel` on it was a use-after-free: nng panicked "pthread_mutex_unlock: Invalid
/// argument" about once in a dozen busy integration runs).
enum AIO {
    final class Box: Sendable {
        struct State {
            var continuation: CheckedContinuation<Void, Never>?
            // The aio's address: pointers are not Sendable, and this one is only passed back to nng.
            var aio: Int = 0
            var cancelled = false
            /// Holders of the aio: the awaiting task, and a cancellation while it calls nng.
            var references = 1
            /// Its number with the watchdog while it runs with a timeout.
            var timed: UInt64?
        }

        /// The operation ended (or never started): the watchdog stops watching its timeout.
        func ended() {
            let number = state.withLock { state in
                defer { state.timed = nil }
                return state.timed
            }
            if let number { EndpointWatchdog.timedEnded(number) }
        }

        let state = Mutex(State())

        /// Drops one reference; true when it was the last (the caller frees the aio).
        func release() -> Bool {
            state.withLock { state in
                state.references -= 1
                return state.references == 0
            }
        }
    }

    /// Runs `start` with a fresh aio and waits for it; returns the aio's message, if any.
    /// `owning` is a message that nng gives back when a send fails: it is freed then. `start`
    /// returns false when it did not start the operation (its socket is closing): the run then
    /// ends at once as closed, without waiting for a callback that will never come.
    static func run(
        timeout: Duration?, _ operation: String, owning: OpaquePointer? = nil,
        _ start: (OpaquePointer) -> Bool
    ) async throws(NNGError) -> OpaquePointer? {
        let box = Box()
        var aio: OpaquePointer?
        let allocated = nng_aio_alloc(
            &aio,
            { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeUnretainedValue()
                box.ended()
                let continuation = box.state.withLock { state in
                    defer { state.continuation = nil }
                    return state.continuation
                }
                continuation?.resume()
            }, Unmanaged.passUnretained(box).toOpaque())
        guard allocated == 0, let aio else {
            if let owning { nng_msg_free(owning) }
            throw NNGError(code: allocated, operation: operation)
        }
        if let timeout {
            nng_aio_set_timeout(aio, nng_duration(clamping: max(1, timeout.nngMilliseconds)))
            let number = EndpointWatchdog.timedStarted(due: .now + timeout, operation)
            box.state.withLock { $0.timed = number }
        } else {
            nng_aio_set_timeout(aio, NNG_DURATION_INFINITE)
        }
        let address = Int(bitPattern: aio)
        box.state.withLock { $0.aio = address }
        var started = true
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let cancelledEarly = box.state.withLock { state -> Bool in
                    state.continuation = continuation
                    return state.cancelled
                }
                started = start(aio)
                guard started else {
                    box.ended()
                    let unstarted = box.state.withLock { state in
                        defer { state.continuation = nil }
                        return state.continuation
                    }
                    unstarted?.resume()
                    return
                }
                if cancelledEarly { nng_aio_cancel(aio) }
            }
        } onCancel: {
            // Only while the operation is in flight (the continuation is set and not yet resumed),
            // and holding a reference so that the aio outlives this call.
            let pending = box.state.withLock { state -> OpaquePointer? in
                state.cancelled = true
                guard state.continuation != nil else { return nil }
                state.references += 1
                return OpaquePointer(bitPattern: state.aio)
            }
            if let pending {
                nng_aio_cancel(pending)
                if box.release() { nng_aio_free(pending) }
            }
        }
        let result = started ? nng_aio_result(aio) : Int32(NNG_ECLOSED.rawValue)
        let message = nng_aio_get_msg(aio)
        if box.release() { nng_aio_free(aio) }
        guard result == 0 else {
            if owning != nil, let unsent = message { nng_msg_free(unsent) }
            throw NNGError(code: result, operation: operation)
        }
        return owning == nil ? message : nil
    }

    /// A new nng message holding `bytes`.
    static func message(_ bytes: [UInt8]) throws(NNGError) -> OpaquePointer {
        var msg: OpaquePointer?
        try check(nng_msg_alloc(&msg, bytes.count), "allocate message")
        bytes.withUnsafeBytes { raw in
            if raw.count > 0 { nng_msg_body(msg).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        }
        return msg!
    }

    /// Copies a received message's body out and frees it.
    static func take(_ msg: OpaquePointer?) -> [UInt8] {
        guard let msg else { return [] }
        defer { nng_msg_free(msg) }
        let count = nng_msg_len(msg)
        guard count > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: nng_msg_body(msg), count: count))
    }
}

extension Duration {
    /// Whole milliseconds, as nng's durations count.
    var nngMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
