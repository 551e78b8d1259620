import Model

/// A parsed `${...}` expression.
package indirect enum Expr: Sendable {
    case literal(Value)
    case variable(String)
    case member(Expr, String)
    case index(Expr, Expr)
    case method(Expr, String, [Expr])
    case unary(UnaryOp, Expr)
    case binary(BinaryOp, Expr, Expr)
    case ternary(Expr, Expr, Expr)
    case list([Expr])
    case map([(Expr, Expr)])
}

package enum UnaryOp: Sendable { case negate, not, empty }

package enum BinaryOp: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", modulo = "%"
    case equal = "==", notEqual = "!=", less = "<", greater = ">", lessEqual = "<=", greaterEqual = ">="
    case and = "&&", or = "||"
}

/// An expression error, pointing at the column inside the expression.
package struct ExpressionError: Error, CustomStringConvertible {
    package var message: String
    var column: Int?
    var expression: String?

    package var description: String {
        guard let expression else { return message }
        if let column { return "\(message) at column \(column) of '\(Self.excerpt(expression, around: column))'" }
        return "\(message) in '\(Self.excerpt(expression, around: 1))'"
    }

    /// The expression as written, or for a long one the part around `column` with `...` marking
    /// the cuts, so a runaway expression does not become a runaway error message.
    static func excerpt(_ expression: String, around column: Int, width: Int = 120) -> String {
        let characters = Array(expression)
        guard characters.count > width else { return expression }
        let start = max(0, min(column - 1 - width / 2, characters.count - width))
        let end = min(characters.count, start + width)
        return (start > 0 ? "..." : "") + String(characters[start..<end]) + (end < characters.count ? "..." : "")
    }
}
