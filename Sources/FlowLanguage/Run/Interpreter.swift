// Past 400 lines on purpose: `executeStep` is one switch over every step kind of FLOWS.md, beside the
// scope, retry and recording helpers each case uses. Cut by step kind, those helpers would be opened
// to other files, and how a step is located, retried and recorded would no longer read in one place.
// Variables and their scopes are in Interpreter+Variables.swift, tasks in BuiltinTasks.swift.

import Foundation
import Model

/// Runs flows step by step in one runner process. Single-threaded by design: one instance, one
/// runner, so there is nothing to share.
package final class Interpreter: EvaluationContext {
    /// Variables visible to a flow; `call` with `in` gets a copy, without `in` it shares the caller's.
    final class Scope {
        var values: [String: Value]
        init(_ values: [String: Value]) { self.values = values }
    }

    let flows: [String: Flow]
    let workDir: String
    let emit: (LogLine) -> Void
    var scope: Scope
    /// Called with every executed step as it completes (step events).
    package var onStep: ((StepRecord) -> Void)?
    /// Set once a step has started a process: its runner is then not given another instance.
    package var startedProcesses = false
    /// Makes and fills the working folder; run once, before the first step that needs files.
    package var prepareWorkDir: (() throws -> Void)?
    /// Why the flow cannot suspend now, if it cannot (a process it started still runs).
    package var suspendRefusal: (() -> String?)?
    /// Starts a child instance (`- task: concord`) and answers its id once it is recorded; nil
    /// where none can be started.
    package var startChild: ((ChildStart) throws -> InstanceID)?
    /// How the child the flow waited for ended, when it resumes because of that.
    package var resumedChild: ChildOutcome?
    private var currentFlow = ""
    private var templates: [String: Template] = [:]
    private var depth = 0
    static let maxDepth = 200

    package init(flows: [String: Flow], variables: [String: Value], workDir: String, emit: @escaping (LogLine) -> Void)
    {
        self.flows = flows
        self.workDir = workDir
        self.emit = emit
        self.scope = Scope(variables)
    }

    /// Runs `entry` to its end. Throws `FlowFailure` when it fails, `Unwind.suspend` with where it
    /// stands when it suspends. With `resuming`, goes on from the step after that suspend (the
    /// variables are the caller's to restore first).
    package func run(entry: String, resuming: Continuation? = nil) throws {
        do {
            if let resuming {
                try callFlow(named: resuming.entry, at: nil, resume: resuming.frames[...])
            } else {
                try callFlow(named: entry, at: nil)
            }
        } catch Unwind.exitProcess {
            return
        } catch Unwind.returnFromFlow {
            return
        } catch Unwind.suspend(var continuation) {
            continuation.entry = resuming?.entry ?? entry
            continuation.variables = variablesJSON
            throw Unwind.suspend(continuation)
        } catch let mismatch as ContinuationMismatch {
            throw FlowFailure(message: "the instance cannot be resumed: \(mismatch.description)", step: "resume")
        }
    }

    /// Runs `body`; a suspension inside it gets `frame` in front of its path.
    @inline(__always)
    func within<T>(_ frame: @autoclosure () -> Continuation.Frame, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch Unwind.suspend(var continuation) {
            continuation.frames.insert(frame(), at: 0)
            throw Unwind.suspend(continuation)
        }
    }

    /// The next frame of a resume path, which must be the kind `read` accepts.
    func pop<T>(_ path: inout ArraySlice<Continuation.Frame>, _ what: String, _ read: (Continuation.Frame) -> T?) throws
        -> T
    {
        guard let frame = path.popFirst(), let value = read(frame) else {
            throw ContinuationMismatch(description: "expected \(what) in the suspended position")
        }
        return value
    }

    /// Makes the working folder ready (once) for a step that reads or runs files in it.
    package func ensureWorkDir() throws {
        guard let prepare = prepareWorkDir else { return }
        prepareWorkDir = nil
        try prepare()
    }

    // MARK: - EvaluationContext

    package func variable(_ name: String) -> Value? { scope.values[name] }

    package func invoke(task: String, method: String, arguments: [Value]) throws -> Value {
        try BuiltinTasks.invoke(task: task, method: method, arguments: arguments, in: self)
    }

    func log(_ level: LogLevel, _ text: String) {
        emit(LogLine(at: .now(), level: level, text: text))
    }

    // MARK: - Values

    /// Evaluates every `${...}` inside a value (strings, and strings nested in lists and maps).
    func resolve(_ value: Value) throws -> Value {
        switch value {
        case .string(let text):
            guard Template.hasExpression(text) else { return value }
            return try template(text).evaluate(self)
        case .list(let items): return .list(try items.map(resolve))
        case .map(let map):
            var out = OrderedMap()
            for key in map.keys { out[key] = try resolve(map[key]!) }
            return .map(out)
        default: return value
        }
    }

    private func template(_ text: String) throws -> Template {
        if let cached = templates[text] { return cached }
        let parsed = try Template.parse(text)
        templates[text] = parsed
        return parsed
    }

    /// Assigns `path` (`a.b.c` assigns into nested maps, creating them).
    func assign(_ path: String, _ value: Value) {
        let parts = path.split(separator: ".").map(String.init)
        guard parts.count > 1 else {
            scope.values[path] = value
            return
        }
        func set(_ current: Value?, _ rest: ArraySlice<String>) -> Value {
            guard let key = rest.first else { return value }
            var map: OrderedMap
            if case .map(let existing) = current { map = existing } else { map = OrderedMap() }
            map[key] = set(map[key], rest.dropFirst())
            return .map(map)
        }
        scope.values[parts[0]] = set(scope.values[parts[0]], parts.dropFirst())
    }

    /// Reads a dotted path from the variables (`out` of `_main.json`).
    package func lookup(_ path: String) -> Value? {
        let parts = path.split(separator: ".").map(String.init)
        guard let first = parts.first, var current = scope.values[first] else { return nil }
        for part in parts.dropFirst() {
            guard case .map(let map) = current, let next = map[part] else { return nil }
            current = next
        }
        return current
    }

    // MARK: - Flows and steps

    func callFlow(named name: String, at location: SourceLocation?, resume: ArraySlice<Continuation.Frame>? = nil)
        throws
    {
        guard let flow = flows[name] else {
            let known = flows.keys.sorted().prefix(20).joined(separator: ", ")
            throw FlowFailure(
                message: "flow '\(name)' is not defined (defined flows: \(known.isEmpty ? "none" : known))",
                location: location, step: "call")
        }
        depth += 1
        let caller = currentFlow
        currentFlow = name
        defer {
            depth -= 1
            currentFlow = caller
        }
        guard depth <= Interpreter.maxDepth else {
            throw FlowFailure(
                message:
                    "calls nest deeper than \(Interpreter.maxDepth) flows (is '\(name)' calling itself without end?)",
                location: location, step: "call")
        }
        do {
            try execute(flow.steps, resume: resume)
        } catch Unwind.returnFromFlow {
            return
        }
    }

    /// Runs `steps`; with `resume`, from the step its first frame names (inside it when more frames
    /// follow, after it when that step is the suspend itself).
    func execute(_ steps: [Step], resume: ArraySlice<Continuation.Frame>? = nil) throws {
        var start = 0
        if var path = resume {
            let index = try pop(&path, "a step") { if case .step(let i) = $0 { i } else { nil } }
            guard steps.indices.contains(index) else {
                throw ContinuationMismatch(
                    description: "step \(index + 1) is not in the flow (was the payload changed?)")
            }
            // Inside the step; or at the step itself when it completes on resume (a child waited for).
            if !path.isEmpty || steps[index].completesOnResume {
                try within(.step(index)) { try executeWithRetry(steps[index], resume: path) }
            }
            start = index + 1
        }
        for index in steps.indices.dropFirst(start) {
            try within(.step(index)) { try executeWithRetry(steps[index]) }
        }
    }

    private func executeWithRetry(_ step: Step, resume: ArraySlice<Continuation.Frame>? = nil) throws {
        var path = resume
        guard let retry = step.retry else { return try executeLocated(step, resume: path) }
        let times = Int(try number(resolve(retry.times), "retry.times"))
        var delay = try number(resolve(retry.delayMillis), "retry.delay")
        var attempt = 0
        if path != nil {
            (attempt, delay) = try pop(&path!, "a retry") {
                if case .retry(let a, let d) = $0 { (a, d) } else { nil }
            }
        }
        while true {
            do {
                defer { path = nil }
                let (current, next) = (attempt, delay)
                return try within(.retry(attempt: current, delayMillis: next)) {
                    try executeLocated(step, resume: path)
                }
            } catch let failure as FlowFailure {
                guard attempt < times else { throw failure }
                attempt += 1
                log(
                    .warn,
                    "step '\(step.displayName)' at \(step.location) failed (\(failure.message)); retry \(attempt) of \(times) in \(delay) ms"
                )
                if delay > 0 { Thread.sleep(forTimeInterval: Double(delay) / 1000) }
                delay *= 2
            }
        }
    }

    private func number(_ value: Value, _ what: String) throws -> Int64 {
        guard case .int(let n) = try Evaluator.number(value, what) else {
            throw FlowFailure(message: "'\(what)' must be a whole number")
        }
        return n
    }

    /// Runs one step; any error that is not already a located `FlowFailure` gets this step's place.
    private func executeLocated(_ step: Step, resume: ArraySlice<Continuation.Frame>? = nil) throws {
        guard let onStep else { return try executeLocatedUnrecorded(step, resume: resume) }
        let startedAt = Timestamp.now()
        let started = ContinuousClock.now
        var outcome = StepOutcome.ok
        defer {
            let elapsed = started.duration(to: .now).components
            onStep(
                StepRecord(
                    flow: currentFlow, step: step.displayName, file: step.location.file, line: step.location.line,
                    column: step.location.column, startedAt: startedAt,
                    durationMicros: elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000,
                    outcome: outcome))
        }
        do {
            try executeLocatedUnrecorded(step, resume: resume)
        } catch let unwind as Unwind {
            throw unwind
        } catch {
            outcome = .failed
            throw error
        }
    }

    private func executeLocatedUnrecorded(_ step: Step, resume: ArraySlice<Continuation.Frame>?) throws {
        do {
            try executeStep(step, resume: resume)
        } catch var failure as FlowFailure {
            if failure.location == nil {
                failure.location = step.location
                failure.step = step.displayName
            }
            throw failure
        } catch let error as ExpressionError {
            throw FlowFailure(message: error.description, location: step.location, step: step.displayName)
        }
    }

    private func executeStep(_ step: Step, resume: ArraySlice<Continuation.Frame>?) throws {
        var path = resume
        switch step.kind {
        case .expr(let template, let out, let error):
            try handling(error, resume: path) { _ in
                let value = try template.evaluate(self)
                if let out { assign(out, value) }
            }
        case .log(let value):
            log(.info, try resolve(value).interpolated)
        case .call(let target, let input, let out, let withItems, let error):
            try handling(error, resume: path) { resume in
                var path = resume
                guard let withItems else {
                    return try call(target, input: input, out: out, item: nil, at: step.location, resume: path)
                }
                var list: [Value]
                var first = 0
                if path != nil {
                    let (index, items) = try pop(&path!, "an item") {
                        if case .item(let i, let items) = $0 { (i, items) } else { nil }
                    }
                    (list, first) = (items.map(Value.init(json:)), index)
                } else {
                    let items = try resolve(withItems)
                    switch items {
                    case .list(let values): list = values
                    // As the original server did: a map runs once per entry, `item.key` and `item.value`.
                    case .map(let map): list = map.keys.map { .map(["key": .string($0), "value": map[$0]!]) }
                    default: throw FlowFailure(message: "'withItems' must be a list or a map, got a \(items.typeName)")
                    }
                }
                for index in list.indices.dropFirst(first) {
                    let resumeHere = index == first ? path : nil
                    try within(.item(index: index, items: list.map(\.json))) {
                        try call(
                            target, input: input, out: out, item: list[index], at: step.location, resume: resumeHere)
                    }
                }
            }
        case .ifThen(let condition, let then, let otherwise):
            if path != nil {
                let branch = try pop(&path!, "an if branch") { if case .branch(let b) = $0 { b } else { nil } }
                return try within(.branch(branch)) { try execute(branch == "then" ? then : otherwise, resume: path) }
            }
            let taken = Evaluator.truthy(try resolve(condition))
            try within(.branch(taken ? "then" : "else")) { try execute(taken ? then : otherwise) }
        case .switchConditions(let branches):
            if path != nil {
                let branch = try pop(&path!, "a switch case") { if case .branch(let b) = $0 { b } else { nil } }
                guard let index = Int(branch.dropFirst(5)), branch.hasPrefix("case:"), branches.indices.contains(index)
                else { throw ContinuationMismatch(description: "no switch case '\(branch)'") }
                return try within(.branch(branch)) { try execute(branches[index].steps, resume: path) }
            }
            for (index, branch) in branches.enumerated() where Evaluator.truthy(try resolve(branch.condition)) {
                try within(.branch("case:\(index)")) { try execute(branch.steps) }
                return
            }
        case .switchValue(let value, let cases, let otherwise):
            if path != nil {
                let branch = try pop(&path!, "a switch case") { if case .branch(let b) = $0 { b } else { nil } }
                if branch == "default", let otherwise {
                    return try within(.branch(branch)) { try execute(otherwise, resume: path) }
                }
                guard let index = Int(branch.dropFirst(5)), branch.hasPrefix("case:"), cases.indices.contains(index)
                else { throw ContinuationMismatch(description: "no switch case '\(branch)'") }
                return try within(.branch(branch)) { try execute(cases[index].steps, resume: path) }
            }
            let key = try resolve(value).interpolated
            if let index = cases.firstIndex(where: { $0.key == key }) {
                try within(.branch("case:\(index)")) { try execute(cases[index].steps) }
            } else if let otherwise {
                try within(.branch("default")) { try execute(otherwise) }
            }
        case .group(let steps, let error):
            try handling(error, resume: path) { try execute(steps, resume: $0) }
        case .subprocess(let steps, let handlers):
            do {
                try execute(steps, resume: path)
            } catch let failure as FlowFailure {
                guard let handler = handlers.first(where: { $0.ref == nil || $0.ref == failure.errorRef }) else {
                    throw failure
                }
                scope.values["lastError"] = failure.asValue
                do {
                    try call(handler.call, input: handler.input, out: [], item: nil, at: step.location)
                } catch Unwind.suspend {
                    throw FlowFailure(
                        message: "a flow cannot suspend inside a subprocess error handler (it ends the group's failure)"
                    )
                }
                throw failure
            }
        case .set(let assignments):
            for (path, value) in assignments { assign(path, try resolve(value)) }
        case .returnFlow:
            throw Unwind.returnFromFlow
        case .exitProcess:
            throw Unwind.exitProcess
        case .fail(let value):
            let code = try resolve(value).interpolated
            throw FlowFailure(message: code, errorRef: code, location: step.location, step: step.displayName)
        case .task("concord", let input, let out):
            // Resumed at this step (an empty path): the child it waited for has ended.
            let parameters = try input.map(resolve)
            let result =
                path != nil
                ? try ConcordTask.complete(parameters, in: self) : try ConcordTask.run(parameters, in: self)
            if let out { assign(out, result) }
        case .task(let name, let input, let out):
            let result = try BuiltinTasks.runStep(name, input: try input.map(resolve), in: self)
            if let out { assign(out, result) }
        case .script(let language, let body, let path):
            try ScriptRunner.run(language: language, body: body, path: path, in: self)
        case .suspend(let value):
            // Resumed at this very step (inside a retry): it is done.
            if path != nil { return }
            let event = try resolve(value).interpolated
            guard !event.isEmpty else { throw FlowFailure(message: "'suspend' needs a non-empty event name") }
            if let refusal = suspendRefusal?() { throw FlowFailure(message: "cannot suspend: \(refusal)") }
            throw Unwind.suspend(Continuation(event: event, frames: [], variables: [:], entry: ""))
        }
    }

    /// Runs `body`; with an `error` block, a failure runs the block (with `lastError` set) and
    /// execution continues after the step. Resuming (`resume`), the first frame says which of the
    /// two was suspended; the rest of the path is left in `resume` for `body`.
    private func handling(
        _ errorSteps: [Step]?, resume: ArraySlice<Continuation.Frame>?,
        _ body: (ArraySlice<Continuation.Frame>?) throws -> Void
    ) throws {
        guard let errorSteps else { return try body(resume) }
        var path = resume
        var inBody = true
        if path != nil {
            let branch = try pop(&path!, "a step or its error block") { if case .branch(let b) = $0 { b } else { nil } }
            inBody = branch == "steps"
        }
        if !inBody {
            let rest = path
            return try within(.branch("error")) { try execute(errorSteps, resume: rest) }
        }
        do {
            let rest = path
            try within(.branch("steps")) { try body(rest) }
        } catch let failure as FlowFailure {
            scope.values["lastError"] = failure.asValue
            try within(.branch("error")) { try execute(errorSteps) }
        } catch let error as ExpressionError {
            scope.values["lastError"] = FlowFailure(message: error.description).asValue
            try within(.branch("error")) { try execute(errorSteps) }
        }
    }

    private func call(
        _ target: Value, input: Value?, out: [String], item: Value?, at location: SourceLocation,
        resume: ArraySlice<Continuation.Frame>? = nil
    ) throws {
        let caller = scope
        if let item { caller.values["item"] = item }
        var path = resume
        let name: String
        let callee: Scope?
        if path != nil {
            // Resuming: the flow and the callee's variables as they were, not evaluated again.
            let (flow, saved) = try pop(&path!, "a call") {
                if case .call(let flow, let scope) = $0 { (flow, scope) } else { nil }
            }
            name = flow
            callee = saved.map { Scope($0.mapValues(Value.init(json:))) }
        } else {
            name = try resolve(target).interpolated
            if let input {
                let resolved = try resolve(input)
                guard case .map(let values) = resolved else {
                    throw FlowFailure(message: "'in' must be a mapping of names to values, got a \(resolved.typeName)")
                }
                let made = Scope(caller.values)
                for key in values.keys { made.values[key] = values[key] }
                callee = made
            } else {
                callee = nil
            }
        }
        guard let callee else {
            return try within(.call(flow: name, scope: nil)) { try callFlow(named: name, at: location, resume: path) }
        }
        scope = callee
        defer { scope = caller }
        try within(.call(flow: name, scope: callee.values.mapValues(\.json))) {
            try callFlow(named: name, at: location, resume: path)
        }
        for name in out { caller.values[name] = callee.values[name] ?? .null }
    }
}
