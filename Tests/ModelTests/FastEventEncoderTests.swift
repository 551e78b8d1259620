import Foundation
import JSON
import TestSupport
import Testing

@testable import Model

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
        for (offset, envelope) in everyEventType().enumerated() {
            var numbered = envelope
            numbered.seq = UInt64(offset + 1)
            try agree(numbered, envelope.event.typeName)
        }
    }

    @Test(arguments: 0..<3)
    func generatedEventsEncodeTheSame(seed: Int) async throws {
        var random = RandomJSON(seed: UInt64(seed) &+ 1234)
        for n in 0..<300 {
            await Task.yield()
            let id = InstanceID()
            let events: [Event] = [
                .instanceCreated(
                    InstanceCreated(
                        entryPoint: random.maybe(), arguments: random.object(extra: ["a", "B"]),
                        timeoutMillis: random.flag() ? Int64(n) * 1000 : nil,
                        out: [random.text(), random.text()], tags: random.flag() ? [] : [random.text(), random.text()],
                        payload: PayloadRef(digest: random.text(), size: n), idempotencyKey: random.maybe(),
                        principal: random.maybe(), team: random.maybe())),
                .apiKeyCreated(
                    ApiKeyCreated(
                        name: random.text(), team: random.maybe(), admin: random.flag(), hash: random.text(),
                        createdBy: random.maybe())),
                .apiKeyRevoked(ApiKeyRevoked(revokedBy: random.maybe())),
                .historyTrimmed(HistoryTrimmed(before: Timestamp(millis: Int64(n)), retentionMillis: Int64(n) * 7)),
                .instanceAssigned(InstanceAssigned(executorID: ExecutorID(random.text()), attempt: n)),
                .instanceStarted(InstanceStarted(executorID: ExecutorID(random.text()))),
                .logAppended(
                    LogAppended(
                        lines: (0..<1 + n % 3).map { _ in
                            LogLine(
                                at: Timestamp(millis: Int64(n) - 5), level: [.debug, .info, .warn, .error][n % 4],
                                text: random.text())
                        })),
                .instanceFinished(InstanceFinished(out: random.object(extra: ["x"]))),
                .instanceFailed(InstanceFailed(error: random.text(), out: random.object())),
                .instanceCancelled(InstanceCancelled(reason: random.text())),
                .instanceTimedOut(InstanceTimedOut(error: random.text())),
                .stepsRecorded(
                    StepsRecorded(steps: [
                        StepRecord(
                            flow: random.text(), step: random.text(), file: random.text(), line: n,
                            column: n % 2 == 0 ? nil : n,
                            startedAt: Timestamp(millis: 5), durationMicros: Int64(n) * 3,
                            outcome: n % 3 == 0 ? .failed : .ok)
                    ])),
            ]
            for event in events {
                let envelope = EventEnvelope(
                    seq: UInt64(n + 1), instanceID: id, at: Timestamp(millis: Int64(n) * 1_000_003),
                    requestID: n % 3 == 0 ? RequestID(random.text()) : nil,
                    origin: n % 2 == 0 ? ReportOrigin(executor: ExecutorID(random.text()), seq: UInt64(n)) : nil,
                    event: event,
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
