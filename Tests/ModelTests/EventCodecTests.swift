import Foundation
import TestSupport
import Testing

@testable import Model

@Suite struct EventCodecTests {
    @Test func everyEventRoundTrips() throws {
        for (offset, envelope) in everyEventType().enumerated() {
            var numbered = envelope
            numbered.seq = UInt64(offset + 1)
            let decoded = try EventCodec.decode(try EventCodec.encode(numbered))
            #expect(decoded == numbered)
        }
    }

    /// Golden files pin each type's current encoding: a change that breaks reading old logs fails here.
    @Test(arguments: everyEventType().map { ($0.event.typeName, $0.event.version) })
    func goldenFileDecodes(typeName: String, version: Int) throws {
        let name = "\(typeName).v\(version)"
        if let folder = ProcessInfo.processInfo.environment["ACCORD_RECORD_GOLDEN"] {
            // Recording a new version's golden file: ACCORD_RECORD_GOLDEN=<Tests/EventsTests/Golden>.
            var envelope = try #require(everyEventType().first { $0.event.typeName == typeName })
            envelope.seq = 1
            try EventCodec.encode(envelope).write(to: URL(fileURLWithPath: "\(folder)/\(name).json"))
        }
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Golden"))
        let bytes = try Data(contentsOf: url)
        let decoded = try EventCodec.decode(bytes)
        var expected = try #require(everyEventType().first { $0.event.typeName == typeName })
        expected.seq = decoded.seq
        #expect(decoded == expected)
        #expect(decoded.event.typeName == typeName)
        // And today's encoder writes exactly the golden bytes.
        #expect(try EventCodec.encode(decoded) == bytes)
    }

    /// Fields added to a version after it was first written are optional: both codecs write them
    /// alike when set, and read them back.
    @Test func laterOptionalFieldsRoundTripThroughBothCodecs() throws {
        for var envelope in eventsWithLaterFields() {
            envelope.seq = 7
            let reference = try EventCodec.makeEncoder().encode(envelope)
            #expect(FastEventEncoder.encode(envelope).map { Data($0) } == reference)
            #expect(try EventCodec.decode(reference) == envelope)
            #expect(try JSONDecoder().decode(EventEnvelope.self, from: reference) == envelope)
        }
    }

    /// Older versions, kept as they were written, still decode: through their upcasters.
    @Test func olderVersionsAreUpcast() throws {
        let url = try #require(
            Bundle.module.url(forResource: "StepsRecorded.v1", withExtension: "json", subdirectory: "Golden"))
        let decoded = try EventCodec.decode(try Data(contentsOf: url))
        guard case .stepsRecorded(let recorded) = decoded.event else {
            Issue.record("not a StepsRecorded: \(decoded.event)")
            return
        }
        #expect(recorded.steps.map(\.file) == ["processes/main.yml"])
        #expect(recorded.steps.map(\.line) == [2])
        #expect(recorded.steps.map(\.column) == [nil])
        #expect(recorded.steps.first?.location == "processes/main.yml:2")
        let reencoded = String(decoding: try EventCodec.encode(decoded), as: UTF8.self)
        #expect(reencoded.contains(#""version":2"#))
        #expect(reencoded.contains(#""file":"processes/main.yml","flow":"main","line":2,"#))
        #expect(!reencoded.contains("column") && !reencoded.contains("location"))
    }

    @Test func unknownTypeOrVersionIsAnError() {
        let text =
            #"{"at":1,"data":{},"instanceId":"0d0a817d-4af8-496c-b6ef-3888ad2386ee","seq":1,"type":"InstanceCreated","version":99}"#
        #expect(throws: DecodingError.self) { try EventCodec.decode(Data(text.utf8)) }
        let other =
            #"{"at":1,"data":{},"instanceId":"0d0a817d-4af8-496c-b6ef-3888ad2386ee","seq":1,"type":"NoSuchEvent","version":1}"#
        #expect(throws: DecodingError.self) { try EventCodec.decode(Data(other.utf8)) }
    }

    @Test func encodingIsStable() throws {
        let first = try EventCodec.encode(created())
        let second = try EventCodec.encode(created())
        #expect(first == second)
        let text = String(decoding: first, as: UTF8.self)
        #expect(text.hasPrefix(#"{"at":1764380000000,"data":{"arguments":{"n":3,"name":"world"}"#))
    }
}
