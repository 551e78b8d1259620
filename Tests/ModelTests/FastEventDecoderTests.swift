import Foundation
import JSON
import TestSupport
import Testing

@testable import Model

/// The fast decoder agrees with `JSONDecoder` on everything: fixtures, golden files of every
/// version, and generated events with awkward strings and values.
@Suite struct FastEventDecoderTests {
    private func agree(_ data: Data, _ what: String = "") throws {
        let reference = try JSONDecoder().decode(EventEnvelope.self, from: data)
        let fast = try FastEventDecoder.decode(data)
        #expect(fast == reference, "\(what): \(String(decoding: data, as: UTF8.self).prefix(300))")
    }

    @Test func fixturesAndGoldenFilesDecodeTheSame() throws {
        for (offset, envelope) in everyEventType().enumerated() {
            var numbered = envelope
            numbered.seq = UInt64(offset + 1)
            let bytes = try EventCodec.encode(numbered)
            try agree(bytes, envelope.event.typeName)
            // And the fast path itself took it (no fallback) for today's versions.
            let parsed = try #require(JSONNode.parse(bytes))
            #expect(FastEventDecoder.envelope(parsed) == numbered, "\(envelope.event.typeName)")
        }
        let folder = try #require(Bundle.module.resourceURL?.appendingPathComponent("Golden"))
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".json") {
            try agree(try Data(contentsOf: folder.appendingPathComponent(name)), name)
        }
    }

    @Test(arguments: 0..<3)
    func generatedEventsDecodeTheSame(seed: Int) async throws {
        var random = RandomJSON(seed: UInt64(seed) &+ 77, fractions: true)
        for n in 0..<300 {
            await Task.yield()
            let id = InstanceID()
            let events: [Event] = [
                .instanceCreated(
                    InstanceCreated(
                        entryPoint: random.maybe(), arguments: random.object(extra: ["a"]),
                        timeoutMillis: random.flag() ? 5 : nil, out: [random.text()],
                        tags: [random.text(), random.text()], payload: PayloadRef(digest: random.text(), size: n),
                        idempotencyKey: random.maybe(), principal: random.text(), team: random.maybe())),
                .apiKeyCreated(
                    ApiKeyCreated(
                        name: random.text(), team: random.maybe(), admin: random.flag(), hash: random.text(),
                        createdBy: random.maybe())),
                .apiKeyRevoked(ApiKeyRevoked(revokedBy: random.maybe())),
                .historyTrimmed(HistoryTrimmed(before: Timestamp(millis: Int64(n)), retentionMillis: Int64(n) * 7)),
                .logAppended(
                    LogAppended(lines: [LogLine(at: Timestamp(millis: Int64(n)), level: .warn, text: random.text())])),
                .instanceFailed(InstanceFailed(error: random.text(), out: random.object())),
                .stepsRecorded(
                    StepsRecorded(steps: [
                        StepRecord(
                            flow: random.text(), step: random.text(), file: random.text(), line: n,
                            column: n % 2 == 0 ? nil : n, startedAt: Timestamp(millis: 5), durationMicros: Int64(n),
                            outcome: .failed)
                    ])),
            ]
            for event in events {
                let envelope = EventEnvelope(
                    seq: UInt64(n + 1), instanceID: id, at: Timestamp(millis: Int64(n)),
                    requestID: n % 3 == 0 ? RequestID(random.text()) : nil,
                    origin: n % 2 == 0 ? ReportOrigin(executor: ExecutorID(random.text()), seq: UInt64(n)) : nil,
                    event: event, importedFrom: n % 5 == 0 ? UInt64(n * 7) : nil)
                try agree(try EventCodec.encode(envelope), event.typeName)
            }
        }
    }

    @Test func brokenRecordsFailLikeJSONDecoder() {
        for text in [
            #"{"at":1"#, #"{"at":1,"data":{},"instanceId":"x","seq":1,"type":"InstanceStarted","version":1}"#, "[]", "",
            // A key event names its key, not an instance (and the other way round).
            #"{"at":1,"data":{"revokedBy":null},"instanceId":"0d0a817d-4af8-496c-b6ef-3888ad2386ee","seq":1,"type":"ApiKeyRevoked","version":1}"#,
            #"{"at":1,"data":{"executorID":"e"},"keyId":"0d0a817d-4af8-496c-b6ef-3888ad2386ee","seq":1,"type":"InstanceStarted","version":1}"#,
        ] {
            #expect(throws: (any Error).self) { try FastEventDecoder.decode(Data(text.utf8)) }
        }
    }
}

@Suite struct InstanceIDParsingTests {
    @Test func agreesWithFoundationOnValidAndBrokenIDs() {
        var rng = SplitMix(seed: 9)
        for _ in 0..<2000 {
            var text = UUID().uuidString
            if Bool.random(using: &rng) { text = text.lowercased() }
            if Int.random(in: 0..<3, using: &rng) == 0 {
                var chars = Array(text)
                chars[Int.random(in: 0..<chars.count, using: &rng)] =
                    Array("g-0Zz ")[Int.random(in: 0..<6, using: &rng)]
                text = String(chars)
            }
            let canonical =
                text.utf8.count == 36
                && text.enumerated().allSatisfy { index, char in
                    [8, 13, 18, 23].contains(index) ? char == "-" : char.isHexDigit
                }
            // Canonical text parses as Foundation parses it; anything else is refused (Foundation's
            // sscanf would take, say, a sign in place of a digit).
            #expect(InstanceID(text)?.uuid == (canonical ? UUID(uuidString: text) : nil), "\(text)")
        }
        for _ in 0..<2000 {
            let id = InstanceID()
            #expect(id.description == id.uuid.uuidString.lowercased())
            #expect(InstanceID(id.description) == id)
        }
        #expect(InstanceID("") == nil)
        #expect(InstanceID(String(repeating: "a", count: 36)) == nil)
    }
}
