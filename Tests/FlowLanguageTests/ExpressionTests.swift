import Model
import Testing

@testable import FlowLanguage

/// A context with plain variables and a recording `log` task.
final class TestContext: EvaluationContext {
    var values: [String: Value]
    var logged: [String] = []
    init(_ values: [String: Value] = [:]) { self.values = values }
    func variable(_ name: String) -> Value? { values[name] }
    func invoke(task: String, method: String, arguments: [Value]) throws -> Value {
        logged.append("\(task).\(method)(\(arguments.map(\.javaString).joined(separator: ",")))")
        return .null
    }
}

func eval(_ text: String, _ values: [String: Value] = [:]) throws -> Value {
    try Template.parse(text).evaluate(TestContext(values))
}

@Suite struct ExpressionTests {
    @Test(arguments: [
        ("${1 + 2 * 3}", Value.int(7)),
        ("${(1 + 2) * 3}", .int(9)),
        ("${7 / 2}", .double(3.5)),
        ("${7 div 2}", .double(3.5)),
        ("${7 % 3}", .int(1)),
        ("${7 mod 3}", .int(1)),
        ("${-3 + 1}", .int(-2)),
        ("${1.5 * 2}", .double(3.0)),
        ("${1 < 2 && 2 <= 2}", .bool(true)),
        ("${1 gt 2 or 3 ge 3}", .bool(true)),
        ("${not true}", .bool(false)),
        ("${!false and true}", .bool(true)),
        ("${1 == 1.0}", .bool(true)),
        ("${'1' == 1}", .bool(true)),
        ("${'a' eq 'a' && 'a' ne 'b'}", .bool(true)),
        ("${'abc' < 'abd'}", .bool(true)),
        ("${true ? 'yes' : 'no'}", .string("yes")),
        ("${null}", .null),
        ("${empty ''}", .bool(true)),
        ("${empty 'x'}", .bool(false)),
        ("${empty missing}", .bool(true)),
        ("${'a' + 'b'}", .string("ab")),
        ("${'n=' + 1}", .string("n=1")),
        ("${\"double \\\"quoted\\\"\"}", .string("double \"quoted\"")),
    ])
    func operators(text: String, expected: Value) throws {
        #expect(try eval(text) == expected)
    }

    @Test func literalsAndAccess() throws {
        let map: Value = try eval("${{'k': [1, 2, {'deep': 'x'}]}}")
        #expect(try eval("${m.k[2].deep}", ["m": map]) == .string("x"))
        #expect(try eval("${m['k'][0]}", ["m": map]) == .int(1))
        #expect(try eval("${m.missing}", ["m": map]) == .null)
        #expect(try eval("${m.k.size()}", ["m": map]) == .int(3))
        #expect(try eval("${[1, 2, 3].contains(2)}") == .bool(true))
    }

    @Test func stringMethods() throws {
        let s: [String: Value] = ["s": .string("  Hello, World  ")]
        #expect(try eval("${s.trim().toUpperCase()}", s) == .string("HELLO, WORLD"))
        #expect(try eval("${s.trim().toLowerCase().startsWith('hello')}", s) == .bool(true))
        #expect(try eval("${s.trim().endsWith('World')}", s) == .bool(true))
        #expect(try eval("${s.contains('lo, W')}", s) == .bool(true))
        #expect(try eval("${s.trim().substring(7)}", s) == .string("World"))
        #expect(try eval("${s.trim().substring(0, 5)}", s) == .string("Hello"))
        #expect(try eval("${s.trim().indexOf('World')}", s) == .int(7))
        #expect(try eval("${s.trim().replace('World', 'there')}", s) == .string("Hello, there"))
        #expect(try eval("${'a,b,,c'.split(',')}") == .list([.string("a"), .string("b"), .string(""), .string("c")]))
        #expect(try eval("${'a1b22c'.split('[0-9]+')}") == .list([.string("a"), .string("b"), .string("c")]))
        #expect(try eval("${'x.y.z..'.split('\\\\.')}") == .list([.string("x"), .string("y"), .string("z")]))
        #expect(throws: ExpressionError.self) { try eval("${'a'.split('(')}") }
        #expect(try eval("${'x'.concat(1).length()}") == .int(2))
        #expect(try eval("${''.isEmpty() && 'a'.equals('a')}") == .bool(true))
    }

    @Test func mapAndListMethods() throws {
        let vars: [String: Value] = ["m": try eval("${{'a': 1, 'b': 2}}"), "l": .list([.string("x")])]
        #expect(try eval("${m.get('b')}", vars) == .int(2))
        #expect(try eval("${m.containsKey('a') && !m.isEmpty()}", vars) == .bool(true))
        #expect(try eval("${m.keySet()}", vars) == .list([.string("a"), .string("b")]))
        #expect(try eval("${m.size() + l.size()}", vars) == .int(3))
        #expect(try eval("${l.get(0)}", vars) == .string("x"))
    }

    @Test func interpolationStringifiesAndNullIsEmpty() throws {
        let vars: [String: Value] = ["a": .int(1), "b": .bool(false), "d": .list([.string("x"), .string("y")])]
        #expect(try eval("a=${a} b=${b} d=${d} none=[${nothing}]", vars) == .string("a=1 b=false d=[x, y] none=[]"))
        #expect(try eval("${'{braces}'} and ${'}'}") == .string("{braces} and }"))
        #expect(try eval("no expressions here") == .string("no expressions here"))
    }

    @Test func tasksAreCalled() throws {
        let context = TestContext()
        _ = try Template.parse("${log.info('test', 'hi ' + 1)}").evaluate(context)
        #expect(context.logged == ["log.info(test,hi 1)"])
    }

    @Test(arguments: [
        ("${1 +}", 4), ("${a.}", 3), ("${'open}", 1), ("${(1}", 3), ("${1 2}", 3), ("${#}", 1),
    ])
    func parseErrorsPointAtTheColumn(text: String, column: Int) {
        do {
            _ = try Template.parse(text)
            Issue.record("\(text) parsed")
        } catch {
            #expect(error.column == column, "\(text): \(error)")
            #expect(error.description.contains("column \(column)"))
        }
    }

    @Test func unclosedExpressionIsAnError() {
        #expect(throws: ExpressionError.self) { try Template.parse("x ${1 + 2") }
    }

    @Test func runtimeErrorsNameTheExpression() {
        do {
            _ = try eval("${missing.trim()}")
            Issue.record("calling a method on null succeeded")
        } catch let error as ExpressionError {
            #expect(error.description.contains("${missing.trim()}"))
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func divisionByZeroIsAnError() {
        #expect(throws: ExpressionError.self) { try eval("${1 % 0}") }
    }
}
