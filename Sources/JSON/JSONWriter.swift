/// JSON text written as `JSONEncoder` with the house settings writes it (sorted keys, slashes
/// unescaped), for the hand-written encoders of the hot messages. Commas between members are placed
/// by `key`; the caller writes each object's keys in their sorted order. Everything that can fail
/// (a floating-point number, which only `JSONEncoder` is trusted to print) answers false.
package struct JSONWriter {
    package var bytes: [UInt8] = []
    /// Whether the object being written has a member yet (one flag per open object).
    private var hasMember: [Bool] = []

    package init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    // MARK: - Members

    /// `"name":"value"`; nothing when nil (as `encodeIfPresent` writes nothing).
    package mutating func field(_ name: String, _ value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    /// `"name":value`; nothing when nil.
    package mutating func field(_ name: String, _ value: Int64?) {
        guard let value else { return }
        key(name)
        bytes += value.description.utf8
    }

    package mutating func field(_ name: String, _ value: UInt64) {
        key(name)
        bytes += value.description.utf8
    }

    package mutating func field(_ name: String, _ value: Bool) {
        key(name)
        bytes += (value ? "true" : "false").utf8
    }

    package mutating func field(_ name: String, strings: [String]) {
        key(name)
        array(strings) { $0.string($1) }
    }

    /// `"name":{...}` with the members sorted, as `.sortedKeys` sorts them.
    package mutating func field(_ name: String, object members: [String: JSONValue]) -> Bool {
        key(name)
        return object(members)
    }

    /// `"name":{...}` with what `body` writes inside.
    @discardableResult
    package mutating func nested(_ name: String, _ body: (inout JSONWriter) -> Bool = { _ in true }) -> Bool {
        key(name)
        return object(body)
    }

    /// `{"case":{"_0":value}}` as `Codable` writes an enum case with one unlabeled value, which
    /// `value` writes.
    package mutating func unlabeledCase(_ name: String, _ value: (inout JSONWriter) -> Bool) -> Bool {
        object {
            $0.nested(name) {
                $0.key("_0")
                return value(&$0)
            }
        }
    }

    // MARK: - Values

    /// `{...}` with what `body` writes inside.
    package mutating func object(_ body: (inout JSONWriter) -> Bool) -> Bool {
        bytes.append(UInt8(ascii: "{"))
        hasMember.append(false)
        guard body(&self) else { return false }
        bytes.append(UInt8(ascii: "}"))
        hasMember.removeLast()
        return true
    }

    /// `[...]`, one element per item.
    @discardableResult
    package mutating func array<Items: Collection>(
        _ items: Items, _ element: (inout JSONWriter, Items.Element) -> Bool
    ) -> Bool {
        bytes.append(UInt8(ascii: "["))
        for (index, item) in items.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard element(&self, item) else { return false }
        }
        bytes.append(UInt8(ascii: "]"))
        return true
    }

    /// An array whose elements cannot fail.
    package mutating func array<Items: Collection>(_ items: Items, _ element: (inout JSONWriter, Items.Element) -> Void)
    {
        array(items) { writer, item -> Bool in
            element(&writer, item)
            return true
        }
    }

    /// Members sorted by the UTF-8 bytes of their keys, as `.sortedKeys` sorts them.
    package mutating func object(_ members: [String: JSONValue]) -> Bool {
        object { writer in
            for name in members.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                writer.key(name)
                guard writer.value(members[name]!) else { return false }
            }
            return true
        }
    }

    package mutating func value(_ value: JSONValue) -> Bool {
        switch value {
        case .null: bytes += "null".utf8
        case .bool(let flag): bytes += (flag ? "true" : "false").utf8
        case .int(let number): bytes += number.description.utf8
        case .double: return false
        case .string(let text): string(text)
        case .array(let items): return array(items) { $0.value($1) }
        case .object(let members): return object(members)
        }
        return true
    }

    /// Escapes as `JSONEncoder` does with `.withoutEscapingSlashes`: quote, backslash, the named
    /// control characters, other control characters as `\u00xx`; everything else as is.
    package mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0A: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0x00..<0x20:
                bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")]
                Hex.append(byte, to: &bytes)
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `"name":`, for a member whose value the caller writes next (an array, say).
    package mutating func key(_ name: String) {
        if hasMember[hasMember.count - 1] { bytes.append(UInt8(ascii: ",")) }
        hasMember[hasMember.count - 1] = true
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }
}
