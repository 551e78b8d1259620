import Foundation
import JSON
import Model
import Testing

@testable import FlowLanguage

/// `- task: concord` in the interpreter: what it asks its runner to start, the result it gives
/// `out`, and the wait for a `sync` child as a suspension completed at the same step on resume.
@Suite struct ConcordTaskTests {
    final class Starts: @unchecked Sendable {
        // @unchecked: the interpreter is single-threaded.
        var requests: [ChildStart] = []
        let id = InstanceID()
    }

    /// Runs until the flow ends or suspends; the log, the continuation, and the failure.
    func run(
        _ yaml: String, starts: Starts, resuming: (Continuation, ChildOutcome)? = nil,
        refusal: String? = nil
    ) throws -> (log: [String], suspended: Continuation?, failure: FlowFailure?) {
        let flows = try compile(yaml)
        let collector = LogCollector()
        let interpreter = Interpreter(flows: flows, variables: [:], workDir: NSTemporaryDirectory()) {
            collector.lines.append($0.text)
        }
        interpreter.startChild = { start in
            starts.requests.append(start)
            return starts.id
        }
        interpreter.suspendRefusal = { refusal }
        if let (continuation, outcome) = resuming {
            interpreter.restoreVariables(
                continuation.variables, instanceID: InstanceID(), workDir: NSTemporaryDirectory())
            interpreter.resumedChild = outcome
        }
        do {
            try interpreter.run(entry: "main", resuming: resuming?.0)
            return (collector.lines, nil, nil)
        } catch Unwind.suspend(let continuation) {
            let stored = try JSONDecoder().decode(Continuation.self, from: try JSONEncoder().encode(continuation))
            return (collector.lines, stored, nil)
        } catch let failure as FlowFailure {
            return (collector.lines, nil, failure)
        }
    }

    @Test func anAsyncStartGivesTheChildsIdAndGoesOn() throws {
        let starts = Starts()
        let (log, suspended, failure) = try run(
            """
            main:
            - set: {n: 3}
            - task: concord
              in:
                action: start
                entryPoint: work
                arguments: {count: "${n}", fixed: a}
                tags: nightly
              out: job
            - log: "id=${job.id} ids=${job.ids[0]} jobs=${jobs[0]}"
            """, starts: starts)
        #expect(failure == nil && suspended == nil)
        #expect(
            starts.requests == [
                ChildStart(
                    entryPoint: "work", arguments: ["count": .int(3), "fixed": .string("a")], tags: ["nightly"])
            ])
        let id = starts.id.description
        #expect(log == ["Started a child process: \(id)", "id=\(id) ids=\(id) jobs=\(id)"])
    }

    @Test func aSyncStartWaitsSuspendedAndCompletesAtTheSameStep() throws {
        let starts = Starts()
        let yaml = """
            main:
            - log: before
            - task: concord
              in: {action: fork, entryPoint: work, sync: true, outVars: [answer]}
              out: job
            - log: "answer=${job.answer} by ${job.id}"
            """
        let first = try run(yaml, starts: starts)
        let continuation = try #require(first.suspended)
        #expect(continuation.event == "child:\(starts.id)")
        #expect(starts.requests.first?.sync == true && starts.requests.first?.fork == true)
        #expect(starts.requests.first?.out == ["answer"])

        let outcome = ChildOutcome(id: starts.id, status: .finished, out: ["answer": .int(42)], error: nil)
        let second = try run(yaml, starts: starts, resuming: (continuation, outcome))
        #expect(second.failure == nil && second.suspended == nil)
        #expect(second.log == ["answer=42 by \(starts.id)"])
        #expect(starts.requests.count == 1, "the resume does not start it again")
    }

    @Test func aChildThatDidNotFinishFailsTheStepUnlessIgnored() throws {
        let starts = Starts()
        let yaml = """
            main:
            - task: concord
              in: {action: start, entryPoint: work, sync: true, ignoreFailures: "${lenient}"}
              out: job
            - log: "went on with ${job.id}"
            """
        let outcome = ChildOutcome(id: starts.id, status: .timedOut, out: [:], error: "too slow")
        var continuation = try #require(try run(yaml, starts: starts).suspended)
        continuation.variables["lenient"] = .bool(false)
        let strict = try run(yaml, starts: starts, resuming: (continuation, outcome))
        #expect(strict.failure?.message == "Child process \(starts.id) TIMED_OUT (error: too slow)")
        #expect(strict.log.isEmpty)

        continuation.variables["lenient"] = .bool(true)
        let lenient = try run(yaml, starts: starts, resuming: (continuation, outcome))
        #expect(lenient.failure == nil)
        #expect(lenient.log.last == "went on with \(starts.id)")
    }

    /// A sync start the flow could not wait for is refused before any child exists.
    @Test func aSyncStartThatCannotSuspendStartsNothing() throws {
        let starts = Starts()
        let result = try run(
            "main:\n- task: concord\n  in: {action: start, sync: true}\n", starts: starts,
            refusal: "a process the flow started still runs (pid 7)")
        #expect(starts.requests.isEmpty)
        #expect(result.failure?.message.contains("cannot now: a process the flow started still runs") == true)
    }

    @Test(arguments: [
        ("in: {action: kill}", "action 'kill' is not supported"),
        ("in: {sync: true}", "needs an 'action'"),
        ("in: {action: start, project: p}", "'project' is not supported"),
        ("in: {action: start, arguments: [1]}", "'arguments' must be a mapping"),
        ("in: {action: start, outVars: [{a: 1}]}", "'outVars' must be a list of names"),
        ("in: {action: start, entryPoint: ''}", "'entryPoint' must be a flow name"),
    ])
    func badParametersFailTheStepAndStartNothing(_ input: String, _ message: String) throws {
        let starts = Starts()
        let result = try run("main:\n- task: concord\n  \(input)\n", starts: starts)
        #expect(starts.requests.isEmpty)
        #expect(result.failure?.message.contains(message) == true, "\(String(describing: result.failure))")
    }

    /// A step with `retry` that suspended is done on resume, not suspended again (the suspend
    /// step itself, and a sync child's step, completed inside the retry).
    @Test func aRetriedSuspendIsNotRepeatedOnResume() throws {
        let flows = try compile("main:\n- suspend: go\n  retry: {times: 2, delay: 0}\n- log: after\n")
        let interpreter = Interpreter(flows: flows, variables: [:], workDir: NSTemporaryDirectory()) { _ in }
        var continuation: Continuation?
        do { try interpreter.run(entry: "main") } catch Unwind.suspend(let c) { continuation = c }
        let suspended = try #require(continuation)
        let collector = LogCollector()
        let resumed = Interpreter(flows: flows, variables: [:], workDir: NSTemporaryDirectory()) {
            collector.lines.append($0.text)
        }
        try resumed.run(entry: "main", resuming: suspended)
        #expect(collector.lines == ["after"])
    }
}
