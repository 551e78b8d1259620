import Foundation
import JSON

/// The identity of one process instance: a UUID, printed in lower case.
package struct InstanceID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The underlying UUID.
    package let uuid: UUID

    /// A new random id.
    package init() { self.uuid = UUID() }

    /// Wraps an existing UUID.
    package init(_ uuid: UUID) { self.uuid = uuid }

    /// Parses the canonical 36-character form (either case); `nil` for anything else. By hand:
    /// `UUID(uuidString:)` goes through `sscanf`, which dominated reading the log.
    package init?(_ text: some StringProtocol) {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let parsed =
            text.utf8.withContiguousStorageIfAvailable { InstanceID.parse($0, into: &bytes) }
            ?? InstanceID.parse(Array(text.utf8), into: &bytes)
        guard parsed else { return nil }
        self.uuid = UUID(uuid: bytes)
    }

    private static func parse(_ chars: some Collection<UInt8>, into bytes: inout uuid_t) -> Bool {
        guard chars.count == 36 else { return false }
        var out = [UInt8](repeating: 0, count: 16)
        var nibble = 0
        for (index, char) in chars.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard char == UInt8(ascii: "-") else { return false }
                continue
            }
            let value: UInt8
            switch char {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = char - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = char - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = char - UInt8(ascii: "A") + 10
            default: return false
            }
            out[nibble / 2] |= nibble % 2 == 0 ? value << 4 : value
            nibble += 1
        }
        bytes = (
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], out[8], out[9], out[10], out[11], out[12],
            out[13], out[14], out[15]
        )
        return true
    }

    /// By hand as well: `uuidString.lowercased()` took eight times as long, and ids are printed
    /// for every event encoded, every log file and every answer.
    package var description: String {
        var text: [UInt8] = []
        text.reserveCapacity(36)
        withUnsafeBytes(of: uuid.uuid) { raw in
            for (index, byte) in raw.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
                Hex.append(byte, to: &text)
            }
        }
        return String(decoding: text, as: UTF8.self)
    }

    package static func < (lhs: InstanceID, rhs: InstanceID) -> Bool { lhs.description < rhs.description }
}

extension InstanceID: Codable {
    package init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = InstanceID(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "not a UUID: \(text)"))
        }
        self = id
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The identity of one API key: a UUID like an instance's, and the id of its events' stream.
package typealias KeyID = InstanceID

/// Identifiers as dictionary keys encode as JSON object keys (not as arrays of alternating keys
/// and values): snapshots of the Scheduler's state are smaller and decode faster.
package struct IdentifierCodingKey: CodingKey {
    package let stringValue: String
    package var intValue: Int? { nil }
    package init(_ stringValue: String) { self.stringValue = stringValue }
    package init?(stringValue: String) { self.stringValue = stringValue }
    package init?(intValue: Int) { nil }
}

extension InstanceID: CodingKeyRepresentable {
    package var codingKey: any CodingKey { IdentifierCodingKey(description) }
    package init?<T: CodingKey>(codingKey: T) { self.init(codingKey.stringValue) }
}

/// An identifier that is a plain string on the wire and in logs.
package protocol StringIdentifier: Hashable, Sendable, Codable, CodingKeyRepresentable, CustomStringConvertible {
    /// The printable form.
    var rawValue: String { get }
    /// Wraps a printable id.
    init(_ rawValue: String)
}

extension StringIdentifier {
    package var description: String { rawValue }

    package var codingKey: any CodingKey { IdentifierCodingKey(rawValue) }

    package init?<T: CodingKey>(codingKey: T) { self.init(codingKey.stringValue) }

    package init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The identity of one executor process for one boot: `<name>/<boot>`, so that a restarted executor
/// is a new peer and its report sequence numbers start afresh.
package struct ExecutorID: StringIdentifier {
    package let rawValue: String

    package init(_ rawValue: String) { self.rawValue = rawValue }
}

/// A request's correlation id, carried from the Gateway into the events it causes.
package struct RequestID: StringIdentifier {
    package let rawValue: String

    package init(_ rawValue: String) { self.rawValue = rawValue }

    /// A new random id.
    package static func random() -> RequestID {
        var generator = SystemRandomNumberGenerator()
        let bits = generator.next() as UInt64
        // 13 lowercase hex digits, the length the ids have always had in logs.
        return RequestID(String(Hex.encode(withUnsafeBytes(of: bits.bigEndian) { Array($0) }).prefix(13)))
    }
}
