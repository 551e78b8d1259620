import Foundation
import Model
import ReadModels
import Testing

@testable import Gateway

/// The log read model: interleaved appends of many instances into one file, read back whole and
/// by any byte range, each instance seeing exactly its own text.
@Suite struct LogStoreTests {
    @Test func everyRangeOfEveryInstanceReadsBackItsOwnText() throws {
        let directory = NSTemporaryDirectory() + "accord-logstore-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try LogStore(path: directory + "/logs.dat")
        let ids = [InstanceID(), InstanceID(), InstanceID()]
        var expected: [InstanceID: [UInt8]] = [:]
        var random = SystemRandomNumberGenerator()
        for round in 0..<40 {
            let id = ids[Int.random(in: 0..<(round < 30 ? 2 : 3), using: &random)]
            let lines = (0..<Int.random(in: 1...3, using: &random)).map { n in
                LogLine(at: Timestamp(millis: Int64(round)), level: .info, text: "round \(round) line \(n) of \(id)")
            }
            store.append(id, lines)
            expected[id, default: []] += Array(LogRendering.render(lines).utf8)
        }
        store.append(ids[0], [])
        #expect(store.size(InstanceID()) == 0)
        #expect(store.read(InstanceID(), from: 0, to: 10) == [])
        for id in ids {
            let text = expected[id] ?? []
            #expect(store.size(id) == text.count)
            #expect(store.read(id, from: 0, to: text.count) == text)
            for _ in 0..<300 {
                let start = Int.random(in: 0...text.count, using: &random)
                let end = Int.random(in: start...text.count, using: &random)
                #expect(store.read(id, from: start, to: end) == Array(text[start..<end]), "\(start)..<\(end)")
            }
            #expect(store.read(id, from: 5, to: 5) == [])
        }
    }

    /// The ranges retention releases: consecutive pieces join as they are added (ten million
    /// removed logs in a few entries), and the holes punched cover each byte once, joined across
    /// pieces that touch or overlap, never beyond them.
    @Test func releasedRangesJoinAndCoverExactlyTheirPieces() {
        var ranges = ByteRanges()
        for n in 0..<100_000 { ranges.add(LogChunk(offset: UInt64(n) * 10, length: 10)) }
        #expect(ranges.ranges.count == 1)
        ranges.add([
            LogChunk(offset: 5_000_000, length: 4), LogChunk(offset: 2_000_000, length: 0),
            LogChunk(offset: 4_999_998, length: 4), LogChunk(offset: 1_000_000, length: 7),
        ])
        #expect(ranges.ranges.count == 4)
        let merged = ranges.merged()
        #expect(merged.map(\.start) == [0, 4_999_998])
        #expect(merged.map(\.end) == [1_000_007, 5_000_004])
    }
}
