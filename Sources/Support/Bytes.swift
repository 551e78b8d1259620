import Foundation

extension Data {
    /// The little-endian 32-bit number at `offset`.
    package func loadLE32(at offset: Int) -> UInt32 {
        withUnsafeBytes { raw in
            let base = raw.baseAddress!.advanced(by: offset)
            var value: UInt32 = 0
            memcpy(&value, base, 4)
            return UInt32(littleEndian: value)
        }
    }
}

extension Array where Element == UInt8 {
    /// The little-endian 32-bit number at `offset`.
    package func loadLE32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }
}
