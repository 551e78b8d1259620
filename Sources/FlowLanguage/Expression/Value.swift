import Foundation
import JSON
import Model

/// A value inside a running flow: what variables hold and expressions produce. Maps keep their
/// insertion order, as the original server's did.
package indirect enum Value: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case list([Value])
    case map(OrderedMap)
    /// A built-in task object (`log`, `sleep`, `resource`, `execution`), usable for method calls.
    case task(String)

    /// Java's `toString` as the original flows saw it; `null` prints as `null`.
    var javaString: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let i): String(i)
        case .double(let d): Value.formatDouble(d)
        case .string(let s): s
        case .list(let items): "[" + items.map(\.javaString).joined(separator: ", ") + "]"
        case .map(let map): "{" + map.keys.map { "\($0)=\(map[$0]!.javaString)" }.joined(separator: ", ") + "}"
        case .task(let name): name
        }
    }

    /// The text a `${}` interpolation inserts: like `javaString`, but `null` is empty.
    var interpolated: String {
        if case .null = self { return "" }
        return javaString
    }

    static func formatDouble(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
        if d == d.rounded(), abs(d) < 1e15 { return String(format: "%.1f", d) }
        return String(d)
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .list: "list"
        case .map: "map"
        case .task(let name): "task '\(name)'"
        }
    }

    /// From a JSON value (arguments arriving from `_main.json`).
    init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let items): self = .list(items.map(Value.init(json:)))
        case .object(let members):
            var map = OrderedMap()
            for key in members.keys.sorted() { map[key] = Value(json: members[key]!) }
            self = .map(map)
        }
    }

    /// To JSON (for `out` variables and the runner protocol).
    package var json: JSONValue {
        switch self {
        case .null: .null
        case .bool(let b): .bool(b)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .string(let s): .string(s)
        case .list(let items): .array(items.map(\.json))
        case .map(let map): .object(Dictionary(uniqueKeysWithValues: map.keys.map { ($0, map[$0]!.json) }))
        case .task(let name): .string(name)
        }
    }
}

/// A string-keyed map that remembers insertion order.
package struct OrderedMap: Sendable, Equatable {
    private(set) var keys: [String] = []
    private var storage: [String: Value] = [:]

    init() {}

    var count: Int { keys.count }

    subscript(key: String) -> Value? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    package static func == (lhs: OrderedMap, rhs: OrderedMap) -> Bool { lhs.storage == rhs.storage }
}

extension OrderedMap: ExpressibleByDictionaryLiteral {
    package init(dictionaryLiteral elements: (String, Value)...) {
        for (key, value) in elements { self[key] = value }
    }
}
