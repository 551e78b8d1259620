import ArgumentParser
import Certificates

/// `accord certs`: the certificates for mutual TLS between a deployment's hosts.
struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "Certificates for mutual TLS between hosts.", subcommands: [CertsInit.self])
}

struct CertsInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make a CA and a certificate for each component (scheduler, gateway, executor) in DIR.",
        discussion: """
            Give every host the folder without ca-key.pem (it only signs certificates; keep it offline), and
            start each component with --tls DIR: its tcp:// links become mutual TLS, and a peer whose
            certificate this CA did not sign gets no connection.
            """)

    @Argument(help: "The folder to create (refused if it holds a CA already).") var directory: String
    @Option(name: .customLong("host"), help: "A host name or IPv4 address to add to every certificate; repeatable.")
    var hosts: [String] = []
    @Option(help: "Days the certificates are valid.") var days = 825

    func run() async throws {
        guard days > 0 else { throw ValidationError("--days must be positive") }
        do {
            for path in try DeploymentCertificates.initialize(directory: directory, hosts: hosts, validDays: days) {
                Out.line(path)
            }
        } catch let error as CertificateError {
            throw CLIError(error.description)
        }
    }
}
