import Foundation
import Model
import TestSupport
import Testing

@testable import FlowLanguage

/// Seeded random inputs for the YAML loader, the flow compiler and the expression parser and
/// evaluator: each input is compiled (and run) or refused with a located error; nothing crashes,
/// hangs, or grows without bound. Seeds are fixed, so a failure replays.
@Suite struct FuzzTests {
    static let flowCorpus = [
        "main:\n- log: \"hi ${name}\"\n- call: other\n  in: {a: 1}\n  out: [a]\nother:\n- set: {a: \"${a + 1}\"}\n",
        "main:\n- if: ${x > 1}\n  then:\n  - log: a\n  else:\n  - throw: b\n- switch: ${c}\n  red:\n  - log: r\n  default:\n  - log: d\n",
        "main:\n- try:\n  - expr: ${[1, 2].get(0) / 0}\n  error:\n  - log: \"${lastError.message}\"\n- ::\n  - return\n  error:\n  - exit\n",
        "base: &b {k: [1, 2, {m: 'x'}]}\nmain:\n- set: {v: *b}\n- task: log\n  in: {msg: \"${v.k[2].m}\"}\n",
    ]

    static let expressionCorpus = [
        "a.b['c'][0].trim().length() + 1", "x > 1 ? 'yes' : (y eq null ? [1, {'k': 2}] : empty z)",
        "'s'.concat(\"t\").split(',').size() * 3 div 2 mod 5", "!(a && b || not c) and d ne e",
        "n.substring(1, 3).replace('a', 'b').indexOf('b') <= -1.5e2",
    ]

    /// Mutates `text`: random bytes, cuts, YAML/EL punctuation, repeated slices, nesting.
    static func mutate(_ text: String, _ rng: inout SplitMix) -> String {
        var bytes = Array(text.utf8)
        let alphabet = Array("-:[]{}&*!|>'\"#${}()?.,\n\t ,0x9e".utf8)
        for _ in 0..<Int.random(in: 1...5, using: &rng) {
            let at = Int.random(in: 0...bytes.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where at < bytes.count: bytes[at] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes = Array(bytes.prefix(at))
            case 2: bytes.insert(alphabet.randomElement(using: &rng)!, at: at)
            case 3 where at < bytes.count:
                let slice = Array(bytes[at..<min(bytes.count, at + Int.random(in: 1...10, using: &rng))])
                bytes.insert(
                    contentsOf: Array(repeating: slice, count: Int.random(in: 2...300, using: &rng)).joined(), at: at)
            case 4:
                let open = Array("[({".utf8)[Int.random(in: 0..<3, using: &rng)]
                bytes.insert(contentsOf: Array(repeating: open, count: Int.random(in: 50...3000, using: &rng)), at: at)
            default: if at < bytes.count { bytes.remove(at: at) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test(arguments: 0..<4)
    func mutatedFlowsCompileAndRunOrFailWithAPlace(seed: Int) async {
        var rng = SplitMix(seed: UInt64(seed) &+ 0xF10)
        for _ in 0..<400 {
            await Task.yield()
            let text = Self.mutate(Self.flowCorpus.randomElement(using: &rng)!, &rng)
            do {
                guard let root = try YAMLLoader.load(text, file: "processes/main.yml") else { continue }
                var flows: [String: Flow] = [:]
                try FlowCompiler.add(root, to: &flows)
                guard flows["main"] != nil else { continue }
                let interpreter = Interpreter(
                    flows: flows, variables: ["x": .int(2), "c": .string("red")], workDir: NSTemporaryDirectory()
                ) { _ in }
                do { try interpreter.run(entry: "main") } catch is FlowFailure {} catch is Unwind {}
            } catch let error as YAMLError {
                #expect(error.description.hasPrefix("processes/main.yml:"), "\(error)")
            } catch let error as FlowDefinitionError {
                #expect(error.description.hasPrefix("processes/main.yml:"), "\(error)")
            } catch {
                Issue.record("unexpected \(type(of: error)): \(error)")
            }
        }
    }

    @Test(arguments: 0..<4)
    func mutatedExpressionsParseAndEvaluateOrPointAtAColumn(seed: Int) async {
        var rng = SplitMix(seed: UInt64(seed) &+ 0xE1)
        let interpreter = Interpreter(
            flows: [:],
            variables: [
                "a": .map(["b": .map(["c": .list([.string(" x ")])])]), "n": .string("banana"), "x": .int(3),
            ], workDir: NSTemporaryDirectory()
        ) { _ in }
        for _ in 0..<1500 {
            await Task.yield()
            let text = Self.mutate(Self.expressionCorpus.randomElement(using: &rng)!, &rng)
            do {
                let expr = try ExpressionParser.parse(text)
                _ = try? Evaluator.evaluate(expr, interpreter)
            } catch {
                #expect((1...(text.utf8.count + 1)).contains(error.column ?? 0), "\(error)")
            }
        }
    }

    @Test func deepNestingIsRefusedNotACrash() {
        #expect(throws: ExpressionError.self) {
            try ExpressionParser.parse(
                String(repeating: "(", count: 50_000) + "1" + String(repeating: ")", count: 50_000))
        }
        #expect(throws: ExpressionError.self) {
            try ExpressionParser.parse(String(repeating: "!", count: 50_000) + "true")
        }
        #expect(throws: ExpressionError.self) {
            try ExpressionParser.parse(Array(repeating: "1", count: 50_000).joined(separator: " + "))
        }
        let deepYAML = "main:\n- log: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000)
        #expect(throws: YAMLError.self) { try YAMLLoader.load(deepYAML, file: "f.yml") }
    }

    @Test func aliasBombsAreRefused() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1..<9 {
            text +=
                "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
                + "]\n"
        }
        #expect(throws: YAMLError.self) { try YAMLLoader.load(text, file: "bomb.yml") }
    }

    @Test func manyKeysAreLinear() throws {
        let text = "main:\n- set:\n" + (0..<50_000).map { "    k\($0): \($0)\n" }.joined()
        let started = ContinuousClock.now
        _ = try YAMLLoader.load(text, file: "big.yml")
        #expect(started.duration(to: .now) < .seconds(20))
    }
}

@Suite struct ExpressionErrorTests {
    @Test func longExpressionsAreQuotedAroundTheColumn() {
        let long = String(repeating: "a + ", count: 100) + "* 2"
        let error = ExpressionError(message: "unexpected '*'", column: 401, expression: long)
        #expect(error.description.count < 200)
        #expect(error.description.hasSuffix("a + * 2'"))
        #expect(error.description.contains("'..."))
        #expect(ExpressionError(message: "m", column: 1, expression: "short").description == "m at column 1 of 'short'")
    }
}
