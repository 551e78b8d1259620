import Foundation
import JSON
import Model
import Testing

@testable import FlowLanguage

/// `- suspend: event` captures where the flow stands as data; a new interpreter (another runner,
/// after a restart) resumes from the step after it, through every construct that holds steps.
@Suite struct SuspendTests {
    /// Runs until the flow suspends (or ends); the lines and the continuation, through JSON as it
    /// is stored.
    func runUntilSuspended(
        _ flows: [String: Flow], entry: String = "main", resuming: Continuation? = nil,
        extra: [String: JSONValue] = [:]
    ) throws -> (log: [String], suspended: Continuation?) {
        let collector = LogCollector()
        let interpreter = Interpreter(flows: flows, variables: [:], workDir: NSTemporaryDirectory()) {
            collector.lines.append($0.text)
        }
        if let resuming {
            interpreter.restoreVariables(
                resuming.variables.merging(extra) { $1 }, instanceID: InstanceID(), workDir: NSTemporaryDirectory())
        }
        do {
            try interpreter.run(entry: entry, resuming: resuming)
            return (collector.lines, nil)
        } catch Unwind.suspend(let continuation) {
            let stored = try JSONEncoder().encode(continuation)
            return (collector.lines, try JSONDecoder().decode(Continuation.self, from: stored))
        }
    }

    /// Suspends, resumes, and so on until the flow ends; every part's log, in order.
    func runThrough(_ yaml: String, events: [String], extra: [String: JSONValue] = [:]) throws -> [[String]] {
        let flows = try compile(yaml)
        var parts: [[String]] = []
        var (log, suspended) = try runUntilSuspended(flows)
        parts.append(log)
        var expected = events[...]
        while let continuation = suspended {
            #expect(continuation.event == expected.popFirst())
            (log, suspended) = try runUntilSuspended(flows, resuming: continuation, extra: extra)
            parts.append(log)
        }
        #expect(expected.isEmpty, "events never suspended on: \(expected)")
        return parts
    }

    @Test func aSuspendInACalledFlowResumesAfterItWithTheScopes() throws {
        let parts = try runThrough(
            """
            main:
            - set: {a: 1}
            - log: "before ${a}"
            - call: inner
              in: {x: 5}
              out: [y]
            - log: "after ${y}, a=${a}, approved=${approved}"
            inner:
            - log: "inner ${x}"
            - suspend: approval
            - set: {y: "${x + 1}"}
            - log: "inner again ${x}"
            """, events: ["approval"], extra: ["approved": .bool(true)])
        #expect(parts == [["before 1", "inner 5"], ["inner again 5", "after 6, a=1, approved=true"]])
    }

    @Test func loopsBranchesAndErrorBlocksResumeWhereTheyWere() throws {
        let parts = try runThrough(
            """
            main:
            - if: "${true}"
              then:
                - call: each
                  withItems: [a, b]
            - switch: "${'x'}"
              x:
                - try:
                    - suspend: "in-try"
                    - throw: boom
                  error:
                    - log: "caught ${lastError.message}"
                    - suspend: in-error
                    - log: "after the error suspend"
            - log: done
            each:
            - log: "item ${item}"
            - suspend: "item-${item}"
            - log: "item ${item} again"
            """, events: ["item-a", "item-b", "in-try", "in-error"])
        #expect(
            parts == [
                ["item a"], ["item a again", "item b"], ["item b again"], ["caught boom"],
                ["after the error suspend", "done"],
            ])
    }

    @Test func aFailureAfterAResumeIsStillHandledByItsErrorBlock() throws {
        let parts = try runThrough(
            """
            main:
            - call: risky
              error:
                - log: "handled ${lastError.message}"
            - log: end
            risky:
            - suspend: go
            - throw: late
            """, events: ["go"])
        #expect(parts == [[], ["handled late", "end"]])
    }

    /// A step with `retry` that suspends keeps its attempt count across the resume: it is retried
    /// as many times in all as it would have been without the suspension.
    @Test func aRetriedStepKeepsItsAttemptsAcrossAResume() throws {
        let flows = try compile(
            """
            main:
            - call: flaky
              retry: {times: 1, delay: 0}
            - log: never
            flaky:
            - log: enter
            - suspend: e
            - throw: boom
            """)
        let first = try runUntilSuspended(flows)
        #expect(first.log == ["enter"])
        let (log, suspended) = try runUntilSuspended(flows, resuming: try #require(first.suspended) as Continuation)
        #expect(log.last == "enter" && log.count == 2, "\(log)")
        let last = try #require(suspended)
        #expect {
            _ = try runUntilSuspended(flows, resuming: last)
        } throws: { error in
            (error as? FlowFailure)?.message == "boom"
        }
    }

    @Test func aContinuationThatDoesNotFitTheFlowsIsRefused() throws {
        let flows = try compile("main:\n- suspend: e\n- log: x\n")
        let bad = Continuation(event: "e", frames: [.step(7)], variables: [:], entry: "main")
        #expect {
            _ = try runUntilSuspended(flows, resuming: bad)
        } throws: { error in
            (error as? FlowFailure)?.message.contains("cannot be resumed") == true
        }
    }

    @Test func suspendIsRefusedWhereItCannotBeResumed() throws {
        let flows = try compile("main:\n- suspend: e\n")
        let interpreter = Interpreter(flows: flows, variables: [:], workDir: NSTemporaryDirectory()) { _ in }
        interpreter.suspendRefusal = { "a process the flow started still runs (pid 42)" }
        #expect {
            try interpreter.run(entry: "main")
        } throws: { error in
            (error as? FlowFailure)?.message == "cannot suspend: a process the flow started still runs (pid 42)"
        }
        #expect(throws: FlowDefinitionError.self) { try compile("main:\n- suspend: \n") }
    }
}
