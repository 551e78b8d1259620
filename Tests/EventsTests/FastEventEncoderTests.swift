import Foundation
import TestSupport
import Testing

@testable import Events

/// The fast encoder writes exactly what `JSONEncoder` writes, byte for byte: every fixture, and
/// generated events with every control character, non-ASCII keys and nested values.
@Suite struct FastEventEncoderTests {
    private func agree(_ envelope: EventEnvelope, _ what: String = "") throws {
        let reference = Array(try EventCodec.makeEncoder().encode(envelope))
        guard let fast = FastEventEncoder.encode(envelope) else {
            Issue.record("\(what): the fast encoder declined an event without floating-point numbers")
            return
        }
        #expect(
            fast == reference,
            "\(what):\n\(String(decoding: fast, as: UTF8.self))\n\(String(decoding: reference, as: UTF8.self))")
    }

    @Test func everyFixtureEncodesTheSame() throws {
        for (offset, envelope) in everyEvent().enumerated() {
            var numbered = envelope
            numbered.seq = UInt64(offset + 1)
            try agree(numbered, envelope.event.typeName)
        }
    }

    @Test(arguments: 0..<3)
    func generatedEventsEncodeTheSame(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &+ 1234)
        let controls = (0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) } + ["\u{7F}"]
        let alphabet = Array("aAzZ09 _-:/\"\\'é☃😀{}[],") + controls
        func text() -> String {
            String((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
        }
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
            case 3: return .string(text())
            case 4: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) })
            default:
                return .object(
                    Dictionary((0..<Int.random(in: 0...4, using: &rng)).map { _ in (text(), value(depth + 1)) }) {
                        a, _ in a
                    })
            }
        }
        for n in 0..<300 {
            let id = InstanceID()
            let events: [Event] = [
                .instanceCreated(
                    InstanceCreated(
                        entryPoint: Bool.random(using: &rng) ? text() : nil,
                        arguments: Dictionary([("a", value(0)), (text(), value(0)), ("B", value(0))]) { a, _ in a },
                        timeoutMillis: Bool.random(using: &rng) ? Int64(n) * 1000 : nil,
                        out: [text(), text()], tags: Bool.random(using: &rng) ? [] : [text(), text()],
                        payload: PayloadRef(digest: text(), size: n),
                        idempotencyKey: Bool.random(using: &rng) ? text() : nil,
                        principal: Bool.random(using: &rng) ? text() : nil)),
                .instanceAssigned(InstanceAssigned(executorID: ExecutorID(text()), attempt: n)),
                .instanceStarted(InstanceStarted(executorID: ExecutorID(text()))),
                .logAppended(
                    LogAppended(
                        lines: (0..<Int.random(in: 1...3, using: &rng)).map { _ in
                            LogLine(
                                at: Timestamp(millis: Int64(n) - 5), level: [.debug, .info, .warn, .error][n % 4],
                                text: text())
                        })),
                .instanceFinished(InstanceFinished(out: [text(): value(0), "x": value(1)])),
                .instanceFailed(InstanceFailed(error: text(), out: [text(): value(0)])),
                .instanceCancelled(InstanceCancelled(reason: text())),
                .instanceTimedOut(InstanceTimedOut(error: text())),
                .stepsRecorded(
                    StepsRecorded(steps: [
                        StepRecord(
                            flow: text(), step: text(), file: text(), line: n, column: n % 2 == 0 ? nil : n,
                            startedAt: Timestamp(millis: 5), durationMicros: Int64(n) * 3,
                            outcome: n % 3 == 0 ? .failed : .ok)
                    ])),
            ]
            for event in events {
                let envelope = EventEnvelope(
                    seq: UInt64(n + 1), instanceID: id, at: Timestamp(millis: Int64(n) * 1_000_003),
                    requestID: n % 3 == 0 ? RequestID(text()) : nil,
                    origin: n % 2 == 0 ? ReportOrigin(executor: ExecutorID(text()), seq: UInt64(n)) : nil, event: event,
                    importedFrom: n % 5 == 0 ? UInt64(n * 7) : nil)
                try agree(envelope, event.typeName)
            }
        }
    }

    @Test func aFloatingPointNumberIsLeftToJSONEncoder() throws {
        let envelope = EventEnvelope(
            seq: 1, instanceID: InstanceID(), at: Timestamp(millis: 1),
            event: .instanceFinished(InstanceFinished(out: ["x": .array([.double(0.1)])])))
        #expect(FastEventEncoder.encode(envelope) == nil)
        // The house encoding still writes it (and reads it back).
        #expect(try EventCodec.decode(EventCodec.encode(envelope)) == envelope)
    }
}
