import Foundation
import TestSupport
import Testing

@testable import Archive

@Suite struct ZipArchiveTests {
    private func hello() -> ZipBuilder {
        var zip = ZipBuilder()
        zip.add("_main.json", #"{"entryPoint": "main"}"#)
        zip.add("processes/main.yml", "main:\n- log: hi\n", deflate: false)
        return zip
    }

    private func reason(_ bytes: [UInt8], limits: ZipLimits = ZipLimits()) -> ZipError? {
        do {
            let archive = try ZipArchive(bytes: bytes, limits: limits)
            try archive.verifyAll()
            return nil
        } catch {
            return error as? ZipError
        }
    }

    @Test func readsStoredAndDeflatedEntries() throws {
        let archive = try ZipArchive(bytes: hello().build())
        #expect(archive.entries.map(\.path) == ["_main.json", "processes/main.yml"])
        #expect(
            String(decoding: try archive.contents(of: archive.entry("_main.json")!), as: UTF8.self)
                == #"{"entryPoint": "main"}"#)
        #expect(
            String(decoding: try archive.contents(of: archive.entry("processes/main.yml")!), as: UTF8.self)
                == "main:\n- log: hi\n")
    }

    @Test(arguments: [
        [UInt8](), Array("not a zip at all, just text".utf8), [0x50, 0x4B, 0x03, 0x04, 0x20],
        [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3],
    ])
    func nonZipBodiesAreRefused(bytes: [UInt8]) {
        guard case .notZip = reason(bytes) else {
            Issue.record("expected notZip, got \(String(describing: reason(bytes)))")
            return
        }
    }

    @Test(arguments: [
        "../evil.txt", "processes/../../evil.txt", "a/../../b", "/etc/passwd", "/processes/x.yml", "C:/windows/x",
        "..\\evil",
    ])
    func escapingOrAbsolutePathsAreRefused(name: String) {
        var zip = hello()
        zip.add(name, "evil")
        guard case .unsafeEntry = reason(zip.build()) else {
            Issue.record("\(name): expected unsafeEntry, got \(String(describing: reason(zip.build())))")
            return
        }
    }

    @Test func symlinksAndEncryptedEntriesAreRefused() {
        var link = hello()
        link.entries.append(.init(name: "processes/link", data: Array("/etc/passwd".utf8), unixMode: 0o120777))
        guard case .unsafeEntry(let message) = reason(link.build()), message.contains("link") else {
            Issue.record("symlink accepted")
            return
        }
        var encrypted = hello()
        encrypted.entries.append(.init(name: "secret.bin", data: [1, 2, 3], flags: 1))
        guard case .unsafeEntry(let text) = reason(encrypted.build()), text.contains("encrypted") else {
            Issue.record("encrypted entry accepted")
            return
        }
    }

    /// A header that claims far more than it holds costs nothing: the declared total is over the
    /// limit before a byte is inflated.
    @Test func declaredSizesOverTheLimitAreTooLarge() {
        var zip = hello()
        zip.entries.append(.init(name: "bomb.bin", data: Array("small".utf8), deflate: true, declaredSize: 300 << 20))
        #expect(reason(zip.build())?.isTooLarge == true)
    }

    /// A header that lies low: inflating stops at the declared size and refuses the entry.
    @Test func entriesLargerThanDeclaredAreRefused() {
        var zip = hello()
        zip.entries.append(
            .init(name: "liar.bin", data: [UInt8](repeating: 7, count: 100_000), deflate: true, declaredSize: 10))
        guard case .corrupt(let message) = reason(zip.build()), message.contains("more bytes") else {
            Issue.record("expected a corrupt entry, got \(String(describing: reason(zip.build())))")
            return
        }
    }

    /// A real bomb (highly compressible, honest headers) is stopped by the unpacked-size limit.
    @Test func compressedBombsHitTheUnpackedLimit() {
        var zip = hello()
        zip.entries.append(.init(name: "zeros.bin", data: [UInt8](repeating: 0, count: 4 << 20), deflate: true))
        let bytes = zip.build()
        #expect(bytes.count < 100_000)
        #expect(reason(bytes, limits: ZipLimits(maxEntries: 100, maxUnpackedBytes: 1 << 20))?.isTooLarge == true)
        #expect(reason(bytes) == nil)
    }

    @Test func entryCountIsLimited() {
        var zip = hello()
        for i in 0..<20 { zip.add("many/\(i)", "x", deflate: false) }
        #expect(reason(zip.build(), limits: ZipLimits(maxEntries: 10, maxUnpackedBytes: 1 << 20))?.isTooLarge == true)
        #expect(reason(zip.build(), limits: ZipLimits(maxEntries: 30, maxUnpackedBytes: 1 << 20)) == nil)
    }

    @Test func badChecksumsAndTruncationAreCorrupt() {
        var zip = hello()
        zip.entries.append(.init(name: "data.txt", data: Array("payload".utf8), crc: 12345))
        guard case .corrupt = reason(zip.build()) else {
            Issue.record("CRC mismatch accepted")
            return
        }
        let bytes = hello().build()
        #expect(reason(Array(bytes.prefix(bytes.count - 30))) != nil)
    }

    @Test func extractsIntoAFolder() throws {
        let dir = NSTemporaryDirectory() + "accord-zip-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var zip = hello()
        zip.add("deep/er/file.txt", "content")
        try ZipArchive(bytes: zip.build()).extract(to: dir)
        #expect(FileManager.default.contents(atPath: dir + "/deep/er/file.txt") == Data("content".utf8))
        #expect(FileManager.default.fileExists(atPath: dir + "/processes/main.yml"))
    }

    /// Seeded random mutations of a valid archive never crash or hang the reader.
    @Test func mutatedArchivesNeverCrash() {
        let base = hello().build()
        var state: UInt64 = 0x5EED
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<(1 + next() % 4) { bytes[next() % bytes.count] = UInt8(truncatingIfNeeded: next()) }
            if next() % 5 == 0 { bytes = Array(bytes.prefix(next() % bytes.count)) }
            _ = reason(bytes, limits: ZipLimits(maxEntries: 50, maxUnpackedBytes: 1 << 20))
        }
    }
}
