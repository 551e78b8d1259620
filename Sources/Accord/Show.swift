import ArgumentParser
import EventLog
import Foundation
import JSON
import Model
import ReadModels
import Wire

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An instance's story as a timeline: status changes, steps with durations, log lines, errors.",
        discussion: "With --at, as it stood at that sequence number or time (ISO-8601, e.g. 2026-11-29T10:00:00Z).")

    @Argument(help: "DATA ID (a data folder and an instance), or just ID with --url.") var positional: [String]
    @Option(help: "Read through this Gateway instead of a data folder.") var url: String?
    @Option(help: StoreOption.help) var store: String?
    @Option(help: "Show it as it stood at this sequence number or time.") var at: String?
    @Flag(help: "Print the timeline as JSON Lines.") var json = false

    func run() async throws {
        let offline = url == nil && store == nil && ProcessInfo.processInfo.environment["ACCORD_DATABASE_URL"] == nil
        let expected = offline || positional.count == 2 ? 2 : 1
        guard positional.count == expected else {
            throw ValidationError(offline ? "give a data folder and an instance id" : "give an instance id")
        }
        let id = positional[expected - 1]
        guard let instance = InstanceID(id) else { throw ValidationError("\(id) is not an instance id") }
        let source = SourceOptions(data: expected == 2 ? positional[0] : nil, url: url, store: store)
        let cut = try at.map(Cut.parse)
        var events: [EventEnvelope] = []
        var lastSeen: EventEnvelope?
        var keys = KeyProjection()
        try await source.source().forEach(after: 0) { envelope in
            if let cut, !cut.includes(envelope) { return false }
            lastSeen = envelope
            keys.apply(envelope)
            if envelope.instanceID == instance { events.append(envelope) }
            return true
        }
        guard !events.isEmpty else {
            throw CLIError("no events for \(instance)\(cut.map { " up to \($0)" } ?? "") in this log")
        }
        if json {
            let encoder = EventCodec.makeEncoder()
            for event in events { Out.line(String(decoding: try encoder.encode(event), as: UTF8.self)) }
            return
        }
        Out.line(Timeline.render(instance, events, asOf: cut.map { _ in lastSeen } ?? nil, keys: keys))
    }
}

/// A point in the log: a sequence number or a time.
enum Cut: CustomStringConvertible {
    case seq(UInt64)
    case time(Timestamp)

    static func parse(_ text: String) throws -> Cut {
        if let seq = UInt64(text) { return .seq(seq) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let date = formatter.date(from: text) ?? plain.date(from: text) else {
            throw ValidationError("--at takes a sequence number or an ISO-8601 time, not \(text)")
        }
        return .time(Timestamp(millis: Int64((date.timeIntervalSince1970 * 1000).rounded())))
    }

    func includes(_ envelope: EventEnvelope) -> Bool {
        switch self {
        case .seq(let seq): envelope.seq <= seq
        case .time(let time): envelope.at <= time
        }
    }

    var description: String {
        switch self {
        case .seq(let seq): "#\(seq)"
        case .time(let time): time.iso8601
        }
    }
}

/// The text `accord show` prints (pure, so it is tested as text).
enum Timeline {
    /// `keys` names the key that started the instance.
    static func render(
        _ id: InstanceID, _ events: [EventEnvelope], asOf: EventEnvelope?, keys: KeyProjection = KeyProjection()
    ) -> String {
        var lines: [String] = []
        var status: InstanceStatus?
        var created: Timestamp?
        var running: Timestamp?
        for envelope in events {
            let seq = "#\(envelope.seq)".padding(toLength: 8, withPad: " ", startingAt: 0)
            // Log lines and steps carry their own times (when written, when started).
            func row(_ label: String, _ text: String, at time: Timestamp = envelope.at) {
                lines.append(
                    "\(time.iso8601)  \(seq)\(label.padding(toLength: 11, withPad: " ", startingAt: 0))\(text)")
            }
            switch envelope.event {
            case .instanceCreated(let e):
                created = envelope.at
                var parts = ["entry point \(e.entryPoint ?? "(from concord.yml)")"]
                if !e.arguments.isEmpty { parts.append("arguments \(compact(.object(e.arguments)))") }
                if !e.tags.isEmpty { parts.append("tags \(e.tags.joined(separator: ","))") }
                if let timeout = e.timeoutMillis { parts.append("timeout \(timeout) ms") }
                if let timeout = e.handlerTimeoutMillis { parts.append("handler timeout \(timeout) ms") }
                if let key = e.idempotencyKey { parts.append("Idempotency-Key \(key)") }
                if let principal = e.principal { parts.append("started by \(starter(principal, keys))") }
                if let team = e.team { parts.append("team \(team)") }
                row("ENQUEUED", parts.joined(separator: ", "))
            case .instanceAssigned(let e):
                row("STARTING", "assigned to \(e.executorID) (attempt \(e.attempt))")
            case .instanceStarted(let e):
                running = envelope.at
                row("RUNNING", "on \(e.executorID)")
            case .instanceRequeued(let e):
                row("  requeued", e.reason)
            case .logAppended(let e):
                for line in e.lines {
                    for text in line.text.split(separator: "\n", omittingEmptySubsequences: false) {
                        row(
                            "  log",
                            "[\(line.level.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0))] \(text)",
                            at: line.at)
                    }
                }
            case .stepsRecorded(let e):
                for step in e.steps {
                    let ms = String(format: "%.3f", Double(step.durationMicros) / 1000)
                    row(
                        "  step", "\(step.flow): \(step.step) at \(step.location), \(ms) ms, \(step.outcome.rawValue)",
                        at: step.startedAt)
                }
            case .instanceFinished(let e):
                row("FINISHED", e.out.isEmpty ? "" : "out \(compact(.object(e.out)))")
            case .instanceFailed(let e):
                row("FAILED", e.error)
            case .instanceCancelled(let e):
                row("CANCELLED", e.reason)
            case .instanceTimedOut(let e):
                row("TIMED_OUT", e.error)
            case .apiKeyCreated(let e):
                var parts = ["API key '\(e.name)'", e.admin ? "admin" : "member"]
                if let team = e.team { parts.append("team \(team)") }
                if let by = e.createdBy { parts.append("created by \(starter(by, keys))") }
                row("KEY", parts.joined(separator: ", "))
            case .apiKeyRevoked(let e):
                row("REVOKED", e.revokedBy.map { "by \(starter($0, keys))" } ?? "")
            case .historyTrimmed(let e):
                row("TRIMMED", "instances that ended before \(e.before) forgotten")
            case .handlersDeclared(let e):
                row("  handlers", e.flows.joined(separator: ", "))
            case .handlerAssigned(let e):
                row("  handler", "\(e.flow) assigned to \(e.executorID) (attempt \(e.attempt))")
            case .handlerStarted(let e):
                row("  handler", "\(e.flow) running on \(e.executorID)")
            case .handlerRequeued(let e):
                row("  handler", "\(e.flow) requeued: \(e.reason)")
            case .handlerEnded(let e):
                row("  handler", e.error.map { "\(e.flow) failed: \($0)" } ?? "\(e.flow) finished")
            case .instanceSuspended(let e):
                row("SUSPENDED", "until '\(e.event)'")
            case .instanceResumed(let e):
                row(
                    "RESUMING",
                    "by '\(e.event)'" + (e.variables.isEmpty ? "" : ", set \(compact(.object(e.variables)))"))
            case .attachmentsStored(let e):
                row("  attached", e.files.map { "\($0.name) (\($0.size) bytes)" }.joined(separator: ", "))
            }
            if let new = envelope.event.status, status.map({ $0.canMove(to: new) }) ?? true { status = new }
        }
        let isKey = events.first?.event.isKeyEvent ?? false
        var header = isKey ? "API key \(id)" : "instance \(id): \(status?.rawValue ?? "?")"
        if let asOf { header += " (as of #\(asOf.seq), \(asOf.at.iso8601))" }
        var footer: [String] = []
        if !isKey, let created, let last = events.last?.at {
            footer.append("\(last.millis - created.millis) ms since ENQUEUED")
            if let running { footer.append("\(last.millis - running.millis) ms since RUNNING") }
        }
        return ([header] + lines + (footer.isEmpty ? [] : ["(" + footer.joined(separator: ", ") + ")"]))
            .joined(separator: "\n")
    }

    /// A principal as a person reads it: a recorded key by its name, a configured key by its fingerprint.
    static func starter(_ principal: String, _ keys: KeyProjection) -> String {
        keys.name(ofPrincipal: principal).map { "key '\($0)' (\(principal))" } ?? "configured key \(principal)"
    }

    static func compact(_ value: JSONValue) -> String {
        let encoder = EventCodec.makeEncoder()
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
    }
}
