import JSON
import Model

/// `- task: concord` with `in: {action: start | fork, ...}`, as the reference server's task reads
/// it: starts another flow of the instance's own payload as a child instance. The runner starts
/// it through its executor (`Interpreter.startChild`) and has its id back once it is recorded.
///
/// `sync: true` waits for the child without holding an executor: the flow suspends on the child's
/// end (`ChildStart.waitEvent`), the Scheduler resumes it with the child's outcome, and the step
/// completes then (`complete`): its result goes to `out`, and a child that did not finish fails the
/// step (unless `ignoreFailures`). The step's result, as the reference server's: `id` and `ids`,
/// and for a child waited for, its `outVars` at the top level and under its id.
enum ConcordTask {
    /// Keys of the reference server's task that name something Accord does not have: refused
    /// clearly rather than ignored (a child from another archive, another server).
    static let unsupported = [
        "payload", "project", "repo", "repoBranchOrTag", "repoCommitId", "baseUrl", "apiKey", "startAt",
        "attachments", "forks", "instances",
    ]

    struct Parameters {
        var start: ChildStart
        var ignoreFailures: Bool
    }

    static func parameters(_ input: Value?) throws -> Parameters {
        guard case .map(let p)? = input else {
            throw FlowFailure(message: "task 'concord' takes 'in' parameters (action, entryPoint, arguments, sync)")
        }
        let action = p["action"]?.interpolated ?? ""
        guard action == "start" || action == "fork" else {
            throw FlowFailure(
                message: action.isEmpty
                    ? "task 'concord' needs an 'action' (start or fork)"
                    : "task 'concord': action '\(action)' is not supported (start and fork are)")
        }
        if let key = unsupported.first(where: { p[$0] != nil && p[$0] != .null }) {
            throw FlowFailure(
                message: "task 'concord': '\(key)' is not supported: a child runs a flow of the instance's own payload")
        }
        var entryPoint: String?
        if let value = p["entryPoint"], value != .null {
            guard case .string(let name) = value, !name.isEmpty else {
                throw FlowFailure(message: "task 'concord': 'entryPoint' must be a flow name")
            }
            entryPoint = name
        }
        var arguments: [String: JSONValue] = [:]
        if let value = p["arguments"], value != .null {
            guard case .object(let members) = value.json else {
                throw FlowFailure(message: "task 'concord': 'arguments' must be a mapping, got a \(value.typeName)")
            }
            arguments = members
        }
        return Parameters(
            start: ChildStart(
                entryPoint: entryPoint, arguments: arguments, out: try names(p["outVars"], "outVars"),
                tags: try names(p["tags"], "tags"), sync: p["sync"].map(Evaluator.truthy) ?? false,
                fork: action == "fork"),
            ignoreFailures: p["ignoreFailures"].map(Evaluator.truthy) ?? false)
    }

    /// A list of strings, or one string (`tags: one`).
    private static func names(_ value: Value?, _ key: String) throws -> [String] {
        switch value {
        case nil, .null?: return []
        case .string(let one)?: return [one]
        case .list(let items)?:
            return try items.map {
                guard case .string(let name) = $0 else {
                    throw FlowFailure(message: "task 'concord': '\(key)' must be a list of names")
                }
                return name
            }
        default: throw FlowFailure(message: "task 'concord': '\(key)' must be a list of names")
        }
    }

    /// Runs the step: starts the child; returns the step's result, or suspends until the child ends.
    static func run(_ input: Value?, in interpreter: Interpreter) throws -> Value {
        let parameters = try parameters(input)
        guard let startChild = interpreter.startChild else {
            throw FlowFailure(message: "task 'concord': child processes cannot be started here")
        }
        // Waiting means suspending: refused before the child exists, not after.
        if parameters.start.sync, let refusal = interpreter.suspendRefusal?() {
            throw FlowFailure(message: "task 'concord': sync waits suspended, which the flow cannot now: \(refusal)")
        }
        let id = try startChild(parameters.start)
        interpreter.log(.info, "Started a child process: \(id)")
        interpreter.scope.values["jobs"] = .list([.string(id.description)])
        guard parameters.start.sync else { return result(id, out: nil) }
        throw Unwind.suspend(Continuation(event: ChildStart.waitEvent(for: id), frames: [], variables: [:], entry: ""))
    }

    /// Completes the step a flow suspended at, now that its child has ended.
    static func complete(_ input: Value?, in interpreter: Interpreter) throws -> Value {
        guard let outcome = interpreter.resumedChild else {
            throw ContinuationMismatch(description: "resumed at a 'concord' step without its child's outcome")
        }
        let parameters = try parameters(input)
        interpreter.scope.values["jobs"] = .list([.string(outcome.id.description)])
        if outcome.status != .finished {
            let reason = outcome.error.map { " (error: \($0))" } ?? ""
            let message = "Child process \(outcome.id) \(outcome.status.rawValue)\(reason)"
            guard parameters.ignoreFailures else { throw FlowFailure(message: message) }
            interpreter.log(.warn, "\(message), ignoring")
        }
        return result(outcome.id, out: outcome.out)
    }

    private static func result(_ id: InstanceID, out: [String: JSONValue]?) -> Value {
        var map = OrderedMap()
        map["id"] = .string(id.description)
        map["ids"] = .list([.string(id.description)])
        if let out {
            let values = Value(json: .object(out))
            map[id.description] = values
            for name in out.keys.sorted() { map[name] = Value(json: out[name]!) }
        }
        return .map(map)
    }
}
