import ArgumentParser
import EventLog
import Foundation
import Model
import ReadModels
import Wire

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Append an export (JSON Lines) to a data folder's log, numbered after what is there.",
        discussion: """
            Builds a new data folder, or adds to one whose Scheduler is stopped (the log is locked while one
            runs). Events keep their order; each is numbered after the target's last event and carries
            `importedFrom`, its number in the log it came from. An instance that already exists in the target
            is refused, and nothing is written then. Archives are not part of an export: imported instances that
            are not terminal would be dispatched without their payload, so they are reported.
            """)

    @Argument(help: "The export to read (`-` for standard input).") var file: String
    @Argument(help: "The data folder to build or add to.") var data: String

    func run() async throws {
        let input: Data
        if file == "-" {
            input = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let bytes = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            input = bytes
        }
        var events: [EventEnvelope] = []
        var lineNumber = 0
        for line in input.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            guard !line.isEmpty else { continue }
            do {
                events.append(try FastEventDecoder.decode(Data(line)))
            } catch {
                throw CLIError("\(file):\(lineNumber): not an event: \(error)")
            }
        }
        guard !events.isEmpty else { throw CLIError("\(file) holds no events") }
        for (previous, next) in zip(events, events.dropFirst()) where next.seq <= previous.seq {
            throw CLIError("\(file): event #\(next.seq) follows #\(previous.seq): an export is in log order")
        }
        let directory = data + "/events"
        let incoming = Set(events.map(\.instanceID))
        var existing: Set<InstanceID> = []
        if FileManager.default.fileExists(atPath: directory) {
            try EventLogReader(directory: directory).forEachEvent { existing.insert($0.instanceID) }
        }
        let clashes = incoming.intersection(existing)
        guard clashes.isEmpty else {
            throw CLIError(
                "\(clashes.count) instance(s) or key(s) already exist in \(data), e.g. \(clashes.first!); nothing was imported"
            )
        }
        let log: FileEventLog
        do {
            log = try FileEventLog(directory: directory)
        } catch {
            throw CLIError("\(error) (stop its Scheduler first)")
        }
        defer { log.close() }
        let before = log.durableHead
        var status: [InstanceID: InstanceStatus] = [:]
        for start in stride(from: 0, to: events.count, by: 1000) {
            let drafts = events[start..<min(start + 1000, events.count)].map { original in
                var draft = original
                draft.importedFrom = original.importedFrom ?? original.seq
                draft.seq = 0
                if let next = original.event.status, !(status[original.instanceID]?.isTerminal ?? false) {
                    status[original.instanceID] = next
                }
                return draft
            }
            try await log.append(drafts).durable()
        }
        let after = log.durableHead
        let keys = Set(events.filter(\.event.isKeyEvent).map(\.instanceID)).count
        let instances = incoming.count - keys
        let renumbered = events.first?.seq != before + 1 || events.last?.seq != after
        Out.line(
            "imported \(events.count) events of \(instances) instance(s)\(keys > 0 ? " and \(keys) API key(s)" : "") into \(data) as #\(before + 1)...#\(after)"
                + (renumbered ? " (renumbered from #\(events.first!.seq)...#\(events.last!.seq))" : ""))
        let unfinished = status.filter { !$0.value.isTerminal }
        if !unfinished.isEmpty {
            Out.line(
                "note: \(unfinished.count) imported instance(s) are not terminal (e.g. \(unfinished.first!.key) "
                    + "\(unfinished.first!.value.rawValue)); a Scheduler on this folder will treat them as live")
        }
    }
}
