import Foundation
import Model
import Testing

@testable import FlowLanguage

final class LogCollector: @unchecked Sendable {
    // @unchecked: the interpreter is single-threaded.
    var lines: [String] = []
}

/// Runs `entry` of the given flows; returns the log lines and the failure, if any.
func run(_ yaml: String, entry: String = "main", arguments: [String: Value] = [:]) -> (
    log: [String], failure: FlowFailure?, interpreter: Interpreter
) {
    let collector = LogCollector()
    let flows = (try? compile(yaml)) ?? [:]
    let interpreter = Interpreter(flows: flows, variables: arguments, workDir: NSTemporaryDirectory()) {
        collector.lines.append($0.text)
    }
    do {
        try interpreter.run(entry: entry)
        return (collector.lines, nil, interpreter)
    } catch let failure as FlowFailure {
        return (collector.lines, failure, interpreter)
    } catch {
        return (collector.lines, FlowFailure(message: "\(error)"), interpreter)
    }
}

@Suite struct InterpreterTests {
    @Test func callWithInDoesNotLeakIntoTheCaller() {
        let result = run(
            """
            main:
            - call: greet
              in: {name: "inner"}
            - log: "outer ${name}"
            greet:
            - log: "hello ${name}"
            """, arguments: ["name": .string("outer")])
        #expect(result.log == ["hello inner", "outer outer"])
    }

    @Test func callWithoutInSharesVariablesAndOutCopiesBack() {
        let result = run(
            """
            main:
            - call: setter
            - log: "shared=${shared}"
            - call: isolated
              in: {x: 1}
              out: [result]
            - log: "result=${result}"
            setter:
            - set: {shared: true}
            isolated:
            - set: {result: "${x + 1}"}
            """)
        #expect(result.log == ["shared=true", "result=2"])
    }

    @Test func withItemsRunsOncePerItem() {
        let result = run("main:\n- call: each\n  withItems: [a, b, c]\neach:\n- log: \"item ${item}\"\n")
        #expect(result.log == ["item a", "item b", "item c"])
    }

    @Test func switchOnAValueWithDefault() {
        let yaml =
            "main:\n- switch: ${color}\n  red:\n  - log: stop\n  green:\n  - log: go\n  default:\n  - log: wait\n"
        #expect(run(yaml, arguments: ["color": .string("green")]).log == ["go"])
        #expect(run(yaml, arguments: ["color": .string("blue")]).log == ["wait"])
    }

    @Test func tryCatchesAndSetsLastError() {
        let result = run(
            """
            main:
            - try:
              - throw: "bad thing"
              - log: unreachable
              error:
              - log: "caught ${lastError.message}"
            - log: after
            """)
        #expect(result.failure == nil)
        #expect(result.log == ["caught bad thing", "after"])
    }

    @Test func subprocessHandlerRunsThenTheErrorStands() {
        let result = run(
            """
            main:
            - subprocess:
              steps:
              - end: myError
              errors:
              - ref: otherError
                call: wrong
              - ref: myError
                call: handler
            handler:
            - log: "handled ${lastError.errorRef}"
            wrong:
            - log: wrong
            """)
        #expect(result.log == ["handled myError"])
        #expect(result.failure?.message == "myError")
        #expect(result.failure?.errorRef == "myError")
    }

    @Test func exprErrorBlockHandlesRuntimeErrors() {
        let result = run("main:\n- expr: ${missing.trim()}\n  error:\n  - log: recovered\n")
        #expect(result.failure == nil)
        #expect(result.log == ["recovered"])
    }

    @Test func unhandledErrorsCarryTheirLocation() {
        let result = run("main:\n- log: one\n- expr: ${1 % 0}\n")
        #expect(result.failure?.location?.description == "processes/main.yml:3:3")
        #expect(result.failure?.message.contains("division by zero") == true)
    }

    @Test func returnEndsTheFlowAndExitEndsTheProcess() {
        #expect(run("main:\n- call: f\n- log: back\nf:\n- return\n- log: no\n").log == ["back"])
        #expect(run("main:\n- call: f\n- log: no\nf:\n- exit\n").log.isEmpty)
        #expect(run("main:\n- call: f\n- log: no\nf:\n- exit\n").failure == nil)
    }

    @Test func retryRetriesThenGivesUp() {
        let result = run("main:\n- throw: flaky\n  retry: {times: 2, delay: 1}\n")
        #expect(result.failure?.message == "flaky")
        #expect(result.log.filter { $0.contains("retry") }.count == 2)
    }

    @Test func setAssignsNestedKeys() {
        let result = run("main:\n- set:\n    a.b.c: 1\n    a.d: two\n- log: \"${a.b.c} ${a.d}\"\n")
        #expect(result.log == ["1 two"])
    }

    @Test func endlessRecursionFailsCleanly() {
        let result = run("main:\n- call: main\n")
        #expect(result.failure?.message.contains("deeper than") == true)
    }

    @Test func unknownFlowIsNamed() {
        let result = run("main:\n- log: x\n", entry: "nowhere")
        #expect(result.failure?.message.contains("'nowhere'") == true)
    }

    @Test func executionVariables() {
        let result = run("main:\n- ${execution.setVariable('x', 5)}\n- log: \"${execution.getVariable('x') + 1}\"\n")
        #expect(result.log == ["6"])
    }

    @Test func scriptOutputAndVariablesFlowBack() {
        let result = run(
            "main:\n- script: sh\n  body: |\n    echo \"hi $who\"\n    echo answer=42 >> \"$ACCORD_OUT\"\n- log: \"answer ${answer}\"\n",
            arguments: ["who": .string("there")])
        #expect(result.failure == nil)
        #expect(result.log == ["hi there", "answer 42"])
    }

    @Test func everyExecutedStepIsRecordedWithItsFlowPlaceAndOutcome() {
        let flows = (try? compile("main:\n- log: a\n- call: f\n- throw: boom\nf:\n- name: inner\n  log: b\n")) ?? [:]
        let interpreter = Interpreter(flows: flows, variables: [:], workDir: NSTemporaryDirectory()) { _ in }
        var records: [StepRecord] = []
        interpreter.onStep = { records.append($0) }
        #expect(throws: FlowFailure.self) { try interpreter.run(entry: "main") }
        #expect(records.map(\.step) == ["log", "inner", "call", "throw"])
        #expect(records.map(\.flow) == ["main", "f", "main", "main"])
        #expect(
            records.map(\.location) == [
                "processes/main.yml:2:3", "processes/main.yml:6:3", "processes/main.yml:3:3", "processes/main.yml:4:3",
            ])
        #expect(records.map(\.outcome) == [.ok, .ok, .ok, .failed])
        #expect(records.allSatisfy { $0.durationMicros >= 0 })
    }

    @Test func failingScriptFailsTheStep() {
        let result = run("main:\n- script: sh\n  body: exit 3\n")
        #expect(result.failure?.message.contains("status 3") == true)
    }
}
