import Crypto
import Foundation
import JSON
import Model
import Wire

/// The accepted API keys, held only as SHA-256 digests. A presented key is hashed and compared with
/// every digest in constant time; keys are never logged.
struct APIKeys: Sendable {
    private let digests: [[UInt8]]

    /// Reads `file` (one key, or `sha256:<hex>`, per line; `#` comments) plus extra raw keys.
    init(file: String, extra: [String]) throws {
        var digests: [[UInt8]] = extra.map(APIKeys.digest)
        if let data = FileManager.default.contents(atPath: file) {
            for raw in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                if line.hasPrefix("sha256:"), let bytes = APIKeys.hex(String(line.dropFirst(7))), bytes.count == 32 {
                    digests.append(bytes)
                } else {
                    digests.append(APIKeys.digest(line))
                }
            }
        }
        self.digests = digests
    }

    var isEmpty: Bool { digests.isEmpty }

    /// The principal (a short, non-secret fingerprint) of a valid key, given its `digest`, or nil.
    func authenticate(digest presented: [UInt8]) -> String? {
        var match: [UInt8]?
        for digest in digests {
            var difference: UInt8 = 0
            for (a, b) in zip(digest, presented) { difference |= a ^ b }
            if difference == 0 { match = digest }
        }
        return match.map { Hex.encode($0.prefix(8)) }
    }

    static func digest(_ key: String) -> [UInt8] { Array(SHA256.hash(data: Data(key.utf8))) }

    private static func hex(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var iterator = text.makeIterator()
        while let high = iterator.next() {
            guard let low = iterator.next(), let value = UInt8(String([high, low]), radix: 16) else { return nil }
            bytes.append(value)
        }
        return bytes
    }
}
