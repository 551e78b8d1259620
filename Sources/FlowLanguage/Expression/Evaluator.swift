import Foundation
import Model

/// What an expression can see: variables, and the built-in tasks it may call.
package protocol EvaluationContext {
    /// The variable's value, or nil when it is not defined (which reads as `null`).
    func variable(_ name: String) -> Value?
    /// Calls `task.method(arguments)`.
    func invoke(task: String, method: String, arguments: [Value]) throws -> Value
}

/// Evaluates expressions with EL's coercions: `null` for missing keys and variables, numbers
/// compared numerically, `+` concatenating when either side is a string.
package enum Evaluator {
    static func evaluate(_ expr: Expr, _ context: some EvaluationContext) throws -> Value {
        switch expr {
        case .literal(let value):
            return value
        case .variable(let name):
            if let value = context.variable(name) { return value }
            if BuiltinTasks.names.contains(name) { return .task(name) }
            return .null
        case .member(let target, let name):
            return property(try evaluate(target, context), name)
        case .index(let target, let index):
            return try subscriptValue(try evaluate(target, context), try evaluate(index, context))
        case .method(let target, let name, let arguments):
            let receiver = try evaluate(target, context)
            let values = try arguments.map { try evaluate($0, context) }
            if case .task(let task) = receiver {
                return try context.invoke(task: task, method: name, arguments: values)
            }
            return try Methods.call(receiver, name, values)
        case .unary(let op, let operand):
            let value = try evaluate(operand, context)
            switch op {
            case .negate:
                switch try number(value, "-") {
                case .int(let i): return .int(-i)
                case .double(let d): return .double(-d)
                default: return .null
                }
            case .not: return .bool(!truthy(value))
            case .empty: return .bool(isEmpty(value))
            }
        case .binary(.and, let left, let right):
            guard truthy(try evaluate(left, context)) else { return .bool(false) }
            return .bool(truthy(try evaluate(right, context)))
        case .binary(.or, let left, let right):
            if truthy(try evaluate(left, context)) { return .bool(true) }
            return .bool(truthy(try evaluate(right, context)))
        case .binary(let op, let left, let right):
            return try binary(op, try evaluate(left, context), try evaluate(right, context))
        case .ternary(let condition, let then, let otherwise):
            return try evaluate(truthy(try evaluate(condition, context)) ? then : otherwise, context)
        case .list(let items):
            return .list(try items.map { try evaluate($0, context) })
        case .map(let pairs):
            var map = OrderedMap()
            for (key, value) in pairs { map[try evaluate(key, context).javaString] = try evaluate(value, context) }
            return .map(map)
        }
    }

    static func property(_ target: Value, _ name: String) -> Value {
        switch target {
        case .map(let map): return map[name] ?? .null
        default: return .null
        }
    }

    static func subscriptValue(_ target: Value, _ index: Value) throws -> Value {
        switch target {
        case .list(let items):
            guard case .int(let i) = try number(index, "[]") else { return .null }
            guard i >= 0, i < items.count else {
                throw ExpressionError(message: "index \(i) is out of bounds for a list of \(items.count)")
            }
            return items[Int(i)]
        case .map(let map): return map[index.javaString] ?? .null
        case .string(let s):
            guard case .int(let i) = try number(index, "[]"), i >= 0, i < s.count else { return .null }
            return .string(String(s[s.index(s.startIndex, offsetBy: Int(i))]))
        default: return .null
        }
    }

    static func truthy(_ value: Value) -> Bool {
        switch value {
        case .bool(let b): b
        case .string(let s): s.lowercased() == "true"
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .null: false
        case .list, .map, .task: true
        }
    }

    static func isEmpty(_ value: Value) -> Bool {
        switch value {
        case .null: true
        case .string(let s): s.isEmpty
        case .list(let items): items.isEmpty
        case .map(let map): map.count == 0
        default: false
        }
    }

    /// EL's numeric coercion: numbers as they are, numeric strings parsed, null as 0.
    static func number(_ value: Value, _ op: String) throws -> Value {
        switch value {
        case .int, .double: return value
        case .null: return .int(0)
        case .bool(let b): return .int(b ? 1 : 0)
        case .string(let s):
            let trimmed = s.trimmingCharacters(in: .whitespaces)
            if let i = Int64(trimmed) { return .int(i) }
            if let d = Double(trimmed) { return .double(d) }
            throw ExpressionError(message: "'\(op)' needs a number, but got the string '\(s)'")
        default:
            throw ExpressionError(message: "'\(op)' needs a number, but got a \(value.typeName)")
        }
    }

    private static func asDouble(_ value: Value) -> Double {
        switch value {
        case .int(let i): Double(i)
        case .double(let d): d
        default: 0
        }
    }

    static func binary(_ op: BinaryOp, _ left: Value, _ right: Value) throws -> Value {
        switch op {
        case .add:
            if case .string = left { return .string(left.interpolated + right.interpolated) }
            if case .string = right { return .string(left.interpolated + right.interpolated) }
            return try arithmetic(op, left, right)
        case .subtract, .multiply, .divide, .modulo:
            return try arithmetic(op, left, right)
        case .equal: return .bool(equals(left, right))
        case .notEqual: return .bool(!equals(left, right))
        case .less, .greater, .lessEqual, .greaterEqual:
            let order = try compare(left, right, op.rawValue)
            switch op {
            case .less: return .bool(order < 0)
            case .greater: return .bool(order > 0)
            case .lessEqual: return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case .and, .or:
            return .bool(op == .and ? truthy(left) && truthy(right) : truthy(left) || truthy(right))
        }
    }

    private static func arithmetic(_ op: BinaryOp, _ left: Value, _ right: Value) throws -> Value {
        let a = try number(left, op.rawValue)
        let b = try number(right, op.rawValue)
        if case .int(let x) = a, case .int(let y) = b, op != .divide {
            switch op {
            case .add: return .int(x &+ y)
            case .subtract: return .int(x &- y)
            case .multiply: return .int(x &* y)
            case .modulo:
                guard y != 0 else { throw ExpressionError(message: "division by zero") }
                return .int(x % y)
            default: break
            }
        }
        let x = asDouble(a)
        let y = asDouble(b)
        switch op {
        case .add: return .double(x + y)
        case .subtract: return .double(x - y)
        case .multiply: return .double(x * y)
        case .divide:
            if y == 0, case .int = a, case .int = b { throw ExpressionError(message: "division by zero") }
            return .double(x / y)
        default: return .double(x.truncatingRemainder(dividingBy: y))
        }
    }

    static func equals(_ left: Value, _ right: Value) -> Bool {
        switch (left, right) {
        case (.null, .null): return true
        case (.null, _), (_, .null): return false
        case (.int(let a), .int(let b)): return a == b
        case (.int, .double), (.double, .int), (.double, .double): return asDouble(left) == asDouble(right)
        case (.int, .string), (.double, .string), (.string, .int), (.string, .double):
            guard let a = try? number(left, "=="), let b = try? number(right, "==") else { return false }
            return asDouble(a) == asDouble(b)
        case (.bool(let a), .string(let s)), (.string(let s), .bool(let a)): return (s.lowercased() == "true") == a
        default: return left == right
        }
    }

    static func compare(_ left: Value, _ right: Value, _ op: String) throws -> Int {
        if case .string(let a) = left, case .string(let b) = right { return a < b ? -1 : (a == b ? 0 : 1) }
        let x = asDouble(try number(left, op))
        let y = asDouble(try number(right, op))
        return x < y ? -1 : (x == y ? 0 : 1)
    }
}
