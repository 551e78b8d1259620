import ArgumentParser
import EventLog
import Foundation
import Logging
import Model
import PostgresStore
import ReadModels
import Wire

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every record, the numbering, that every event decodes, and the status rules.",
        discussion:
            "Exits 0 when the log is sound (a torn tail is reported, not an error), 1 with the first bad offset.")

    @Argument(help: "The data folder (or its events/ folder). Omit with --store.") var data: String?
    @Option(help: StoreOption.help) var store: String?
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() async throws {
        let report: LogVerifier.Report
        let database = try StoreOption.database(store, data: data)
        let onDatabase = database != nil
        if let database {
            let opened = try await PostgresDatabase.open(database, logger: Logger(label: "accord"))
            do {
                report = try await opened.verify()
            } catch {
                await opened.close()
                throw error
            }
            await opened.close()
        } else {
            guard let data else { throw ValidationError("give a data folder, or --store for a PostgreSQL log") }
            report = try LogVerifier.verify(directory: EventLogReader.logDirectory(forData: data))
        }
        let rate = report.seconds > 0 ? Double(report.events) / report.seconds : 0
        if json {
            var object: [String: Any] = [
                "ok": report.ok, "segments": report.segments, "events": report.events, "bytes": report.bytes,
                "seconds": report.seconds, "eventsPerSecond": Int(rate),
                "eventsByType": report.eventsByType,
                "instancesByStatus": Dictionary(
                    uniqueKeysWithValues: report.instancesByStatus.map { ($0.key.rawValue, $0.value) }),
            ]
            if let first = report.firstSeq { object["firstSeq"] = first }
            if let last = report.lastSeq { object["lastSeq"] = last }
            if let torn = report.tornTail { object["tornTail"] = torn.description }
            if let failure = report.failure {
                object["failure"] = [
                    "segment": failure.segment, "offset": failure.offset, "reason": failure.reason,
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            Out.line(String(decoding: data, as: UTF8.self))
        } else {
            Out.line(
                (onDatabase ? "PostgreSQL (accord_events)" : "\(report.segments) segment(s)")
                    + ", \(report.events) events (#\(report.firstSeq ?? 0)...#\(report.lastSeq ?? 0)), "
                    + "\(report.bytes) bytes, checked in \(String(format: "%.2f", report.seconds)) s (\(Int(rate)) events/s)"
            )
            let types = report.eventsByType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            Out.line("events: " + types.joined(separator: ", "))
            let statuses = InstanceStatus.allCases.compactMap { status in
                report.instancesByStatus[status].map { "\(status.rawValue) \($0)" }
            }
            Out.line(
                "instances: \(report.instancesByStatus.values.reduce(0, +)) (" + statuses.joined(separator: ", ") + ")")
            if let torn = report.tornTail { Out.line("note: \(torn)") }
            if let failure = report.failure {
                Out.line("FAILED: \(failure.segment) at byte \(failure.offset): \(failure.reason)")
            } else {
                Out.line("ok")
            }
        }
        if !report.ok { throw ExitCode(1) }
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write events as JSON Lines, one event a line, keys in a stable order.")

    @OptionGroup var source: SourceOptions
    @Option(help: "Only this instance's events.") var instance: String?
    @Option(help: "From this sequence number (inclusive).") var from: UInt64 = 1
    @Option(help: "Up to this sequence number (inclusive).") var to: UInt64?

    func run() async throws {
        let only = try instance.map { raw -> InstanceID in
            guard let id = InstanceID(raw) else { throw ValidationError("\(raw) is not an instance id") }
            return id
        }
        let encoder = EventCodec.makeEncoder()
        var buffer = Data()
        try await source.source().forEachStored(after: from > 0 ? from - 1 : 0) { envelope, stored in
            if let to, envelope.seq > to { return false }
            if let only, envelope.instanceID != only { return true }
            // The stored bytes are today's encoding unless the event is of an older version (keys
            // are sorted, so the version closes the record): only those are encoded again.
            let marker = Array(#""version":\#(envelope.event.version)}"#.utf8)
            if stored.suffix(marker.count).elementsEqual(marker) {
                buffer.append(stored)
            } else {
                buffer.append(try encoder.encode(envelope))
            }
            buffer.append(0x0A)
            if buffer.count > 1 << 20 {
                FileHandle.standardOutput.write(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
            return true
        }
        FileHandle.standardOutput.write(buffer)
    }
}
