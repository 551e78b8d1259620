import Foundation
import JSON
import Model
import TestSupport
import Testing

@testable import ReadModels

/// The views a Gateway writes to its store, by hand: the bytes `JSONEncoder` writes (house
/// settings), read back by `JSONDecoder` as the same view, for every kind of view.
@Suite struct InstanceViewJSONTests {
    @Test(arguments: 0..<3)
    func viewsMatchCodableBothWays(seed: Int) async throws {
        var random = RandomJSON(seed: UInt64(seed) &+ 31)
        let encoder = EventCodec.makeEncoder()
        let statuses = InstanceStatus.allCases
        for n in 0..<300 {
            await Task.yield()
            var view = InstanceView(
                id: InstanceID(), status: statuses[n % statuses.count], createdAt: Timestamp(millis: Int64(n) * 1000),
                lastChangeAt: Timestamp(millis: Int64(n) * 1000 + 7), tags: n % 3 == 0 ? [] : [random.text(), "a/b"],
                team: n % 2 == 0 ? nil : random.text(), out: n % 4 == 0 ? nil : random.object(extra: ["Key"]),
                error: n % 5 == 0 ? random.text() : nil,
                history: (0..<(n % 4)).map {
                    HistoryEntry(status: statuses[$0], at: Timestamp(millis: Int64($0)), reason: random.text())
                })
            view.eventSeqs = (0..<UInt64(n % 6)).map { $0 * 3 + 1 }
            view.parentInstanceId = n % 7 == 0 ? InstanceID() : nil
            let fast = try #require(view.fastJSON)
            #expect(fast == Array(try encoder.encode(view)), "\(String(decoding: fast, as: UTF8.self))")
            #expect(try JSONDecoder().decode(InstanceView.self, from: Data(fast)) == view)
        }
        var withFraction = InstanceView(
            id: InstanceID(), status: .finished, createdAt: Timestamp(millis: 1), lastChangeAt: Timestamp(millis: 2),
            tags: [], out: ["x": .double(0.5)], history: [])
        #expect(withFraction.fastJSON == nil)
        withFraction.out = nil
        withFraction.attachments = AttachmentsStored(archive: PayloadRef(digest: "d", size: 1), files: [])
        #expect(withFraction.fastJSON == nil)
    }
}
