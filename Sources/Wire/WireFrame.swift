import Foundation
import Model

/// The one framing every nng message uses: `"A" | version | u32 BE header length | header JSON |
/// attachment bytes`. The header is a Codable message; the attachment carries bulk bytes (a ZIP)
/// without base64. A peer that speaks another version gets a clear error, not a misread.
package enum WireFrame {
    /// The protocol version this build speaks.
    package static let version: UInt8 = 1

    /// Frames `message` with an optional attachment.
    package static func encode(_ message: some Encodable, attachment: [UInt8] = []) throws -> [UInt8] {
        if let fast = (message as? any FastWireEncodable)?.fastHeader {
            return frame(header: fast, attachment: attachment)
        }
        return frame(header: Array(try EventCodec.makeEncoder().encode(message)), attachment: attachment)
    }

    /// Frames a header that is already JSON (built from bytes encoded once, such as the log's).
    package static func frame(header: [UInt8], attachment: [UInt8] = []) -> [UInt8] {
        var bytes: [UInt8] = [0x41, version]
        bytes.reserveCapacity(6 + header.count + attachment.count)
        let length = UInt32(header.count)
        bytes += [UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)]
        bytes += header
        bytes += attachment
        return bytes
    }

    /// The header and attachment of a frame, unparsed.
    ///
    /// - Throws: `WireError` for a short frame or another protocol version.
    package static func split(_ bytes: [UInt8]) throws -> (header: ArraySlice<UInt8>, attachment: ArraySlice<UInt8>) {
        guard bytes.count >= 6, bytes[0] == 0x41 else { throw WireError("not an Accord wire frame") }
        guard bytes[1] == version else {
            throw WireError("peer speaks wire version \(bytes[1]); this build speaks \(version)")
        }
        let length = Int(bytes[2]) << 24 | Int(bytes[3]) << 16 | Int(bytes[4]) << 8 | Int(bytes[5])
        guard 6 + length <= bytes.count else { throw WireError("frame header is cut short") }
        return (bytes[6..<(6 + length)], bytes[(6 + length)...])
    }

    /// Reads a frame back.
    ///
    /// - Throws: `WireError` for a short frame, another protocol version or a header that does not decode.
    package static func decode<Message: Decodable>(
        _ type: Message.Type, from bytes: [UInt8]
    ) throws -> (message: Message, attachment: ArraySlice<UInt8>) {
        let (raw, attachment) = try split(bytes)
        if let fast = (Message.self as? any FastWireDecodable.Type)?.fastDecode(raw) as? Message {
            return (fast, attachment)
        }
        do {
            let message = try JSONDecoder().decode(Message.self, from: Data(raw))
            return (message, attachment)
        } catch {
            throw WireError("frame does not decode as \(Message.self): \(error)")
        }
    }
}

/// A message that could not be framed or read.
package struct WireError: Error, CustomStringConvertible {
    /// What went wrong.
    package var description: String

    package init(_ description: String) { self.description = description }
}
