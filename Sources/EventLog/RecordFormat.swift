import CZlib
import Foundation
import Support

/// The on-disk format of a log segment, owned here and nowhere else: the writer, the reader, the
/// recovery scan and the verifier all go through it.
///
/// ```
/// segment := header record*
/// header  := "ACCORDLOG1\n" 00 00 00 00 00          (16 bytes; "ACCORDLOG2\n…": rewritten by
///            retention, see below)
/// record  := length:u32 LE | crc:u32 LE | body       (crc = zlib CRC-32 of body; length > 0)
/// body    := one JSON object (an `EventEnvelope`)
/// ```
///
/// A segment holds every number from the one in its name up to the next segment's, in order,
/// except one that retention rewrote (`sparseSegmentHeader`): it holds some of them, still in
/// order, each record's number read from its body. Only sealed segments are rewritten.
///
/// A crash can leave only the last record torn; damage anywhere else is told apart from a torn
/// tail by an intact record after it (`hasIntactRecord`).
package enum RecordFormat {
    /// The first bytes of every segment.
    package static let segmentHeader: [UInt8] = Array("ACCORDLOG1\n\0\0\0\0\0".utf8)
    /// The first bytes of a segment retention rewrote: some numbers of its span are missing.
    package static let sparseSegmentHeader: [UInt8] = Array("ACCORDLOG2\n\0\0\0\0\0".utf8)
    /// A record's length and checksum.
    package static let recordHeaderSize = 8

    /// A record's frame, before its checksum is checked.
    package struct Frame: Sendable, Equatable {
        /// Where the record starts (its header) in the segment.
        package var offset: Int
        /// The body's length.
        package var length: Int
        /// The body's expected CRC-32.
        package var crc: UInt32

        /// Where the body is.
        package var body: Range<Int> {
            (offset + RecordFormat.recordHeaderSize)..<(offset + RecordFormat.recordHeaderSize + length)
        }
        /// Where the next record starts.
        package var end: Int { body.upperBound }
    }

    /// How far a segment's frames could be read.
    package struct Frames {
        /// Every record whose frame is whole, in order (checksums not checked yet).
        package var frames: [Frame]
        /// Where the whole frames end.
        package var end: Int
        /// What is wrong at `end`, if anything is.
        package var problem: String?
    }

    // MARK: - Writing

    /// Appends one record holding `body` to `bytes`.
    package static func append<Body: ContiguousBytes & Collection>(body: Body, to bytes: inout [UInt8])
    where Body.Element == UInt8 {
        let length = UInt32(body.count)
        let crc = body.crc32()
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }
        bytes += body
    }

    /// The bodies of records built by `append` (trusted: this process just wrote them).
    package static func bodies(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var bodies: [ArraySlice<UInt8>] = []
        var position = 0
        while position + recordHeaderSize <= bytes.count {
            let frame = Frame(offset: position, length: Int(bytes.loadLE32(at: position)), crc: 0)
            bodies.append(bytes[frame.body])
            position = frame.end
        }
        return bodies
    }

    /// The offsets, relative to the start of `bytes`, of records built by `append`.
    package static func offsets(_ bytes: [UInt8]) -> [Int] {
        var offsets: [Int] = []
        var position = 0
        while position + recordHeaderSize <= bytes.count {
            offsets.append(position)
            position += recordHeaderSize + Int(bytes.loadLE32(at: position))
        }
        return offsets
    }

    // MARK: - Reading

    /// Whether `data` starts with a segment header, whole or rewritten.
    package static func hasSegmentHeader(_ data: Data) -> Bool {
        data.count >= segmentHeader.count
            && (data.prefix(segmentHeader.count).elementsEqual(segmentHeader) || isSparse(data))
    }

    /// Whether `data` is a segment retention rewrote (its records' numbers are in their bodies).
    package static func isSparse(_ data: Data) -> Bool {
        data.count >= sparseSegmentHeader.count
            && data.prefix(sparseSegmentHeader.count).elementsEqual(sparseSegmentHeader)
    }

    /// The frame of the record at `offset`, if its header and body are within `data`.
    package static func frame(in data: Data, at offset: Int) -> Frame? {
        guard offset + recordHeaderSize <= data.count else { return nil }
        let frame = Frame(offset: offset, length: Int(data.loadLE32(at: offset)), crc: data.loadLE32(at: offset + 4))
        guard frame.length > 0, frame.end <= data.count else { return nil }
        return frame
    }

    /// A segment's frames, read sequentially (lengths and bounds only, so that checksums can be
    /// checked in parallel afterwards). Stops at the first frame that is not whole.
    package static func frames(_ data: Data) -> Frames {
        guard hasSegmentHeader(data) else {
            return Frames(frames: [], end: 0, problem: "missing or damaged segment header")
        }
        var frames: [Frame] = []
        var position = segmentHeader.count
        while position < data.count {
            guard position + recordHeaderSize <= data.count else {
                return Frames(frames: frames, end: position, problem: "a record header is cut short")
            }
            guard let frame = frame(in: data, at: position) else {
                let length = data.loadLE32(at: position)
                return Frames(frames: frames, end: position, problem: "a record of \(length) bytes is cut short")
            }
            frames.append(frame)
            position = frame.end
        }
        return Frames(frames: frames, end: position, problem: nil)
    }

    /// Whether the body of `frame` matches its checksum.
    package static func isIntact(_ frame: Frame, in data: Data) -> Bool {
        data[frame.body].crc32() == frame.crc
    }

    /// A segment's records, checked against their checksums (not decoded: decoding a million
    /// events would make every start slow; a record's sequence number is its place, and `scan`
    /// checks each one it decodes against it). Stops at the first problem: `end` is where the
    /// good records end, `problem` says what is wrong after them, and `intactAfter` whether an
    /// intact record follows the problem (then it is damage, not a write torn by a crash, which
    /// can only be the very end).
    package static func walk(_ data: Data, _ visit: (_ offset: Int, _ body: Data) -> Void = { _, _ in }) -> (
        offsets: [UInt64], end: Int, problem: String?, intactAfter: Bool
    ) {
        let read = frames(data)
        var offsets: [UInt64] = []
        offsets.reserveCapacity(read.frames.count)
        for frame in read.frames {
            guard isIntact(frame, in: data) else {
                return (
                    offsets, frame.offset, "a record's checksum does not match",
                    hasIntactRecord(data, after: frame.offset)
                )
            }
            visit(frame.offset, data.subdata(in: frame.body))
            offsets.append(UInt64(frame.offset))
        }
        guard let problem = read.problem else { return (offsets, read.end, nil, false) }
        return (offsets, read.end, problem, hasIntactRecord(data, after: read.end))
    }

    /// Whether a whole record with a matching checksum starts anywhere after `offset`. Every body
    /// is a JSON object, so only offsets whose body would start with `{` are checksummed.
    package static func hasIntactRecord(_ data: Data, after offset: Int) -> Bool {
        var start = offset + 1
        while start + recordHeaderSize < data.count {
            if data[start + recordHeaderSize] == UInt8(ascii: "{"), let frame = frame(in: data, at: start),
                isIntact(frame, in: data)
            {
                return true
            }
            start += 1
        }
        return false
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
