import ArgumentParser
import Logging

/// How a component's links between hosts are secured: `--tls DIR` (the deployment's certificates,
/// from `accord certs init DIR`) makes every `tcp://` link mutual TLS; plaintext TCP needs
/// `--insecure-transport`, and is logged loudly. `ipc://` links (one host) are never affected.
package struct TransportOptions: ParsableArguments {
    @Option(
        help: "Folder of this deployment's certificates (accord certs init DIR): tcp:// links become mutual TLS.")
    package var tls: String?
    @Flag(help: "Allow plaintext tcp:// links (no authentication: anyone who reaches a port joins; logged loudly).")
    package var insecureTransport = false

    package init() {}

    /// `urls` as this process must use them, with `tcp://` made `tls+tcp://` under `--tls`.
    package static func resolve(_ urls: [String], tls: Bool, insecure: Bool) throws -> [String] {
        // A comma-separated list (every Scheduler of a deployment) is resolved address by address.
        try urls.map { list in
            try list.split(separator: ",", omittingEmptySubsequences: false).map {
                try resolve(String($0), tls: tls, insecure: insecure)
            }.joined(separator: ",")
        }
    }

    private static func resolve(_ url: String, tls: Bool, insecure: Bool) throws -> String {
        guard !url.isEmpty else { throw ValidationError("an empty address in a comma-separated list") }
        if url.hasPrefix("tls+tcp://"), !tls {
            throw ValidationError(
                "\(url) needs this component's certificates: give --tls DIR (accord certs init DIR)")
        }
        guard url.hasPrefix("tcp://") else { return url }
        if tls { return "tls+" + url }
        guard insecure else {
            throw ValidationError(
                "\(url) would carry no authentication: give --tls DIR (accord certs init DIR), "
                    + "or --insecure-transport to run it in plaintext anyway")
        }
        return url
    }

    /// Sets up this process's links as `component` (`scheduler`, `gateway`, `executor`: the
    /// certificate it presents) and returns `urls` as they must be used. Fails, naming the file,
    /// when a certificate cannot be read.
    package func secure(_ urls: [String], component: String, logger: Logger) throws -> [String] {
        let resolved = try Self.resolve(urls, tls: tls != nil, insecure: insecureTransport)
        if let tls {
            do {
                try NNGSocket.useTLS(TLSIdentity(directory: tls, component: component))
            } catch {
                throw ValidationError("cannot use the certificates in \(tls): \(error)")
            }
            logger.info(
                "links between hosts use mutual TLS", metadata: ["certificates": "\(tls)", "as": "\(component)"])
        }
        let plaintext = resolved.filter { $0.hasPrefix("tcp://") }
        if !plaintext.isEmpty {
            logger.warning(
                "PLAINTEXT TRANSPORT (--insecure-transport): anyone who can reach these ports can join this deployment",
                metadata: ["links": "\(plaintext.joined(separator: " "))"])
        }
        return resolved
    }
}
