import Model

/// Parses the expression language of `FLOWS.md` (a subset of Java's Unified EL).
///
/// Precedence, lowest first: `?:`, `||`/`or`, `&&`/`and`, `==`/`!=`/`eq`/`ne`,
/// `<`/`>`/`<=`/`>=`/`lt`/`gt`/`le`/`ge`, `+`/`-`, `*`/`/`/`%`/`div`/`mod`,
/// unary `-`/`!`/`not`/`empty`, then `.name`, `[index]` and `.method(args)`.
package struct ExpressionParser {
    enum Token: Equatable {
        case number(Value)
        case string(String)
        case identifier(String)
        case symbol(String)
        case end
    }

    private let source: String
    private var tokens: [(token: Token, column: Int)] = []
    private var position = 0
    private var depth = 0

    /// Bounds that keep the recursive parser and evaluator far from the end of the stack.
    static let maxDepth = 200
    static let maxTokens = 2_000

    /// Parses one whole expression (the text between `${` and `}`).
    static func parse(_ text: String) throws(ExpressionError) -> Expr {
        var parser = ExpressionParser(source: text)
        parser.tokens = try ExpressionParser.tokenize(text)
        guard parser.tokens.count <= maxTokens else {
            throw ExpressionError(
                message: "the expression is longer than \(maxTokens) tokens", column: parser.tokens[maxTokens].column,
                expression: text)
        }
        let expr = try parser.parseTernary()
        guard parser.peek == .end else { throw parser.error("unexpected \(parser.describe(parser.peek))") }
        return expr
    }

    private init(source: String) { self.source = source }

    private var peek: Token { tokens[position].token }

    private func error(_ message: String) -> ExpressionError {
        ExpressionError(message: message, column: tokens[min(position, tokens.count - 1)].column, expression: source)
    }

    private func describe(_ token: Token) -> String {
        switch token {
        case .number(let v): "number \(v.javaString)"
        case .string(let s): "string '\(s)'"
        case .identifier(let name): "'\(name)'"
        case .symbol(let s): "'\(s)'"
        case .end: "end of expression"
        }
    }

    private mutating func advance() -> Token {
        let token = tokens[position].token
        if position < tokens.count - 1 { position += 1 }
        return token
    }

    private mutating func accept(_ symbol: String) -> Bool {
        if peek == .symbol(symbol) || peek == .identifier(symbol) {
            _ = advance()
            return true
        }
        return false
    }

    private mutating func expect(_ symbol: String) throws(ExpressionError) {
        guard accept(symbol) else { throw error("expected '\(symbol)' but found \(describe(peek))") }
    }

    /// Every nested construct (parentheses, arguments, indexes, literals, unary operators) passes
    /// through here or `parseUnary`, so this bounds the tree's nesting.
    private mutating func nest() throws(ExpressionError) {
        depth += 1
        guard depth <= ExpressionParser.maxDepth else {
            throw error("the expression is nested deeper than \(ExpressionParser.maxDepth) levels")
        }
    }

    private mutating func parseTernary() throws(ExpressionError) -> Expr {
        try nest()
        defer { depth -= 1 }
        let condition = try parseOr()
        guard accept("?") else { return condition }
        let then = try parseTernary()
        try expect(":")
        return .ternary(condition, then, try parseTernary())
    }

    private mutating func parseOr() throws(ExpressionError) -> Expr {
        var left = try parseAnd()
        while accept("||") || accept("or") { left = .binary(.or, left, try parseAnd()) }
        return left
    }

    private mutating func parseAnd() throws(ExpressionError) -> Expr {
        var left = try parseEquality()
        while accept("&&") || accept("and") { left = .binary(.and, left, try parseEquality()) }
        return left
    }

    private mutating func parseEquality() throws(ExpressionError) -> Expr {
        var left = try parseRelational()
        while true {
            if accept("==") || accept("eq") {
                left = .binary(.equal, left, try parseRelational())
            } else if accept("!=") || accept("ne") {
                left = .binary(.notEqual, left, try parseRelational())
            } else {
                return left
            }
        }
    }

    private mutating func parseRelational() throws(ExpressionError) -> Expr {
        var left = try parseAdditive()
        while true {
            let op: BinaryOp
            if accept("<=") || accept("le") {
                op = .lessEqual
            } else if accept(">=") || accept("ge") {
                op = .greaterEqual
            } else if accept("<") || accept("lt") {
                op = .less
            } else if accept(">") || accept("gt") {
                op = .greater
            } else {
                return left
            }
            left = .binary(op, left, try parseAdditive())
        }
    }

    private mutating func parseAdditive() throws(ExpressionError) -> Expr {
        var left = try parseMultiplicative()
        while true {
            if accept("+") {
                left = .binary(.add, left, try parseMultiplicative())
            } else if accept("-") {
                left = .binary(.subtract, left, try parseMultiplicative())
            } else {
                return left
            }
        }
    }

    private mutating func parseMultiplicative() throws(ExpressionError) -> Expr {
        var left = try parseUnary()
        while true {
            if accept("*") {
                left = .binary(.multiply, left, try parseUnary())
            } else if accept("/") || accept("div") {
                left = .binary(.divide, left, try parseUnary())
            } else if accept("%") || accept("mod") {
                left = .binary(.modulo, left, try parseUnary())
            } else {
                return left
            }
        }
    }

    private mutating func parseUnary() throws(ExpressionError) -> Expr {
        try nest()
        defer { depth -= 1 }
        if accept("-") { return .unary(.negate, try parseUnary()) }
        if accept("!") || accept("not") { return .unary(.not, try parseUnary()) }
        if accept("empty") { return .unary(.empty, try parseUnary()) }
        return try parsePostfix()
    }

    private mutating func parsePostfix() throws(ExpressionError) -> Expr {
        var expr = try parsePrimary()
        while true {
            if accept(".") {
                guard case .identifier(let name) = advance() else { throw error("expected a name after '.'") }
                if accept("(") {
                    expr = .method(expr, name, try parseArguments(closing: ")"))
                } else {
                    expr = .member(expr, name)
                }
            } else if accept("[") {
                let index = try parseTernary()
                try expect("]")
                expr = .index(expr, index)
            } else {
                return expr
            }
        }
    }

    private mutating func parseArguments(closing: String) throws(ExpressionError) -> [Expr] {
        var arguments: [Expr] = []
        if accept(closing) { return arguments }
        repeat { arguments.append(try parseTernary()) } while accept(",")
        try expect(closing)
        return arguments
    }

    private mutating func parsePrimary() throws(ExpressionError) -> Expr {
        let token = peek
        switch token {
        case .number(let value):
            _ = advance()
            return .literal(value)
        case .string(let text):
            _ = advance()
            return .literal(.string(text))
        case .identifier(let name):
            _ = advance()
            switch name {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            default: return .variable(name)
            }
        case .symbol("("):
            _ = advance()
            let inner = try parseTernary()
            try expect(")")
            return inner
        case .symbol("["):
            _ = advance()
            return .list(try parseArguments(closing: "]"))
        case .symbol("{"):
            _ = advance()
            var pairs: [(Expr, Expr)] = []
            if !accept("}") {
                repeat {
                    let key = try parseTernary()
                    try expect(":")
                    pairs.append((key, try parseTernary()))
                } while accept(",")
                try expect("}")
            }
            return .map(pairs)
        case .symbol, .end:
            throw error("unexpected \(describe(token))")
        }
    }

    static func tokenize(_ text: String) throws(ExpressionError) -> [(token: Token, column: Int)] {
        let chars = Array(text)
        var tokens: [(Token, Int)] = []
        var i = 0
        let symbols2: Set<String> = ["==", "!=", "<=", ">=", "&&", "||"]
        while i < chars.count {
            let c = chars[i]
            let column = i + 1
            if c.isWhitespace {
                i += 1
            } else if c.isNumber {
                var j = i
                while j < chars.count, chars[j].isNumber { j += 1 }
                var isDouble = false
                if j + 1 < chars.count, chars[j] == ".", chars[j + 1].isNumber {
                    isDouble = true
                    j += 1
                    while j < chars.count, chars[j].isNumber { j += 1 }
                }
                if j < chars.count, chars[j] == "e" || chars[j] == "E" {
                    var k = j + 1
                    if k < chars.count, chars[k] == "+" || chars[k] == "-" { k += 1 }
                    if k < chars.count, chars[k].isNumber {
                        isDouble = true
                        j = k
                        while j < chars.count, chars[j].isNumber { j += 1 }
                    }
                }
                let literal = String(chars[i..<j])
                if !isDouble, let int = Int64(literal) {
                    tokens.append((.number(.int(int)), column))
                } else if let double = Double(literal) {
                    tokens.append((.number(.double(double)), column))
                } else {
                    throw ExpressionError(message: "bad number '\(literal)'", column: column, expression: text)
                }
                i = j
            } else if c == "'" || c == "\"" {
                var j = i + 1
                var value = ""
                var closed = false
                while j < chars.count {
                    if chars[j] == "\\", j + 1 < chars.count {
                        let next = chars[j + 1]
                        switch next {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        default: value.append(next)
                        }
                        j += 2
                    } else if chars[j] == c {
                        closed = true
                        j += 1
                        break
                    } else {
                        value.append(chars[j])
                        j += 1
                    }
                }
                guard closed else {
                    throw ExpressionError(message: "a string is not closed", column: column, expression: text)
                }
                tokens.append((.string(value), column))
                i = j
            } else if c.isLetter || c == "_" || c == "$" {
                var j = i
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" || chars[j] == "$" {
                    j += 1
                }
                tokens.append((.identifier(String(chars[i..<j])), column))
                i = j
            } else if i + 1 < chars.count, symbols2.contains(String(chars[i...(i + 1)])) {
                tokens.append((.symbol(String(chars[i...(i + 1)])), column))
                i += 2
            } else if "+-*/%<>!?:.,()[]{}".contains(c) {
                tokens.append((.symbol(String(c)), column))
                i += 1
            } else {
                throw ExpressionError(message: "unexpected character '\(c)'", column: column, expression: text)
            }
        }
        tokens.append((.end, chars.count + 1))
        return tokens
    }
}
