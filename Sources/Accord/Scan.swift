import ArgumentParser
import EventLog
import Foundation
import Model
import ReadModels
import Wire

struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find instances left non-terminal: their last event, and how long ago it was.")

    @OptionGroup var source: SourceOptions
    @Flag(help: "Instances whose last event leaves them non-terminal (the only scan so far).") var stuck = false
    @Option(help: "Only those whose last event is older than this (e.g. 90s, 10m, 2h, 1d).") var olderThan = "10m"
    @Flag(help: "Print JSON Lines.") var json = false

    func run() async throws {
        guard stuck else { throw ValidationError("say what to scan for: --stuck") }
        guard let age = Scan.parseDuration(olderThan) else {
            throw ValidationError("--older-than takes a duration such as 90s, 10m, 2h or 1d")
        }
        var status: [InstanceID: InstanceStatus] = [:]
        var last: [InstanceID: EventEnvelope] = [:]
        try await source.source().forEach(after: 0) { envelope in
            let id = envelope.instanceID
            if let new = envelope.event.status, !(status[id]?.isTerminal ?? false) { status[id] = new }
            last[id] = envelope
            return true
        }
        let now = Timestamp.now()
        let found = status.filter { !$0.value.isTerminal }.compactMap {
            id, status -> (InstanceID, InstanceStatus, EventEnvelope)? in
            guard let event = last[id], now.millis - event.at.millis >= age else { return nil }
            return (id, status, event)
        }.sorted { $0.2.seq < $1.2.seq }
        for (id, status, event) in found {
            let ago = Scan.describe(now.millis - event.at.millis)
            if json {
                let object: [String: Any] = [
                    "instanceId": id.description, "status": status.rawValue, "lastSeq": event.seq,
                    "lastType": event.event.typeName, "lastAt": event.at.iso8601,
                    "ageMillis": now.millis - event.at.millis,
                ]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                Out.line(String(decoding: data, as: UTF8.self))
            } else {
                Out.line(
                    "\(id)  \(status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  last #\(event.seq) \(event.event.typeName) at \(event.at.iso8601) (\(ago) ago)"
                )
            }
        }
        if !json { Out.line("\(found.count) instance(s) non-terminal for more than \(olderThan)") }
    }

    /// `90s`, `10m`, `2h`, `1d`, `250ms` or bare seconds, in milliseconds.
    static func parseDuration(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let value = Double(text.dropLast(suffix.count)), value >= 0 { return Int64(value * Double(factor)) }
        }
        return Double(text).map { Int64($0 * 1000) }
    }

    static func describe(_ millis: Int64) -> String {
        switch millis {
        case ..<60_000: "\(millis / 1000) s"
        case ..<3_600_000: "\(millis / 60_000) min"
        case ..<86_400_000: String(format: "%.1f h", Double(millis) / 3_600_000)
        default: String(format: "%.1f days", Double(millis) / 86_400_000)
        }
    }
}
