import Foundation
import Testing

@testable import Events

@Suite struct EventCodecTests {
    @Test func everyEventRoundTrips() throws {
        for (offset, envelope) in everyEvent().enumerated() {
            var numbered = envelope
            numbered.seq = UInt64(offset + 1)
            let decoded = try EventCodec.decode(try EventCodec.encode(numbered))
            #expect(decoded == numbered)
        }
    }

    /// Golden files pin each (type, version) encoding: a change that breaks reading old logs fails here.
    @Test(arguments: everyEvent().map(\.event.typeName))
    func goldenFileDecodes(typeName: String) throws {
        if let folder = ProcessInfo.processInfo.environment["ACCORD_RECORD_GOLDEN"] {
            // Recording a new version's golden file: ACCORD_RECORD_GOLDEN=<Tests/EventsTests/Golden>.
            var envelope = try #require(everyEvent().first { $0.event.typeName == typeName })
            envelope.seq = 1
            try EventCodec.encode(envelope).write(to: URL(fileURLWithPath: "\(folder)/\(typeName).v1.json"))
        }
        let url = try #require(
            Bundle.module.url(forResource: "\(typeName).v1", withExtension: "json", subdirectory: "Golden"))
        let decoded = try EventCodec.decode(try Data(contentsOf: url))
        var expected = try #require(everyEvent().first { $0.event.typeName == typeName })
        expected.seq = decoded.seq
        #expect(decoded == expected)
        #expect(decoded.event.typeName == typeName)
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
