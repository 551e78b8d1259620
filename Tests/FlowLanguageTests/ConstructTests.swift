import Archive
import Foundation
import Model
import TestSupport
import Testing

@testable import FlowLanguage

/// One test per FLOWS.md construct not already pinned by `InterpreterTests`: each checks what the
/// construct does and, where it has one, what it does not do (the branch not taken, the step after
/// an early end).
@Suite struct ConstructTests {
    @Test func switchOverConditionsRunsOnlyTheFirstTrueBranchThenContinues() {
        let yaml = """
            main:
            - switch:
              - expr: ${n > 10}
                steps:
                - log: big
              - expr: ${n > 1}
                steps:
                - log: medium
              - expr: ${true}
                steps:
                - log: anything
            - log: after
            """
        #expect(run(yaml, arguments: ["n": .int(5)]).log == ["medium", "after"])
        #expect(run(yaml, arguments: ["n": .int(50)]).log == ["big", "after"])
        let noneTrue = "main:\n- switch:\n  - expr: ${false}\n    steps:\n    - log: no\n- log: after\n"
        #expect(run(noneTrue).log == ["after"])
    }

    @Test func switchCaseKeysCompareAsStrings() {
        let yaml = "main:\n- switch: ${flag}\n  true:\n  - log: yes\n  false:\n  - log: no\n"
        #expect(run(yaml, arguments: ["flag": .bool(true)]).log == ["yes"])
        #expect(run(yaml, arguments: ["flag": .bool(false)]).log == ["no"])
        #expect(run(yaml, arguments: ["flag": .string("maybe")]).log == [])
    }

    @Test func ifWithoutElseAndWithNonBooleanConditions() {
        let yaml = "main:\n- if: ${x}\n  then:\n  - log: then\n- log: after\n"
        #expect(run(yaml, arguments: ["x": .bool(true)]).log == ["then", "after"])
        #expect(run(yaml, arguments: ["x": .bool(false)]).log == ["after"])
        #expect(run(yaml, arguments: ["x": .string("true")]).log == ["then", "after"])
        #expect(run(yaml).log == ["after"])
    }

    @Test func aBareFlowNameCallsThatFlowSharingVariables() {
        let result = run(
            "main:\n- set: {who: world}\n- greet\n- log: \"${greeting}\"\ngreet:\n- set: {greeting: \"hi ${who}\"}\n")
        #expect(result.failure == nil)
        #expect(result.log == ["hi world"])
    }

    @Test func doubleColonGroupHandlesItsErrorAndContinues() {
        let result = run(
            "main:\n- ::\n  - log: inside\n  - throw: oops\n  - log: skipped\n  error:\n  - log: \"handled ${lastError.message}\"\n- log: after\n"
        )
        #expect(result.failure == nil)
        #expect(result.log == ["inside", "handled oops", "after"])
    }

    @Test func endWithoutAValueEndsTheFlowSuccessfully() {
        let result = run("main:\n- call: f\n- log: back\nf:\n- log: in f\n- end:\n- log: skipped\n")
        #expect(result.failure == nil)
        #expect(result.log == ["in f", "back"])
    }

    @Test(arguments: ["end", "return", "throw"])
    func failingWithACodeSetsMessageAndErrorRef(keyword: String) {
        let result = run(
            "main:\n- try:\n  - \(keyword): myCode\n  error:\n  - log: \"${lastError.message}/${lastError.errorRef}\"\n"
        )
        #expect(result.failure == nil)
        #expect(result.log == ["myCode/myCode"])
        let unhandled = run("main:\n- log: before\n- \(keyword): myCode\n- log: after\n")
        #expect(unhandled.failure?.message == "myCode")
        #expect(unhandled.log == ["before"])
    }

    @Test func subprocessHandlerWithoutRefCatchesAnyErrorAndSeesItsArguments() {
        let result = run(
            """
            main:
            - subprocess:
              steps:
              - throw: anything
              errors:
              - call: handler
                in: {why: "${lastError.message}"}
            handler:
            - log: "handled ${why}"
            """)
        #expect(result.log == ["handled anything"])
        #expect(result.failure?.message == "anything")
    }

    @Test func subprocessWithoutAMatchingHandlerLetsTheErrorThrough() {
        let result = run(
            "main:\n- subprocess:\n  steps:\n  - end: a\n  errors:\n  - ref: b\n    call: h\nh:\n- log: wrong\n")
        #expect(result.log == [])
        #expect(result.failure?.errorRef == "a")
    }

    @Test func throwTaskCarriesItsPayloadAsTheCause() {
        let result = run(
            """
            main:
            - try:
              - task: throw
                in:
                  exception: "payment declined"
                  payload: {code: 402, retry: false}
              error:
              - log: "${lastError.message} code=${lastError.cause.code}"
            """)
        #expect(result.failure == nil)
        #expect(result.log == ["payment declined code=402"])
    }

    @Test func aFailedScriptsLastLineIsTheCause() {
        let result = run(
            "main:\n- try:\n  - script: sh\n    body: |\n      echo working\n      echo 'disk is full' >&2\n      exit 2\n  error:\n  - log: \"cause=${lastError.cause}\"\n"
        )
        #expect(result.log == ["working", "disk is full", "cause=disk is full"])
    }

    @Test func runtimeErrorsHaveNoInventedCause() {
        let result = run(
            "main:\n- try:\n  - expr: ${1 / 0}\n  error:\n  - log: \"[${lastError.cause}] ${empty lastError.message}\"\n"
        )
        #expect(result.log == ["[] false"])
    }

    @Test func taskWithInAndOutAndTheShortForms() {
        let result = run(
            """
            main:
            - task: log
              in: {msg: "via task ${x}"}
            - log: short
            - sleep: 1
            - task: sleep
              in: {duration: 1}
            - expr: ${x * 2}
              out: doubled
            - log: "doubled=${doubled}"
            """, arguments: ["x": .int(4)])
        #expect(result.failure == nil)
        #expect(result.log == ["via task 4", "short", "doubled=8"])
    }

    @Test func anUnknownTaskIsNamed() {
        let result = run("main:\n- task: teleport\n  in: {to: mars}\n")
        #expect(result.failure?.message.contains("unknown task 'teleport'") == true)
    }

    @Test func nameLabelsTheStepInFailures() {
        let result = run("main:\n- name: charge the card\n  throw: declined\n")
        #expect(result.failure?.step == "charge the card")
        #expect(result.failure?.location?.description == "processes/main.yml:2:3")
    }

    @Test func retrySucceedsOnceTheStepDoes() throws {
        let folder = NSTemporaryDirectory() + "accord-retry-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Fails twice, then succeeds: the count lives in a file, as a flaky service's state would.
        let yaml = """
            main:
            - script: sh
              body: |
                n=$(cat "\(folder)/n" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "\(folder)/n"
                [ $n -ge 3 ]
              retry: {times: 3, delay: 1}
            - log: done
            """
        let result = run(yaml)
        #expect(result.failure == nil)
        #expect(result.log.last == "done")
        #expect(result.log.filter { $0.contains("retry") }.count == 2)
        #expect(try String(contentsOfFile: folder + "/n", encoding: .utf8) == "3\n")
    }

    @Test func retryBackoffDoublesTheDelay() {
        let started = ContinuousClock.now
        let result = run("main:\n- throw: flaky\n  retry: {times: 3, delay: 40}\n")
        #expect(result.failure?.message == "flaky")
        // 40 + 80 + 160 ms: without doubling it would be 120 ms.
        #expect(started.duration(to: .now) >= .milliseconds(280))
    }

    @Test func pythonScriptsAndScriptFilesRun() throws {
        let folder = NSTemporaryDirectory() + "accord-script-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/scripts", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "echo \"file says $greeting\"\necho from_file=yes >> \"$ACCORD_OUT\"\n".write(
            toFile: folder + "/scripts/hello.sh", atomically: true, encoding: .utf8)
        let flows =
            (try? compile(
                """
                main:
                - script: python3
                  body: |
                    import os
                    print("python sees", os.environ["greeting"])
                - script: scripts/hello.sh
                - log: "from_file=${from_file}"
                - script: scripts/missing.sh
                """)) ?? [:]
        let collector = LogCollector()
        let interpreter = Interpreter(flows: flows, variables: ["greeting": .string("hi")], workDir: folder) {
            collector.lines.append($0.text)
        }
        #expect(throws: FlowFailure.self) { try interpreter.run(entry: "main") }
        #expect(collector.lines == ["python sees hi", "file says hi", "from_file=yes"])
    }

    @Test func scriptsDoNotInterpolateTheirBody() {
        let result = run("main:\n- script: sh\n  body: echo '${x}'\n", arguments: ["x": .int(1)])
        #expect(result.log == ["${x}"])
    }

    @Test func lastErrorInACallErrorBlock() {
        let result = run(
            "main:\n- call: f\n  error:\n  - log: \"f failed: ${lastError.message}\"\n- log: after\nf:\n- throw: inner\n"
        )
        #expect(result.failure == nil)
        #expect(result.log == ["f failed: inner", "after"])
    }

    @Test func outWithASingleNameAndWithItemsOverMaps() {
        let result = run(
            """
            main:
            - call: each
              withItems:
              - {name: a, n: 1}
              - {name: b, n: 2}
            - call: sum
              in: {x: 2, y: 3}
              out: total
            - log: "total=${total}"
            each:
            - log: "${item.name}=${item.n}"
            sum:
            - set: {total: "${x + y}"}
            """)
        #expect(result.log == ["a=1", "b=2", "total=5"])
    }

    @Test func dottedOutPathsReadNestedValues() {
        let result = run("main:\n- set:\n    order.id: 7\n    order.lines: [1, 2]\n")
        #expect(result.interpreter.lookup("order.id") == .int(7))
        #expect(result.interpreter.lookup("order.missing") == nil)
        #expect(result.interpreter.lookup("order.lines") == .list([.int(1), .int(2)]))
    }
}

@Suite struct ProjectFileTests {
    private func load(_ files: [String: String]) throws -> PayloadLoader {
        var zip = ZipBuilder()
        for (path, text) in files.sorted(by: { $0.key < $1.key }) { zip.add(path, text) }
        return try PayloadLoader(archive: ZipArchive(bytes: zip.build()))
    }

    @Test func concordYmlAddsFlowsArgumentsAndAnEntryPoint() throws {
        let loader = try load([
            "concord.yml": "entryPoint: start\nflows:\n  start:\n  - log: hi\nconfiguration:\n  arguments:\n    a: 1\n",
            "processes/more.yml": "other:\n- log: more\n",
            "flows/deep/nested.yaml": "third:\n- log: deep\n",
        ])
        #expect(Set(loader.flows.keys) == ["start", "other", "third"])
        #expect(loader.entryPoint == "start")
        #expect(loader.defaultArguments == .map(["a": .int(1)]))
    }

    @Test func dotConcordYmlAndVariablesArgumentsAndTheOlderEntryPointPlace() throws {
        let loader = try load([
            ".concord.yml": "variables:\n  arguments: {b: two}\n  entryPoint: legacy\n"
        ])
        #expect(loader.defaultArguments == .map(["b": .string("two")]))
        #expect(loader.entryPoint == "legacy")
    }

    @Test func aFlowDefinedInConcordYmlAndAProcessFileIsADuplicate() {
        #expect(throws: FlowDefinitionError.self) {
            try load(["concord.yml": "flows:\n  main:\n  - log: a\n", "processes/main.yml": "main:\n- log: b\n"])
        }
    }

    @Test func argumentsThatAreNotAMappingAreADefinitionError() {
        #expect(throws: FlowDefinitionError.self) {
            try load(["concord.yml": "configuration:\n  arguments: [1, 2]\n"])
        }
    }

    @Test func deepMergeLetsTheRequestWinKeyByKey() {
        let file: Value = .map(["db": .map(["host": .string("h"), "port": .int(5432)]), "mode": .string("file")])
        let request: Value = .map(["db": .map(["port": .int(6543)]), "extra": .bool(true)])
        #expect(
            PayloadLoader.merge(file, request)
                == .map([
                    "db": .map(["host": .string("h"), "port": .int(6543)]), "mode": .string("file"),
                    "extra": .bool(true),
                ]))
        // A non-map on either side: the request's value replaces the file's.
        #expect(PayloadLoader.merge(.map(["a": .int(1)]), .list([])) == .list([]))
    }
}

@Suite struct WithItemsTests {
    @Test func aMapRunsOncePerEntryWithKeyAndValue() {
        let result = run(
            "main:\n- call: each\n  withItems: ${sizes}\neach:\n- log: \"${item.key}=${item.value}\"\n",
            arguments: ["sizes": .map(["s": .int(1), "m": .int(2)])])
        #expect(result.log == ["s=1", "m=2"])
    }

    @Test func anythingElseIsAnErrorNamingWhatItGot() {
        let result = run("main:\n- call: each\n  withItems: ${missing}\neach:\n- log: x\n")
        #expect(result.failure?.message == "'withItems' must be a list or a map, got a null")
        #expect(result.log.isEmpty)
    }
}
