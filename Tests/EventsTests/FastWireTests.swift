import Foundation
import TestSupport
import Testing

@testable import Events

/// An executor's reports, written and read by hand: the same bytes `JSONEncoder` writes and the
/// same reports `JSONDecoder` reads, for every kind of report.
@Suite struct FastWireTests {
    @Test(arguments: 0..<2)
    func reportsMatchCodableBothWays(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &+ 99)
        let alphabet = Array("aZ09 _-:/\"\\\n\t\u{1}\u{1f}é☃😀{}[],")
        func text() -> String {
            String((0..<Int.random(in: 0...10, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
        }
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
            case 3: return .string(text())
            case 4: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) })
            default: return .object([text(): value(depth + 1), "Key": value(depth + 1)])
            }
        }
        let encoder = EventCodec.makeEncoder()
        for n in 0..<200 {
            let kinds: [ReportKind] = [
                .started,
                .log(lines: [LogLine(at: Timestamp(millis: Int64(n)), level: .warn, text: text())]),
                .steps(records: [
                    StepRecord(
                        flow: text(), step: text(), file: text(), line: n, column: n % 2 == 0 ? nil : n,
                        startedAt: Timestamp(millis: 3), durationMicros: Int64(n), outcome: .ok)
                ]),
                .finished(out: [text(): value(0)]),
                .failed(error: text(), out: [text(): value(0), "b": value(0)]),
            ]
            let reports = kinds.enumerated().map { index, kind in
                Report(
                    seq: UInt64(n * 10 + index), instanceID: InstanceID(), kind: kind, at: Timestamp(millis: Int64(n)))
            }
            let executor = ExecutorID("executor-\(text())/1")
            let header = try #require(FastWire.reportsHeader(executorID: executor, reports: reports))
            let reference = Array(try encoder.encode(ExecutorRequest.reports(executorID: executor, reports: reports)))
            #expect(header == reference, "\(String(decoding: header, as: UTF8.self))")
            guard case .reports(let readExecutor, let read)? = FastWire.reports(header[...]) else {
                Issue.record("the fast reader declined \(String(decoding: header, as: UTF8.self))")
                continue
            }
            #expect(readExecutor == executor)
            #expect(read == reports)
        }
        let withFraction = [
            Report(seq: 1, instanceID: InstanceID(), kind: .finished(out: ["x": .double(1.5)]), at: .now())
        ]
        #expect(FastWire.reportsHeader(executorID: ExecutorID("e/1"), reports: withFraction) == nil)
        let heartbeat = Array(try encoder.encode(ExecutorRequest.heartbeat(executorID: ExecutorID("e/1"))))
        #expect(FastWire.reports(heartbeat[...]) == nil)
    }

    /// The other per-instance messages: a start, its answer, a dispatch. Through `WireFrame`, which
    /// takes the hand-written path for them and `Codable` for everything else.
    @Test(arguments: 0..<2)
    func startAnswerAndDispatchMatchCodableBothWays(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &+ 7)
        let alphabet = Array("aZ09 _-:/\"\\\n\t\u{1}é☃😀{}[],")
        func text() -> String {
            String((0..<Int.random(in: 0...10, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
        }
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
            case 3: return .string(text())
            case 4: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) })
            default: return .object([text(): value(depth + 1), "Key": value(depth + 1)])
            }
        }
        let encoder = EventCodec.makeEncoder()
        for n in 0..<200 {
            let maybe = { (text: String) in Bool.random(using: &rng) ? text : nil }
            let start = StartInstance(
                requestID: RequestID(text()), entryPoint: maybe(text()),
                arguments: [text(): value(0), "Key": value(0)],
                timeoutMillis: n % 3 == 0 ? Int64(n) * 1000 : nil, out: [text()], tags: n % 2 == 0 ? [] : [text()],
                idempotencyKey: maybe(text()), principal: maybe(text()))
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
                instanceID: InstanceID(), attempt: n % 4 + 1, entryPoint: maybe(text()),
                arguments: [text(): value(0)], out: [text(), text()])
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
}
