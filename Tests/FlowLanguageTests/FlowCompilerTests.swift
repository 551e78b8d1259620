import Model
import Testing

@testable import FlowLanguage

func compile(_ yaml: String, file: String = "processes/main.yml") throws -> [String: Flow] {
    var flows: [String: Flow] = [:]
    guard let root = try YAMLLoader.load(yaml, file: file) else { return flows }
    try FlowCompiler.add(root, to: &flows)
    return flows
}

func definitionError(_ yaml: String) -> String? {
    do {
        _ = try compile(yaml)
        return nil
    } catch {
        return "\(error)"
    }
}

@Suite struct FlowCompilerTests {
    @Test func threeGenerationsOfSyntax() throws {
        let flows = try compile(
            """
            main:
            - expr: ${log.info("test", "c0")}
            - ${1 + 1}
            - log: "c1 ${x}"
            - call: other
              in: {a: 1}
              out: [a]
            - other
            - if: ${true}
              then:
              - log: yes
              else:
              - log: no
            - switch: ${color}
              red:
              - log: r
              default:
              - log: d
            - try:
              - throw: boom
              error:
              - log: caught
            - set:
                a.b: 1
            - task: log
              in: {msg: hi}
            - script: sh
              body: echo hi
            - return
            other:
            - end:
            """)
        let kinds = flows["main"]!.steps.map(\.kind.keyword)
        #expect(
            kinds == [
                "expr", "expr", "log", "call", "call", "if", "switch", "try", "set", "log", "script", "return",
            ])
        #expect(flows["main"]!.steps[2].location.line == 4)
        #expect(flows["main"]!.steps[2].location.column == 3)
    }

    @Test func yamlSyntaxErrorsHaveFileLineAndColumn() {
        let message = definitionError("main:\n- log: \"this string never ends\n")
        #expect(message?.hasPrefix("processes/main.yml:") == true)
        #expect(message?.contains("YAML syntax error") == true)
    }

    @Test(arguments: [
        ("main:\n- log: x\n  colour: red\n", "unknown key 'colour' in a 'log' step", 3),
        ("main:\n- frobnicate: x\n", "unknown step 'frobnicate'", 2),
        ("main: {a: 1}\n", "must be a list of steps", 1),
        ("main: []\n", "has no steps", 1),
        ("main:\n- [1, 2]\n", "not a list", 2),
        ("main:\n- expr: ${1 +}\n", "bad expression", 2),
        ("main:\n- if: ${true}\n", "needs 'then'", 2),
        ("main:\n- log: a\nmain:\n- log: b\n", "duplicate key 'main'", 3),
    ])
    func definitionErrorsSayWhereAndWhy(yaml: String, reason: String, line: Int) {
        let message = definitionError(yaml) ?? "no error"
        #expect(message.contains(reason), "\(message)")
        #expect(message.hasPrefix("processes/main.yml:\(line):"), "\(message)")
        if reason.hasPrefix("unknown") {
            #expect(message.hasPrefix("processes/main.yml:\(line):3:"), "points at the key: \(message)")
        }
    }

    @Test func flowsDefinedTwiceAcrossFilesAreAnError() throws {
        var flows: [String: Flow] = [:]
        try FlowCompiler.add(try YAMLLoader.load("main:\n- log: a\n", file: "processes/a.yml")!, to: &flows)
        #expect(throws: FlowDefinitionError.self) {
            try FlowCompiler.add(try YAMLLoader.load("main:\n- log: b\n", file: "processes/b.yml")!, to: &flows)
        }
    }

    @Test func plainScalarsResolveToTypes() {
        #expect(FlowCompiler.resolvePlain("42") == .int(42))
        #expect(FlowCompiler.resolvePlain("-1.5") == .double(-1.5))
        #expect(FlowCompiler.resolvePlain("true") == .bool(true))
        #expect(FlowCompiler.resolvePlain("~") == .null)
        #expect(FlowCompiler.resolvePlain("1.2.3") == .string("1.2.3"))
        #expect(FlowCompiler.resolvePlain("red") == .string("red"))
    }
}
