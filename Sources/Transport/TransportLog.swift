import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// How a service reports `TransportEvent`s: a restarted endpoint is a warning; a wedged nng is
/// critical, and the process exits (status 70) so that its supervisor starts it afresh. Every
/// service is safe to restart at any moment (that is the design's promise), and one whose
/// connections can no longer be torn down or dialled again is not serving anyone.
package struct TransportLog: Sendable {
    let logger: Logger

    package init(logger: Logger) { self.logger = logger }

    package func report(_ event: TransportEvent) {
        switch event {
        case .endpointRestarted(let url, let kind):
            logger.warning(
                "restarted an nng \(kind) that had stopped (a peer hung up during the handshake)",
                metadata: ["url": "\(url)"])
        case .tlsRefused(let url, let count):
            logger.warning(
                "refused connections without a certificate of this deployment's CA (TLS handshake failed)",
                metadata: ["url": "\(url)", "refused": "\(count)"])
        case .closeStuck(let since):
            logger.critical(
                """
                nng has not closed a socket for \(since.duration(to: .now)): its reaper is wedged, and no \
                connection of this process can be torn down or dialled again; exiting to be restarted
                """)
            exit(70)
        case .reaperStuck(let since):
            logger.critical(
                """
                nng has not torn down a closed connection for \(since.duration(to: .now)): its reaper is wedged, and \
                no connection of this process can be torn down or dialled again; exiting to be restarted
                """)
            exit(70)
        case .timeoutMissed(let operation, let due):
            logger.critical(
                """
                nng has not ended '\(operation)' \(due.duration(to: .now)) after its timeout: its timers no longer \
                fire, and no request of this process can time out; exiting to be restarted
                """)
            exit(70)
        }
    }
}
