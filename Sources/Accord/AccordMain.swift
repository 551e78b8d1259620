import ArgumentParser
import EventLog
import Foundation
import Model
import PostgresStore
import Wire

/// `accord`: the event log's tooling (verify, export, show, scan), offline on a data folder or live
/// through a Gateway, and the everyday client (start, status, wait, logs, kill).
@main
struct Accord: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accord",
        abstract: "Work with an Accord deployment and its event log.",
        discussion: """
            Offline commands take a data folder (DATA, the Scheduler's --data); live ones read through a
            Gateway (--url, or ACCORD_URL, or `url = ...` in ~/.config/accord/config) with the API key from
            ACCORD_API_KEY or `api-key = ...` in that file.
            """,
        subcommands: [
            LogCommand.self, ProjectionsCommand.self, Show.self, Scan.self, BenchLog.self, BenchHistory.self,
            Start.self,
            Status.self,
            Wait.self,
            Logs.self, Kill.self, KeysCommand.self, CertsCommand.self,
        ])
}

struct LogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Check and move the event log.",
        subcommands: [Verify.self, Export.self, Import.self])
}

/// Where events come from: a data folder, or a Gateway.
struct SourceOptions: ParsableArguments {
    @Argument(help: "The data folder (or its events/ folder). Omit with --url or --store.") var data: String?
    @Option(help: "Read through this Gateway instead of a data folder.") var url: String?
    @Option(help: StoreOption.help) var store: String?

    init() {}

    init(data: String?, url: String?, store: String? = nil) {
        self.data = data
        self.url = url
        self.store = store
    }

    func source() throws -> any EventSource {
        if let url { return try LiveSource(client: Client(url: url)) }
        if let database = try StoreOption.database(store, data: data) { return PostgresSource(url: database) }
        guard let data else {
            throw ValidationError("give a data folder, --store for a PostgreSQL log, or --url for a running deployment")
        }
        return try OfflineSource(data: data)
    }
}

/// `--store postgres://...`: the offline commands read the PostgreSQL log instead of a data folder.
enum StoreOption {
    static let help = ArgumentHelp(
        "Read the PostgreSQL log at this URL (postgres://user:password@host:port/database; default ACCORD_DATABASE_URL when no data folder is given).",
        valueName: "postgres-url")

    /// The database to read: `--store`, else ACCORD_DATABASE_URL when no folder is named.
    static func database(_ store: String?, data: String?) throws -> PostgresURL? {
        guard let chosen = store ?? (data == nil ? ProcessInfo.processInfo.environment["ACCORD_DATABASE_URL"] : nil)
        else { return nil }
        if data != nil { throw ValidationError("give a data folder or --store, not both") }
        do {
            return try PostgresURL(chosen)
        } catch {
            throw ValidationError("--store: \(error)")
        }
    }
}

/// What every client command shares: where the Gateway is, and how to print.
struct ClientOptions: ParsableArguments {
    @Option(help: "The Gateway (default: ACCORD_URL, the config file, or http://127.0.0.1:8001).") var url: String?
    @Flag(help: "Print JSON (for scripts) instead of text for people.") var json = false

    func client() throws -> Client { try Client(url: url) }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes to stdout without Foundation's buffering surprises; errors go to stderr.
enum Out {
    static func line(_ text: String = "") { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
    static func error(_ text: String) { FileHandle.standardError.write(Data(("accord: " + text + "\n").utf8)) }
}
