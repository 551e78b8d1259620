import JSON
import Model

/// Random text and JSON values for the tests that hold a hand-written encoder or parser to
/// `Codable`: quotes, backslashes, every control character, non-ASCII text and JSON punctuation in
/// strings and keys, values nested a few levels. Deterministic from its seed.
package struct RandomJSON {
    package var rng: SplitMix
    private let fractions: Bool

    /// The characters strings are drawn from. No `K`, `e` or `y`: a test may add the key `"Key"`
    /// to a random object without a collision.
    package static let characters: [Character] =
        Array("aAzZ09 _-:/\"\\'é☃😀{}[],") + (0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) } + ["\u{7F}"]

    /// `fractions` adds floating-point numbers (which the hand-written encoders leave to `Codable`).
    package init(seed: UInt64, fractions: Bool = false) {
        rng = SplitMix(seed: seed)
        self.fractions = fractions
    }

    package mutating func text(upTo length: Int = 12) -> String {
        String(
            (0..<Int.random(in: 0...length, using: &rng)).map { _ in RandomJSON.characters.randomElement(using: &rng)! }
        )
    }

    package mutating func flag() -> Bool { Bool.random(using: &rng) }

    /// `text()` or nil, as often as not.
    package mutating func maybe() -> String? { flag() ? text() : nil }

    package mutating func value(_ depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth > 2 ? 5 : 7), using: &rng) {
        case 0: return .null
        case 1: return .bool(flag())
        case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
        case 3: return fractions ? .double(Double(Int.random(in: -1000...1000, using: &rng)) / 8) : .string(text())
        case 4: return .string(text())
        case 5: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) })
        default: return .object(object(depth + 1))
        }
    }

    /// Up to four members with random keys, plus `extra` fixed keys (the first of duplicates wins).
    package mutating func object(_ depth: Int = 0, extra: [String] = []) -> [String: JSONValue] {
        var members: [(String, JSONValue)] = []
        for _ in 0..<Int.random(in: 0...4, using: &rng) { members.append((text(), value(depth + 1))) }
        for key in extra { members.append((key, value(depth + 1))) }
        return Dictionary(members) { first, _ in first }
    }
}
