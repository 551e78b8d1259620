import Foundation
import Model

/// The methods `FLOWS.md` lists on strings, lists and maps.
package enum Methods {
    static func call(_ receiver: Value, _ name: String, _ args: [Value]) throws -> Value {
        switch receiver {
        case .string(let s): return try string(s, name, args)
        case .list(let items): return try list(items, name, args)
        case .map(let map): return try mapMethod(map, name, args)
        case .null:
            throw ExpressionError(message: "cannot call '\(name)' on null (is a variable missing?)")
        default:
            throw ExpressionError(message: "a \(receiver.typeName) has no method '\(name)'")
        }
    }

    private static func arity(_ name: String, _ args: [Value], _ counts: Int...) throws {
        guard counts.contains(args.count) else {
            throw ExpressionError(
                message:
                    "'\(name)' takes \(counts.map(String.init).joined(separator: " or ")) argument(s), got \(args.count)"
            )
        }
    }

    private static func int(_ value: Value, _ name: String) throws -> Int {
        guard case .int(let i) = try Evaluator.number(value, name) else {
            throw ExpressionError(message: "'\(name)' needs a whole number")
        }
        return Int(i)
    }

    private static func string(_ s: String, _ name: String, _ args: [Value]) throws -> Value {
        switch name {
        case "concat":
            try arity(name, args, 1)
            return .string(s + args[0].javaString)
        case "length":
            try arity(name, args, 0)
            return .int(Int64(s.utf16.count))
        case "trim":
            try arity(name, args, 0)
            return .string(s.trimmingCharacters(in: .whitespacesAndNewlines))
        case "toUpperCase":
            try arity(name, args, 0)
            return .string(s.uppercased())
        case "toLowerCase":
            try arity(name, args, 0)
            return .string(s.lowercased())
        case "contains":
            try arity(name, args, 1)
            return .bool(s.contains(args[0].javaString))
        case "startsWith":
            try arity(name, args, 1)
            return .bool(s.hasPrefix(args[0].javaString))
        case "endsWith":
            try arity(name, args, 1)
            return .bool(s.hasSuffix(args[0].javaString))
        case "equals":
            try arity(name, args, 1)
            return .bool(args[0] == .string(s))
        case "isEmpty":
            try arity(name, args, 0)
            return .bool(s.isEmpty)
        case "indexOf":
            try arity(name, args, 1)
            guard let range = s.range(of: args[0].javaString) else { return .int(-1) }
            return .int(Int64(s.distance(from: s.startIndex, to: range.lowerBound)))
        case "substring":
            try arity(name, args, 1, 2)
            let chars = Array(s)
            let start = try int(args[0], name)
            let end = args.count == 2 ? try int(args[1], name) : chars.count
            guard start >= 0, end <= chars.count, start <= end else {
                throw ExpressionError(
                    message: "substring(\(start), \(end)) is out of range for a string of \(chars.count)")
            }
            return .string(String(chars[start..<end]))
        case "replace":
            try arity(name, args, 2)
            return .string(s.replacingOccurrences(of: args[0].javaString, with: args[1].javaString))
        case "split":
            try arity(name, args, 1)
            return .list(try split(s, regex: args[0].javaString).map { .string($0) })
        default:
            throw ExpressionError(message: "a string has no method '\(name)'")
        }
    }

    /// Java's `String.split(regex)`: the separator is a regular expression, and trailing empty
    /// strings are removed.
    static func split(_ s: String, regex pattern: String) throws -> [String] {
        guard !pattern.isEmpty else { return s.map { String($0) } }
        let expression: NSRegularExpression
        do {
            expression = try NSRegularExpression(pattern: pattern)
        } catch {
            throw ExpressionError(message: "split: '\(pattern)' is not a valid regular expression")
        }
        let text = s as NSString
        var parts: [String] = []
        var start = 0
        for match in expression.matches(in: s, range: NSRange(location: 0, length: text.length)) {
            // A zero-width match at the very start does not make an empty first element (Java 8+).
            if match.range.length == 0 && match.range.location == 0 { continue }
            parts.append(text.substring(with: NSRange(location: start, length: match.range.location - start)))
            start = match.range.location + match.range.length
        }
        parts.append(text.substring(from: start))
        while parts.count > 1, parts.last == "" { parts.removeLast() }
        return parts
    }

    private static func list(_ items: [Value], _ name: String, _ args: [Value]) throws -> Value {
        switch name {
        case "size":
            try arity(name, args, 0)
            return .int(Int64(items.count))
        case "get":
            try arity(name, args, 1)
            return try Evaluator.subscriptValue(.list(items), args[0])
        case "contains":
            try arity(name, args, 1)
            return .bool(items.contains { Evaluator.equals($0, args[0]) })
        case "isEmpty":
            try arity(name, args, 0)
            return .bool(items.isEmpty)
        default:
            throw ExpressionError(message: "a list has no method '\(name)'")
        }
    }

    private static func mapMethod(_ map: OrderedMap, _ name: String, _ args: [Value]) throws -> Value {
        switch name {
        case "get":
            try arity(name, args, 1)
            return map[args[0].javaString] ?? .null
        case "containsKey":
            try arity(name, args, 1)
            return .bool(map[args[0].javaString] != nil)
        case "size":
            try arity(name, args, 0)
            return .int(Int64(map.count))
        case "isEmpty":
            try arity(name, args, 0)
            return .bool(map.count == 0)
        case "keySet":
            try arity(name, args, 0)
            return .list(map.keys.map { .string($0) })
        default:
            throw ExpressionError(message: "a map has no method '\(name)'")
        }
    }
}
