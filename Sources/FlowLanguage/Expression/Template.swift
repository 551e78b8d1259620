import Model

/// A string that may hold `${...}` expressions.
package enum Template: Sendable {
    /// No expression: the text as is.
    case literal(String)
    /// Exactly one expression and nothing around it: its value keeps its type.
    case single(Expr, source: String)
    /// Text and expressions: the result is a string.
    case parts([Part])

    package enum Part: Sendable {
        case text(String)
        case expr(Expr, source: String)
    }

    /// Whether `text` contains an expression at all (cheap check before parsing).
    static func hasExpression(_ text: String) -> Bool { text.contains("${") }

    static func parse(_ text: String) throws(ExpressionError) -> Template {
        guard hasExpression(text) else { return .literal(text) }
        let chars = Array(text)
        var parts: [Part] = []
        var literal = ""
        var i = 0
        while i < chars.count {
            if chars[i] == "$", i + 1 < chars.count, chars[i + 1] == "{" {
                guard let end = closingBrace(chars, from: i + 2) else {
                    throw ExpressionError(message: "'${' is not closed by '}'", column: i + 1, expression: text)
                }
                let source = String(chars[(i + 2)..<end])
                if !literal.isEmpty {
                    parts.append(.text(literal))
                    literal = ""
                }
                parts.append(.expr(try ExpressionParser.parse(source), source: source))
                i = end + 1
            } else {
                literal.append(chars[i])
                i += 1
            }
        }
        if !literal.isEmpty { parts.append(.text(literal)) }
        if parts.count == 1, case .expr(let expr, let source) = parts[0] { return .single(expr, source: source) }
        return .parts(parts)
    }

    /// The index of the `}` that closes an expression starting at `from`, skipping quoted strings
    /// and nested braces (map literals).
    private static func closingBrace(_ chars: [Character], from: Int) -> Int? {
        var depth = 0
        var quote: Character?
        var i = from
        while i < chars.count {
            let c = chars[i]
            if let q = quote {
                if c == "\\" {
                    i += 1
                } else if c == q {
                    quote = nil
                }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "{" {
                depth += 1
            } else if c == "}" {
                if depth == 0 { return i }
                depth -= 1
            }
            i += 1
        }
        return nil
    }

    func evaluate(_ context: some EvaluationContext) throws -> Value {
        switch self {
        case .literal(let text): return .string(text)
        case .single(let expr, let source): return try Template.run(expr, source, context)
        case .parts(let parts):
            var out = ""
            for part in parts {
                switch part {
                case .text(let text): out += text
                case .expr(let expr, let source): out += try Template.run(expr, source, context).interpolated
                }
            }
            return .string(out)
        }
    }

    private static func run(_ expr: Expr, _ source: String, _ context: some EvaluationContext) throws -> Value {
        do {
            return try Evaluator.evaluate(expr, context)
        } catch var error as ExpressionError {
            if error.expression == nil { error.expression = "${\(source)}" }
            throw error
        }
    }
}
