import Model
import TestSupport
import Testing

@testable import Wire

@Suite struct WireFrameTests {
    @Test func messageAndAttachmentRoundTrip() throws {
        let payload: [UInt8] = [0x50, 0x4B, 0x03, 0x04, 0, 1, 2, 255]
        let frame = try WireFrame.encode(SchedulerRequest.catchUp(after: 7, limit: 100), attachment: payload)
        let (message, attachment) = try WireFrame.decode(SchedulerRequest.self, from: frame)
        guard case .catchUp(let after, let limit) = message else {
            Issue.record("decoded \(message)")
            return
        }
        #expect(after == 7 && limit == 100)
        #expect(Array(attachment) == payload)
    }

    @Test func anotherVersionIsRefused() throws {
        var frame = try WireFrame.encode(SchedulerRequest.ping)
        frame[1] = 99
        #expect(throws: WireError.self) { try WireFrame.decode(SchedulerRequest.self, from: frame) }
    }

    @Test func shortOrForeignFramesAreRefused() {
        #expect(throws: WireError.self) { try WireFrame.decode(SchedulerRequest.self, from: [0x41]) }
        #expect(throws: WireError.self) { try WireFrame.decode(SchedulerRequest.self, from: [0x42, 1, 0, 0, 0, 0]) }
        #expect(throws: WireError.self) { try WireFrame.decode(SchedulerRequest.self, from: [0x41, 1, 0, 0, 0, 9, 1]) }
    }
}
