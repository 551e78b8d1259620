import Foundation

extension Data {
    /// The little-endian 32-bit number at `offset`.
    package func loadLE32(at offset: Int) -> UInt32 { UInt32(littleEndian: load(at: offset)) }

    /// The little-endian 64-bit number at `offset`.
    package func loadLE64(at offset: Int) -> UInt64 { UInt64(littleEndian: load(at: offset)) }

    private func load<T: FixedWidthInteger>(at offset: Int) -> T {
        withUnsafeBytes { raw in
            var value: T = 0
            memcpy(&value, raw.baseAddress!.advanced(by: offset), MemoryLayout<T>.size)
            return value
        }
    }
}

extension Array where Element == UInt8 {
    /// The little-endian 32-bit number at `offset`.
    package func loadLE32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }

    /// The little-endian 64-bit number at `offset`.
    package func loadLE64(at offset: Int) -> UInt64 {
        UInt64(loadLE32(at: offset)) | UInt64(loadLE32(at: offset + 4)) << 32
    }
}
