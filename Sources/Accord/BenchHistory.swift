import ArgumentParser
import EventLog
import Foundation
import JSON
import Model

/// `accord bench-history`: writes a history of finished instances straight into a data folder's
/// log, through the log's own writer (not over HTTP, no fsync), for `make bench-scale`: six
/// events each, as a trivial instance leaves them (created, assigned, started, a log line, a
/// step, finished), `--every` apart (a history builds up over time: ten million at the default
/// 250 ms span 29 days), the newest ended 40 days ago unless `--from` says when the first began.
struct BenchHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-history", abstract: "Write finished instances into a data folder's log.",
        shouldDisplay: false)

    @Argument(help: "The data folder (its events/ folder is created or extended).") var data: String
    @Option(help: "Finished instances to write.") var instances = 100_000
    @Option(help: "When the first one started, in milliseconds since 1970 (default: the last 40 days ago).")
    var from: Int64?
    @Option(help: "Milliseconds between two starts.") var every: Int64 = 250

    func run() async throws {
        let log = try FileEventLog(directory: data + "/events", fsync: false)
        defer { log.close() }
        let started = ContinuousClock.now
        guard every >= 1 else { throw ValidationError("--every must be at least 1 millisecond") }
        var at = from ?? (Timestamp.now().millis - 40 * 86_400_000 - Int64(instances) * every)
        let executor = ExecutorID("executor-1/history")
        var origin: UInt64 = 1
        var written = 0
        var pending: AppendTicket?
        while written < instances {
            var batch: [EventEnvelope] = []
            batch.reserveCapacity(6_000)
            for _ in 0..<min(1_000, instances - written) {
                batch += Self.instance(at: Timestamp(millis: at), executor: executor, origin: origin)
                origin += 4
                at += every
                written += 1
            }
            // One batch written while the next is built.
            try await pending?.durable()
            pending = log.append(batch)
        }
        try await pending?.durable()
        let elapsed = started.duration(to: .now).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        Out.line(
            #"{"instances":\#(written),"events":\#(log.durableHead),"seconds":\#(String(format: "%.2f", seconds))}"#)
    }

    static func instance(at: Timestamp, executor: ExecutorID, origin: UInt64) -> [EventEnvelope] {
        let id = InstanceID()
        func event(_ event: Event, _ report: UInt64? = nil, request: RequestID? = nil) -> EventEnvelope {
            EventEnvelope(
                instanceID: id, at: at, requestID: request,
                origin: report.map { ReportOrigin(executor: executor, seq: origin + $0) }, event: event)
        }
        return [
            event(
                .instanceCreated(
                    InstanceCreated(
                        entryPoint: "main", arguments: ["name": .string("bench")], timeoutMillis: nil, out: [],
                        tags: [], payload: PayloadRef(digest: String(repeating: "0", count: 64), size: 180),
                        idempotencyKey: nil, principal: "bench", team: nil)),
                request: RequestID(String(id.description.prefix(13)))),
            event(.instanceAssigned(InstanceAssigned(executorID: executor, attempt: 1))),
            event(.instanceStarted(InstanceStarted(executorID: executor)), 0),
            event(.logAppended(LogAppended(lines: [LogLine(at: at, level: .info, text: "Hello, bench")])), 1),
            event(
                .stepsRecorded(
                    StepsRecorded(steps: [
                        StepRecord(
                            flow: "main", step: "log", file: "processes/main.yml", line: 2, column: 3, startedAt: at,
                            durationMicros: 42, outcome: .ok)
                    ])), 2),
            event(.instanceFinished(InstanceFinished(out: [:])), 3),
        ]
    }
}
