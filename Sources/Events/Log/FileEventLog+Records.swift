import CZlib
import Foundation

/// The on-disk record format shared by the writer, the reader and the tooling:
/// `u32 LE length | u32 LE crc32(body) | body`, after a 16-byte segment header (`magic`).
extension FileEventLog {
    static func appendRecord<Body: ContiguousBytes & Collection>(body: Body, to bytes: inout [UInt8])
    where Body.Element == UInt8 {
        let length = UInt32(body.count)
        let crc = body.crc32()
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }
        bytes += body
    }

    /// The bodies of records built by `appendRecord` (trusted: this process just wrote them).
    static func recordBodies(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var bodies: [ArraySlice<UInt8>] = []
        var position = 0
        while position + headerSize <= bytes.count {
            let length = Int(bytes.loadLE32(at: position))
            bodies.append(bytes[(position + headerSize)..<(position + headerSize + length)])
            position += headerSize + length
        }
        return bodies
    }

    /// A segment's records, checked against their checksums (not decoded: decoding a million
    /// events would make every start slow; a record's sequence number is its place, and `scan`
    /// checks each one it decodes against it). Stops at the first problem: `end` is where the
    /// good records end, `problem` says what is wrong after them, and `intactAfter` whether an
    /// intact record follows the problem (then it is damage, not a write torn by a crash, which
    /// can only be the very end).
    package static func walkRecords(_ data: Data, _ visit: (_ offset: Int, _ body: Data) -> Void = { _, _ in }) -> (
        offsets: [UInt64], end: Int, problem: String?, intactAfter: Bool
    ) {
        var offsets: [UInt64] = []
        var position = magic.count
        guard data.count >= position, data.prefix(position).elementsEqual(magic) else {
            return ([], 0, "missing or damaged segment header", hasIntactRecord(data, after: 0))
        }
        func stop(_ problem: String) -> ([UInt64], Int, String?, Bool) {
            (offsets, position, problem, hasIntactRecord(data, after: position))
        }
        while position < data.count {
            guard position + headerSize <= data.count else { return stop("a record header is cut short") }
            let length = Int(data.loadLE32(at: position))
            let crc = data.loadLE32(at: position + 4)
            guard length > 0, position + 8 + length <= data.count else {
                return stop("a record of \(length) bytes is cut short")
            }
            let body = data.subdata(in: (position + 8)..<(position + 8 + length))
            guard body.crc32() == crc else { return stop("a record's checksum does not match") }
            visit(position, body)
            offsets.append(UInt64(position))
            position += 8 + length
        }
        return (offsets, position, nil, false)
    }

    /// Whether a whole record with a matching checksum starts anywhere after `offset`. Every
    /// event's JSON starts `{"at":`, which keeps the search cheap.
    static func hasIntactRecord(_ data: Data, after offset: Int) -> Bool {
        let prefix = Array(#"{"at":"#.utf8)
        return data.withUnsafeBytes { raw -> Bool in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = offset + 1
            while start + headerSize + prefix.count <= bytes.count {
                let body = start + headerSize
                if bytes[body] == prefix[0], bytes[body + 1] == prefix[1],
                    (0..<prefix.count).allSatisfy({ bytes[body + $0] == prefix[$0] })
                {
                    let length = Int(
                        UInt32(bytes[start]) | UInt32(bytes[start + 1]) << 8 | UInt32(bytes[start + 2]) << 16
                            | UInt32(bytes[start + 3]) << 24)
                    let crc =
                        UInt32(bytes[start + 4]) | UInt32(bytes[start + 5]) << 8 | UInt32(bytes[start + 6]) << 16
                        | UInt32(bytes[start + 7]) << 24
                    if length > 0, body + length <= bytes.count,
                        UInt32(CZlib.crc32(0, bytes.baseAddress! + body, uInt(length))) == crc
                    {
                        return true
                    }
                }
                start += 1
            }
            return false
        }
    }
}

extension Data {
    func loadLE32(at offset: Int) -> UInt32 {
        withUnsafeBytes { raw in
            let base = raw.baseAddress!.advanced(by: offset)
            var value: UInt32 = 0
            memcpy(&value, base, 4)
            return UInt32(littleEndian: value)
        }
    }

}

extension ContiguousBytes {
    /// zlib's CRC-32 of these bytes.
    package func crc32() -> UInt32 {
        withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            UInt32(CZlib.crc32(0, raw.bindMemory(to: Bytef.self).baseAddress, uInt(raw.count)))
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
