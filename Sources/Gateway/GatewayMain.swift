import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Model
import Transport
import Wire

/// `accord-gateway`: the HTTP API.
@main
struct GatewayMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accord-gateway", abstract: "Serves the HTTP API; commands go to the Scheduler.")

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "HTTP port.") var port = 8001
    @Option(help: "Data folder.") var data = "./data"
    @Option(help: "Scheduler command URL (default ipc://<data>/run/scheduler.ipc).") var scheduler: String?
    @Option(help: "Scheduler event URL (default ipc://<data>/run/events.ipc).") var events: String?
    @Option(help: "API keys file (default <data>/keys): one key, or sha256:<hex>, per line.") var keysFile: String?
    @Flag(help: "Serve without API keys (the server says so loudly at start-up).") var noAuth = false
    @Option(help: "Largest request body, in bytes.") var maxBodyBytes = 64 << 20
    @Option(help: "Largest unpacked archive, in bytes.") var maxUnpackedBytes = 256 << 20
    @Option(help: "Most entries in an archive.") var maxEntries = 10_000
    @Option(help: "Seconds to wait for the Scheduler before answering 503.") var schedulerTimeout = 10.0
    @Option(help: "Seconds a request may take to arrive (headers and body); slower clients are cut off.")
    var requestReadTimeout = 60.0
    @Option(help: "Seconds an idle connection (or one sending its headers) is kept open.") var idleTimeout = 30.0
    @OptionGroup var transport: TransportOptions

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let environmentKeys = (ProcessInfo.processInfo.environment["ACCORD_API_KEYS"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let urls = try transport.secure(
            [scheduler ?? "ipc://\(data)/run/scheduler.ipc", events ?? "ipc://\(data)/run/events.ipc"],
            component: "gateway", logger: Logger(label: "accord.gateway"))
        let config = GatewayConfig(
            host: host, port: port, dataDirectory: data, schedulerURL: urls[0], eventsURL: urls[1],
            keysFile: keysFile ?? "\(data)/keys", environmentKeys: environmentKeys, authEnabled: !noAuth,
            maxBodyBytes: maxBodyBytes, maxUnpackedBytes: maxUnpackedBytes, maxEntries: maxEntries,
            schedulerTimeout: .milliseconds(Int64(schedulerTimeout * 1000)),
            requestReadTimeout: .milliseconds(Int64(requestReadTimeout * 1000)),
            idleTimeout: .milliseconds(Int64(idleTimeout * 1000)))
        try await buildGateway(config).runService()
    }
}
