import Foundation
import TestSupport
import Testing

@testable import EventLog
@testable import Model

/// The log on a filesystem that runs out of space: nothing refused is ever acknowledged or read
/// back, appends are refused at once while the fault lasts, and the log recovers when space returns.
@Suite struct DiskFullTests {
    private func drafts(_ count: Int, text: String = "x") -> [EventEnvelope] {
        (0..<count).map { _ in
            event(InstanceID(), .logAppended(LogAppended(lines: [LogLine(at: .now(), level: .info, text: text)])))
        }
    }

    @Test func aFullDiskRefusesThenRecovers() async throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        guard let fs = SmallFilesystem.mount(at: dir, bytes: 4 << 20) else { return }
        defer { fs.unmount() }
        let log = try FileEventLog(directory: dir + "/events")
        try await log.append(drafts(10)).durable()
        let filler = fs.fill(leaving: 2048)

        // Big events until one does not fit: it fails, and so does everything after it.
        var failedAt: UInt64?
        for _ in 0..<20 {
            let ticket = log.append(drafts(1, text: String(repeating: "y", count: 1000)))
            do {
                try await ticket.durable()
            } catch {
                failedAt = ticket.envelopes.first?.seq
                break
            }
        }
        let firstFailed = try #require(failedAt)
        let durableBefore = log.durableHead
        #expect(durableBefore == firstFailed - 1)
        #expect(log.failed != nil)
        let refused = log.append(drafts(1))
        #expect(refused.envelopes.isEmpty)
        await #expect(throws: EventLogError.self) { try await refused.durable() }
        #expect(throws: EventLogError.self) { try log.recover() }

        try FileManager.default.removeItem(atPath: filler)
        try log.recover()
        #expect(log.failed == nil)
        let after = log.append(drafts(2))
        #expect(after.envelopes.map(\.seq) == [firstFailed, firstFailed + 1])
        try await after.durable()
        log.close()

        let reopened = try FileEventLog(directory: dir + "/events")
        var seqs: [UInt64] = []
        var texts: [String] = []
        try reopened.scan { envelope in
            seqs.append(envelope.seq)
            if case .logAppended(let appended) = envelope.event { texts += appended.lines.map(\.text) }
        }
        #expect(seqs == Array(1...(firstFailed + 1)))
        #expect(reopened.recovery.truncatedBytes == 0)
        // The refused event never comes back; the ones that made it before it all do.
        #expect(texts.filter { $0.hasPrefix("y") }.count == Int(firstFailed - 11))
        reopened.close()
    }
}
