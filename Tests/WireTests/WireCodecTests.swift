import Foundation
import JSON
import Model
import TestSupport
import Testing

@testable import Wire

/// An executor's reports, written and read by hand: the same bytes `JSONEncoder` writes and the
/// same reports `JSONDecoder` reads, for every kind of report.
@Suite struct FastWireTests {
    @Test(arguments: 0..<2)
    func reportsMatchCodableBothWays(seed: Int) throws {
        var random = RandomJSON(seed: UInt64(seed) &+ 99)
        let encoder = EventCodec.makeEncoder()
        for n in 0..<200 {
            let kinds: [ReportKind] = [
                .started,
                .log(lines: [LogLine(at: Timestamp(millis: Int64(n)), level: .warn, text: random.text())]),
                .steps(records: [
                    StepRecord(
                        flow: random.text(), step: random.text(), file: random.text(), line: n,
                        column: n % 2 == 0 ? nil : n, startedAt: Timestamp(millis: 3), durationMicros: Int64(n),
                        outcome: .ok)
                ]),
                .finished(out: random.object()),
                .failed(error: random.text(), out: random.object(extra: ["Key"])),
                .failed(error: random.text(), out: random.object(), variables: random.object()),
                .handlers(flows: [random.text(), "onFailure"]),
                .suspended(event: random.text(), state: PayloadRef(digest: random.text(), size: n)),
                .attachments(
                    archive: PayloadRef(digest: random.text(), size: n),
                    files: [AttachmentFile(name: random.text(), size: n), AttachmentFile(name: "b/c", size: 0)]),
            ]
            let reports = kinds.enumerated().map { index, kind in
                Report(
                    seq: UInt64(n * 10 + index), instanceID: InstanceID(), kind: kind, at: Timestamp(millis: Int64(n)),
                    handler: index % 3 == 0 ? random.text() : nil)
            }
            let executor = ExecutorID("executor-\(random.text())/1")
            let header = try #require(ReportsCodec.reportsHeader(executorID: executor, reports: reports))
            let reference = Array(try encoder.encode(ExecutorRequest.reports(executorID: executor, reports: reports)))
            #expect(header == reference, "\(String(decoding: header, as: UTF8.self))")
            guard case .reports(let readExecutor, let read)? = ReportsCodec.reports(header[...]) else {
                Issue.record("the fast reader declined \(String(decoding: header, as: UTF8.self))")
                continue
            }
            #expect(readExecutor == executor)
            #expect(read == reports)
        }
        let withFraction = [
            Report(seq: 1, instanceID: InstanceID(), kind: .finished(out: ["x": .double(1.5)]), at: .now())
        ]
        #expect(ReportsCodec.reportsHeader(executorID: ExecutorID("e/1"), reports: withFraction) == nil)
        let heartbeat = Array(try encoder.encode(ExecutorRequest.heartbeat(executorID: ExecutorID("e/1"))))
        #expect(ReportsCodec.reports(heartbeat[...]) == nil)
    }

    /// The other per-instance messages: a start, its answer, a dispatch. Through `WireFrame`, which
    /// takes the hand-written path for them and `Codable` for everything else.
    @Test(arguments: 0..<2)
    func startAnswerAndDispatchMatchCodableBothWays(seed: Int) throws {
        var random = RandomJSON(seed: UInt64(seed) &+ 7)
        let encoder = EventCodec.makeEncoder()
        for n in 0..<200 {
            let start = StartInstance(
                requestID: RequestID(random.text()), entryPoint: random.maybe(),
                arguments: random.object(extra: ["Key"]), timeoutMillis: n % 3 == 0 ? Int64(n) * 1000 : nil,
                out: [random.text()], tags: n % 2 == 0 ? [] : [random.text()], idempotencyKey: random.maybe(),
                principal: random.maybe())
            let request = SchedulerRequest.start(start)
            #expect(request.fastHeader == Array(try encoder.encode(request)))
            guard case .start(let readStart)? = SchedulerRequest.fastDecode(request.fastHeader![...]) else {
                Issue.record("the fast reader declined a start")
                continue
            }
            #expect(readStart == start)
            let (framed, attachment) = try WireFrame.decode(
                SchedulerRequest.self, from: WireFrame.encode(request, attachment: [1, 2, 3]))
            if case .start(let viaFrame) = framed { #expect(viaFrame == start) } else { Issue.record("not a start") }
            #expect(Array(attachment) == [1, 2, 3])

            let reply = SchedulerReply.started(instanceID: InstanceID(), created: n % 2 == 0, seq: UInt64(n) * 7)
            #expect(reply.fastHeader == Array(try encoder.encode(reply)))
            let readReply = try WireFrame.decode(SchedulerReply.self, from: WireFrame.encode(reply)).message
            #expect(try encoder.encode(readReply) == encoder.encode(reply))

            let dispatch = Dispatch(
                instanceID: InstanceID(), attempt: n % 4 + 1, entryPoint: random.maybe(), arguments: random.object(),
                out: [random.text(), random.text()])
            let command = ExecutorCommand.dispatch(dispatch)
            #expect(command.fastHeader == Array(try encoder.encode(command)))
            guard case .dispatch(let readDispatch)? = ExecutorCommand.fastDecode(command.fastHeader![...]) else {
                Issue.record("the fast reader declined a dispatch")
                continue
            }
            #expect(readDispatch == dispatch)
        }
        // Everything else still goes through Codable, both ways.
        let cancel = ExecutorCommand.cancel(instanceID: InstanceID())
        #expect(cancel.fastHeader == nil)
        if case .cancel = try WireFrame.decode(ExecutorCommand.self, from: WireFrame.encode(cancel)).message {
        } else {
            Issue.record("a cancel did not come back as one")
        }
        let withFraction = SchedulerRequest.start(
            StartInstance(
                requestID: RequestID("r"), entryPoint: nil, arguments: ["x": .double(0.25)], timeoutMillis: nil,
                out: [], tags: [], idempotencyKey: nil, principal: nil))
        #expect(withFraction.fastHeader == nil)
        if case .start(let start) = try WireFrame.decode(SchedulerRequest.self, from: WireFrame.encode(withFraction))
            .message
        {
            #expect(start.arguments["x"] == .double(0.25))
        } else {
            Issue.record("a start with a fraction did not come back")
        }
    }

    /// A catch-up's page of events (what a new Gateway folds the whole log through), and the
    /// events `readEvents` answers: the same bytes `JSONEncoder` writes, the same events back.
    @Test func catchUpPagesMatchCodableBothWays() throws {
        let encoder = EventCodec.makeEncoder()
        var events = everyEventType() + eventsWithLaterFields(InstanceID())
        for index in events.indices { events[index].seq = UInt64(index + 1) }
        for reply in [
            SchedulerReply.events(events: events, head: 99), .someEvents(events: events), .events(events: [], head: 0),
        ] {
            let header = try #require(reply.fastHeader)
            #expect(header == Array(try encoder.encode(reply)), "\(String(decoding: header, as: UTF8.self))")
            let read = try #require(SchedulerReply.fastDecode(header[...]))
            #expect(try encoder.encode(read) == encoder.encode(reply))
        }
        // The Scheduler's page from the log's own JSON: the same header, the same events back.
        let stored = try events.map { Array(try EventCodec.encode($0)) }
        #expect(
            SchedulerReply.eventsHeader(stored: stored, head: 99)
                == SchedulerReply.events(events: events, head: 99).fastHeader)
        #expect(
            SchedulerReply.eventsHeader(stored: [], head: 0) == SchedulerReply.events(events: [], head: 0).fastHeader)
        // An event only `JSONEncoder` writes (a fraction) sends the whole page through Codable.
        var fraction = events[0]
        fraction.event = .instanceFinished(InstanceFinished(out: ["x": .double(0.5)]))
        let mixed = SchedulerReply.events(events: [events[1], fraction], head: 2)
        #expect(mixed.fastHeader == nil)
        guard
            case .events(let read, 2) = try WireFrame.decode(SchedulerReply.self, from: WireFrame.encode(mixed)).message
        else {
            Issue.record("a page with a fraction did not come back")
            return
        }
        #expect(read == [events[1], fraction])
    }
}
