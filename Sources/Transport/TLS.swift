import CNNG
import Foundation
import Synchronization

/// The certificates this process's `tls+tcp://` links present and trust: one CA for the whole
/// deployment, and this component's own certificate and key, all PEM files. Both ends of every
/// link check the other's certificate against the CA (mutual TLS): a peer without a certificate
/// the CA signed gets no connection.
package struct TLSIdentity: Sendable, Hashable {
    package var caFile: String
    package var certificateFile: String
    package var keyFile: String

    package init(caFile: String, certificateFile: String, keyFile: String) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// The files `accord certs init DIR` writes for `component` (`scheduler`, `gateway`,
    /// `executor`): `DIR/ca.pem`, `DIR/<component>.pem`, `DIR/<component>-key.pem`.
    package init(directory: String, component: String) {
        self.init(
            caFile: directory + "/ca.pem", certificateFile: "\(directory)/\(component).pem",
            keyFile: "\(directory)/\(component)-key.pem")
    }
}

/// nng's TLS configurations made from one `TLSIdentity`, one per side; the process-wide one
/// (`NNGSocket.useTLS`) is what sockets use unless they are given an identity of their own.
enum TLSConfigs {
    /// `nng_tls_config` pointers, freed with this value (each endpoint holds its own reference).
    final class Configs: @unchecked Sendable {
        // @unchecked: nng's configurations are reference-counted and locked inside nng; once made
        // they are only read.
        let server: OpaquePointer
        let client: OpaquePointer

        init(_ identity: TLSIdentity) throws(NNGError) {
            server = try TLSConfigs.make(identity, mode: NNG_TLS_MODE_SERVER)
            do {
                client = try TLSConfigs.make(identity, mode: NNG_TLS_MODE_CLIENT)
            } catch {
                nng_tls_config_free(server)
                throw error
            }
        }

        deinit {
            nng_tls_config_free(server)
            nng_tls_config_free(client)
        }
    }

    static let current = Mutex<Configs?>(nil)

    static func make(_ identity: TLSIdentity, mode: nng_tls_mode) throws(NNGError) -> OpaquePointer {
        var config: OpaquePointer?
        try check(nng_tls_config_alloc(&config, mode), "make a TLS configuration")
        guard let config else {
            throw NNGError(code: Int32(NNG_ENOMEM.rawValue), operation: "make a TLS configuration")
        }
        do {
            try check(
                nng_tls_config_auth_mode(config, NNG_TLS_AUTH_MODE_REQUIRED), "require the peer's certificate")
            try check(nng_tls_config_ca_file(config, identity.caFile), "read the CA file \(identity.caFile)")
            try check(
                nng_tls_config_own_cert(config, try pem(identity.certificateFile), try pem(identity.keyFile), nil),
                "use the certificate \(identity.certificateFile) with the key \(identity.keyFile)")
        } catch {
            nng_tls_config_free(config)
            throw error
        }
        return config
    }

    private static func pem(_ path: String) throws(NNGError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw NNGError(code: Int32(NNG_ENOENT.rawValue), operation: "read \(path)")
        }
        return text
    }

    static func configure(listener: nng_listener, url: String, _ configs: Configs?) throws(NNGError) {
        guard let configs else { throw missing(url) }
        try check(
            nng_listener_set_ptr(listener, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(configs.server)),
            "use TLS on \(url)")
    }

    static func configure(dialer: nng_dialer, url: String, _ configs: Configs?) throws(NNGError) {
        guard let configs else { throw missing(url) }
        try check(
            nng_dialer_set_ptr(dialer, NNG_OPT_TLS_CONFIG, UnsafeMutableRawPointer(configs.client)),
            "use TLS on \(url)")
    }

    private static func missing(_ url: String) -> NNGError {
        NNGError(code: Int32(NNG_EINVAL.rawValue), operation: "\(url) needs this component's certificates (--tls DIR)")
    }
}

extension NNGSocket {
    /// From now on every `tls+tcp://` listener and dialer of this process presents `identity`'s
    /// certificate and accepts only peers whose certificate its CA signed. Fails (and changes
    /// nothing) when a file is missing or does not parse, naming it.
    package static func useTLS(_ identity: TLSIdentity) throws(NNGError) {
        let configs = try TLSConfigs.Configs(identity)
        TLSConfigs.current.withLock { $0 = configs }
    }

    /// How many connections this socket's dialers could not make because TLS refused them (the
    /// peer's certificate, or ours, not signed by the CA): what a component says in its log when
    /// it cannot reach its peer.
    package func dialerAuthFailures() -> UInt64 {
        var stats: OpaquePointer?
        guard nng_stats_get(&stats) == 0, let stats else { return 0 }
        defer { nng_stats_free(stats) }
        return gate.withLock { $0.endpoints }.reduce(0) { sum, endpoint in
            guard case .dialer(let dialer) = endpoint.handle, let node = NNGStats.dialer(stats, dialer),
                let stat = nng_stat_find(node, "auth")
            else { return sum }
            return sum + nng_stat_value(stat)
        }
    }

    /// Reports each TLS listener's handshakes refused since the last report.
    func reportTLSRefusals(_ stats: OpaquePointer) {
        let refused = gate.withLock { gate -> [(String, UInt64)] in
            var refused: [(String, UInt64)] = []
            for index in gate.endpoints.indices where Endpoint.isTLS(gate.endpoints[index].url) {
                guard case .listener(let listener) = gate.endpoints[index].handle,
                    let node = NNGStats.listener(stats, listener), let auth = nng_stat_find(node, "auth")
                else { continue }
                let count = nng_stat_value(auth)
                if count > gate.endpoints[index].refusalsReported {
                    refused.append((gate.endpoints[index].url, count - gate.endpoints[index].refusalsReported))
                    gate.endpoints[index].refusalsReported = count
                }
            }
            return refused
        }
        for (url, count) in refused { EndpointWatchdog.report(.tlsRefused(url: url, count: count)) }
    }
}
