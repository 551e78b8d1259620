import ArgumentParser
import EventLog
import Foundation
import Model
import Wire

/// `accord bench-log`: the event log alone (what `make bench` reports): `writers` concurrent
/// appenders, each appending one small event at a time and waiting until it is durable, for
/// `seconds`. Shows what group commit gives: appends per second and appends per fsync.
struct BenchLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-log", abstract: "Measure durable appends per second on a scratch log.",
        shouldDisplay: false)

    @Argument(help: "A scratch folder (created; its log is appended to).") var directory: String
    @Option(help: "Concurrent writers.") var writers = 1
    @Option(help: "How long to append, in seconds.") var seconds = 3.0
    @Flag(help: "Skip fsync (to see what durability costs).") var noFsync = false

    func run() async throws {
        let log = try FileEventLog(directory: directory, fsync: !noFsync)
        defer { log.close() }
        let before = log.appendStats
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let started = ContinuousClock.now
        let id = InstanceID()
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<writers {
                group.addTask {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        let event = EventEnvelope(
                            instanceID: id, at: .now(),
                            event: .logAppended(LogAppended(lines: [LogLine(at: .now(), level: .info, text: "bench")])))
                        try await log.append([event]).durable()
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = started.duration(to: .now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let after = log.appendStats
        let syncs = after.syncs - before.syncs
        Out.line(
            #"{"writers":\#(writers),"appends":\#(total),"seconds":\#(String(format: "%.3f", seconds)),"#
                + #""appendsPerSecond":\#(Int(Double(total) / seconds)),"fsyncs":\#(syncs),"#
                + #""appendsPerFsync":\#(String(format: "%.1f", Double(total) / Double(max(syncs, 1))))}"#)
    }
}
