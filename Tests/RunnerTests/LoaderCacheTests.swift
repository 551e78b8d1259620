import Archive
import Foundation
import TestSupport
import Testing

@testable import FlowLanguage
@testable import Runner

@Suite struct LoaderCacheTests {
    private func loader(_ flow: String) throws -> PayloadLoader {
        try PayloadLoader(archive: ZipArchive(bytes: ZipBuilder.payload(flow)))
    }

    @Test func theSameBytesAreCompiledOnceAndOthersAreNot() throws {
        var cache = LoaderCache()
        var compiled = 0
        let first = ZipBuilder.payload("main:\n- log: one\n")
        let second = ZipBuilder.payload("main:\n- log: two\n")
        for payload in [first, second, first, second, first] {
            _ = try cache.load(payload) {
                compiled += 1
                return try PayloadLoader(archive: ZipArchive(bytes: payload))
            }
        }
        #expect(compiled == 2)
        // A different payload with the same length is not taken for a cached one.
        var altered = first
        altered[altered.count / 2] ^= 0x01
        _ = try? cache.load(altered) {
            compiled += 1
            return try loader("main:\n- log: x\n")
        }
        #expect(compiled == 3)
    }

    @Test func failuresAreNotKeptAndTheOldestGoesFirst() throws {
        var cache = LoaderCache()
        var compiled = 0
        let broken = Array("not a zip".utf8)
        for _ in 0..<2 {
            #expect(throws: (any Error).self) {
                try cache.load(broken) {
                    compiled += 1
                    throw ZipError.notZip("no")
                }
            }
        }
        #expect(compiled == 2)
        let payloads = (0...LoaderCache.capacity).map { ZipBuilder.payload("main:\n- log: \($0)\n") }
        for payload in payloads {
            _ = try cache.load(payload) {
                compiled += 1
                return try loader("main:\n- log: x\n")
            }
        }
        #expect(compiled == 2 + payloads.count)
        _ = try cache.load(payloads[0]) {
            compiled += 1
            return try loader("main:\n- log: x\n")
        }
        #expect(compiled == 3 + payloads.count, "the oldest of capacity + 1 payloads should have been dropped")
    }
}
