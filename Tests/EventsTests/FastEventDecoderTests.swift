import Foundation
import TestSupport
import Testing

@testable import Events

/// The fast decoder agrees with `JSONDecoder` on everything: fixtures, golden files of every
/// version, and generated events with awkward strings and values.
@Suite struct FastEventDecoderTests {
    private func agree(_ data: Data, _ what: String = "") throws {
        let reference = try JSONDecoder().decode(EventEnvelope.self, from: data)
        let fast = try FastEventDecoder.decode(data)
        #expect(fast == reference, "\(what): \(String(decoding: data, as: UTF8.self).prefix(300))")
    }

    @Test func fixturesAndGoldenFilesDecodeTheSame() throws {
        for (offset, envelope) in everyEvent().enumerated() {
            var numbered = envelope
            numbered.seq = UInt64(offset + 1)
            let bytes = try EventCodec.encode(numbered)
            try agree(bytes, envelope.event.typeName)
            // And the fast path itself took it (no fallback) for today's versions.
            let parsed = try bytes.withUnsafeBytes { raw in
                var parser = JSONParser(raw.bindMemory(to: UInt8.self))
                return try parser.parseDocument()
            }
            #expect(FastEventDecoder.envelope(parsed) == numbered, "\(envelope.event.typeName)")
        }
        let folder = try #require(Bundle.module.resourceURL?.appendingPathComponent("Golden"))
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".json") {
            try agree(try Data(contentsOf: folder.appendingPathComponent(name)), name)
        }
    }

    @Test(arguments: 0..<3)
    func generatedEventsDecodeTheSame(seed: Int) throws {
        var rng = SplitMix(seed: UInt64(seed) &+ 77)
        let alphabet = Array("aZ09 _-:/\"\\\n\t\u{1}é☃😀{}[],")
        func text() -> String {
            String((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
        }
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 2 ? 5 : 7), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
            case 3: return .double(Double(Int.random(in: -1000...1000, using: &rng)) / 8)
            case 4: return .string(text())
            case 5: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) })
            default:
                return .object(
                    Dictionary((0..<Int.random(in: 0...3, using: &rng)).map { _ in (text(), value(depth + 1)) }) {
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
                        arguments: Dictionary([("a", value(0)), (text(), value(0))]) { first, _ in first },
                        timeoutMillis: Bool.random(using: &rng) ? 5 : nil,
                        out: [text()], tags: [text(), text()], payload: PayloadRef(digest: text(), size: n),
                        idempotencyKey: Bool.random(using: &rng) ? text() : nil, principal: text())),
                .logAppended(
                    LogAppended(lines: [LogLine(at: Timestamp(millis: Int64(n)), level: .warn, text: text())])),
                .instanceFailed(InstanceFailed(error: text(), out: [text(): value(0)])),
                .stepsRecorded(
                    StepsRecorded(steps: [
                        StepRecord(
                            flow: text(), step: text(), file: text(), line: n, column: n % 2 == 0 ? nil : n,
                            startedAt: Timestamp(millis: 5), durationMicros: Int64(n), outcome: .failed)
                    ])),
            ]
            for event in events {
                let envelope = EventEnvelope(
                    seq: UInt64(n + 1), instanceID: id, at: Timestamp(millis: Int64(n)),
                    requestID: n % 3 == 0 ? RequestID(text()) : nil,
                    origin: n % 2 == 0 ? ReportOrigin(executor: ExecutorID(text()), seq: UInt64(n)) : nil, event: event,
                    importedFrom: n % 5 == 0 ? UInt64(n * 7) : nil)
                try agree(try EventCodec.encode(envelope), event.typeName)
            }
        }
    }

    @Test func brokenRecordsFailLikeJSONDecoder() {
        for text in [
            #"{"at":1"#, #"{"at":1,"data":{},"instanceId":"x","seq":1,"type":"InstanceStarted","version":1}"#, "[]", "",
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
