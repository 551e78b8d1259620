import ArgumentParser
import Foundation
import Logging
import Model
import PostgresStore
import ServiceLifecycle
import Transport
import Wire

/// `accord-scheduler`: the single writer of the event log.
@main
struct SchedulerMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accord-scheduler", abstract: "Decides commands, appends the event log, dispatches to executors.")

    @Option(help: "Data folder: event log, payloads, ipc sockets.") var data = "./data"
    @Option(help: "Command socket URL (default ipc://<data>/run/scheduler.ipc).") var commands: String?
    @Option(help: "Event publication URL (default ipc://<data>/run/events.ipc).") var events: String?
    @Option(help: "Executor link URL (default ipc://<data>/run/executors.ipc).") var executors: String?
    @Option(help: "Seconds of executor silence before it is declared lost.") var executorLossTimeout = 10.0
    @Option(help: "Seconds an assigned instance may stay STARTING before it is dispatched again.")
    var startingTimeout = 60.0
    @Option(help: "Dispatches before an instance that never starts ends FAILED.") var maxDispatchAttempts = 3
    @Option(help: "Largest archive accepted, in bytes.") var maxPayloadBytes = 64 << 20
    @Option(help: "Events between snapshots of the state (restart replays only the log after the last one).")
    var snapshotEvery: UInt64 = 100_000
    @Option(help: "Seconds an instance may wait for an executor before it is reported in the log and metrics.")
    var enqueuedWarning = 30.0
    @Flag(inversion: .prefixedNo, help: "fsync before acknowledging (turn off only for throwaway tests).") var fsync =
        true
    @Option(
        help: ArgumentHelp(
            "Where the log, payloads and snapshots live: 'files' (under --data) or postgres://user:password@host:port/database (default: ACCORD_DATABASE_URL, else files). Schedulers on one database take turns leading.",
            valueName: "files|postgres-url"))
    var store: String?
    @Option(
        help: ArgumentHelp(
            "Instances that ended longer ago than this (30d, 12h, 90m) leave the read models, the log and the payloads; off by default.",
            valueName: "duration"))
    var retention: String?
    @Option(help: ArgumentHelp("How often retention runs (and once soon after the start).", valueName: "duration"))
    var retentionEvery = "1h"
    @Option(help: "What retention does with what it removes: 'archive' (compressed files under --archive) or 'delete'.")
    var retentionMode = "archive"
    @Option(help: "Where retention archives removed events and payloads (default <data>/archive).") var archive: String?
    @Option(help: .hidden) var segmentBytes: UInt64 = 64 << 20
    @OptionGroup var transport: TransportOptions

    func validate() throws {
        _ = try storeChoice()
        if let retention, DurationText.parse(retention) == nil {
            throw ValidationError("--retention: '\(retention)' is not a duration such as 30d, 12h, 90m or 45s")
        }
        guard DurationText.parse(retentionEvery) != nil else {
            throw ValidationError("--retention-every: '\(retentionEvery)' is not a duration such as 1h or 10m")
        }
        guard ["archive", "delete"].contains(retentionMode) else {
            throw ValidationError("--retention-mode: '\(retentionMode)' is neither 'archive' nor 'delete'")
        }
    }

    private func storeChoice() throws -> StoreChoice {
        let chosen = store ?? ProcessInfo.processInfo.environment["ACCORD_DATABASE_URL"] ?? "files"
        if chosen == "files" { return .files }
        do {
            return .postgres(try PostgresURL(chosen))
        } catch {
            throw ValidationError("--store: \(error)")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let urls = try transport.secure(
            [
                commands ?? "ipc://\(data)/run/scheduler.ipc", events ?? "ipc://\(data)/run/events.ipc",
                executors ?? "ipc://\(data)/run/executors.ipc",
            ], component: "scheduler", logger: Logger(label: "accord.scheduler"))
        let config = SchedulerConfig(
            dataDirectory: data, commandsURL: urls[0], eventsURL: urls[1], executorsURL: urls[2],
            store: try storeChoice(), fsync: fsync,
            executorLossTimeout: .milliseconds(Int64(executorLossTimeout * 1000)),
            startingTimeout: .milliseconds(Int64(startingTimeout * 1000)),
            maxDispatchAttempts: maxDispatchAttempts,
            maxCommandBytes: maxPayloadBytes + (1 << 20),
            snapshotEvery: max(1, snapshotEvery),
            enqueuedWarning: .milliseconds(Int64(enqueuedWarning * 1000)),
            retention: retention.flatMap(DurationText.parse),
            retentionEvery: DurationText.parse(retentionEvery) ?? .seconds(3600),
            retentionArchive: retentionMode == "archive" ? (archive ?? data + "/archive") : nil,
            segmentBytes: max(4096, segmentBytes))
        try await SchedulerService.build(config).run()
    }
}
