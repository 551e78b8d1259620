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

    /// Runs `entry` to its end. Throws `FlowFailure` when it fails.
    package func run(entry: String) throws {
        do {
            try callFlow(named: entry, at: nil)
        } catch Unwind.exitProcess {
            return
        } catch Unwind.returnFromFlow {
            return
        }
    }

    /// Makes the working folder ready (once) for a step that reads or runs files in it.
    func ensureWorkDir() throws {
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

    func callFlow(named name: String, at location: SourceLocation?) throws {
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
            try execute(flow.steps)
        } catch Unwind.returnFromFlow {
            return
        }
    }

    func execute(_ steps: [Step]) throws {
        for step in steps { try executeWithRetry(step) }
    }

    private func executeWithRetry(_ step: Step) throws {
        guard let retry = step.retry else { return try executeLocated(step) }
        let times = Int(try number(resolve(retry.times), "retry.times"))
        var delay = try number(resolve(retry.delayMillis), "retry.delay")
        var attempt = 0
        while true {
            do {
                return try executeLocated(step)
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
    private func executeLocated(_ step: Step) throws {
        guard let onStep else { return try executeLocatedUnrecorded(step) }
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
            try executeLocatedUnrecorded(step)
        } catch let unwind as Unwind {
            throw unwind
        } catch {
            outcome = .failed
            throw error
        }
    }

    private func executeLocatedUnrecorded(_ step: Step) throws {
        do {
            try executeStep(step)
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

    private func executeStep(_ step: Step) throws {
        switch step.kind {
        case .expr(let template, let out, let error):
            try handling(error) {
                let value = try template.evaluate(self)
                if let out { assign(out, value) }
            }
        case .log(let value):
            log(.info, try resolve(value).interpolated)
        case .call(let target, let input, let out, let withItems, let error):
            try handling(error) {
                if let withItems {
                    let items = try resolve(withItems)
                    let list: [Value]
                    switch items {
                    case .list(let values): list = values
                    // As the original server did: a map runs once per entry, `item.key` and `item.value`.
                    case .map(let map): list = map.keys.map { .map(["key": .string($0), "value": map[$0]!]) }
                    default: throw FlowFailure(message: "'withItems' must be a list or a map, got a \(items.typeName)")
                    }
                    for item in list { try call(target, input: input, out: out, item: item, at: step.location) }
                } else {
                    try call(target, input: input, out: out, item: nil, at: step.location)
                }
            }
        case .ifThen(let condition, let then, let otherwise):
            try execute(Evaluator.truthy(try resolve(condition)) ? then : otherwise)
        case .switchConditions(let branches):
            for branch in branches where Evaluator.truthy(try resolve(branch.condition)) {
                try execute(branch.steps)
                return
            }
        case .switchValue(let value, let cases, let otherwise):
            let key = try resolve(value).interpolated
            if let match = cases.first(where: { $0.key == key }) {
                try execute(match.steps)
            } else if let otherwise {
                try execute(otherwise)
            }
        case .group(let steps, let error):
            try handling(error) { try execute(steps) }
        case .subprocess(let steps, let handlers):
            do {
                try execute(steps)
            } catch let failure as FlowFailure {
                guard let handler = handlers.first(where: { $0.ref == nil || $0.ref == failure.errorRef }) else {
                    throw failure
                }
                scope.values["lastError"] = failure.asValue
                try call(handler.call, input: handler.input, out: [], item: nil, at: step.location)
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
        case .task(let name, let input, let out):
            let result = try BuiltinTasks.runStep(name, input: try input.map(resolve), in: self)
            if let out { assign(out, result) }
        case .script(let language, let body, let path):
            try ScriptRunner.run(language: language, body: body, path: path, in: self)
        }
    }

    /// Runs `body`; with an `error` block, a failure runs the block (with `lastError` set) and
    /// execution continues after the step.
    private func handling(_ errorSteps: [Step]?, _ body: () throws -> Void) throws {
        guard let errorSteps else { return try body() }
        do {
            try body()
        } catch let failure as FlowFailure {
            scope.values["lastError"] = failure.asValue
            try execute(errorSteps)
        } catch let error as ExpressionError {
            scope.values["lastError"] = FlowFailure(message: error.description).asValue
            try execute(errorSteps)
        }
    }

    private func call(_ target: Value, input: Value?, out: [String], item: Value?, at location: SourceLocation) throws {
        let name = try resolve(target).interpolated
        let caller = scope
        if let item { caller.values["item"] = item }
        guard let input else { return try callFlow(named: name, at: location) }
        let resolved = try resolve(input)
        guard case .map(let values) = resolved else {
            throw FlowFailure(message: "'in' must be a mapping of names to values, got a \(resolved.typeName)")
        }
        let callee = Scope(caller.values)
        for key in values.keys { callee.values[key] = values[key] }
        scope = callee
        defer { scope = caller }
        try callFlow(named: name, at: location)
        for name in out { caller.values[name] = callee.values[name] ?? .null }
    }
}
