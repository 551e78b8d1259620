/// A parsed `${...}` expression.
indirect enum Expr: Sendable {
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

enum UnaryOp: Sendable { case negate, not, empty }

enum BinaryOp: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", modulo = "%"
    case equal = "==", notEqual = "!=", less = "<", greater = ">", lessEqual = "<=", greaterEqual = ">="
    case and = "&&", or = "||"
}

/// An expression error, pointing at the column inside the expression.
struct ExpressionError: Error, CustomStringConvertible {
    var message: String
    var column: Int?
    var expression: String?

    var description: String {
        guard let expression else { return message }
        if let column { return "\(message) at column \(column) of '\(expression)'" }
        return "\(message) in '\(expression)'"
    }
}
