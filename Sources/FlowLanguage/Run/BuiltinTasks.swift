import Foundation
import JSON
import Model

/// The built-in tasks of `FLOWS.md`: `log`, `sleep`, `resource`, `execution`, `throw`.
package enum BuiltinTasks {
    /// Names that resolve to a task object in expressions when no variable has that name.
    static let names: Set<String> = ["log", "sleep", "resource", "execution"]

    static func invoke(task: String, method: String, arguments: [Value], in interpreter: Interpreter) throws -> Value {
        switch (task, method) {
        case ("log", "info"), ("log", "warn"), ("log", "error"), ("log", "debug"):
            guard let message = arguments.last, arguments.count <= 2 else {
                throw FlowFailure(message: "log.\(method) takes a message, optionally after a logger name")
            }
            let level: LogLevel =
                method == "info" ? .info : method == "warn" ? .warn : method == "error" ? .error : .debug
            interpreter.log(level, message.interpolated)
            return .null
        case ("sleep", "ms"):
            guard arguments.count == 1, case .int(let ms) = try Evaluator.number(arguments[0], "sleep.ms") else {
                throw FlowFailure(message: "sleep.ms takes a number of milliseconds")
            }
            sleepMillis(ms)
            return .null
        case ("resource", "asString"):
            return .string(try readResource(arguments, interpreter))
        case ("resource", "asJson"):
            let text = try readResource(arguments, interpreter)
            do {
                return Value(json: try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)))
            } catch {
                throw FlowFailure(message: "resource.asJson: '\(arguments[0].interpolated)' is not valid JSON")
            }
        case ("execution", "getVariable"):
            guard arguments.count == 1 else { throw FlowFailure(message: "execution.getVariable takes a name") }
            return interpreter.variable(arguments[0].interpolated) ?? .null
        case ("execution", "setVariable"):
            guard arguments.count == 2 else {
                throw FlowFailure(message: "execution.setVariable takes a name and a value")
            }
            interpreter.assign(arguments[0].interpolated, arguments[1])
            return .null
        case ("execution", "hasVariable"):
            guard arguments.count == 1 else { throw FlowFailure(message: "execution.hasVariable takes a name") }
            return .bool(interpreter.variable(arguments[0].interpolated) != nil)
        default:
            throw FlowFailure(message: "task '\(task)' has no method '\(method)'")
        }
    }

    /// The step forms: `- log: msg`, `- sleep: ms`, `- throw: msg`, and `- task: name` with `in`.
    static func runStep(_ name: String, input: Value?, in interpreter: Interpreter) throws -> Value {
        let parameters: OrderedMap? = if case .map(let map) = input { map } else { nil }
        switch name {
        case "log":
            let message = parameters?["msg"] ?? parameters?["message"] ?? input ?? .null
            interpreter.log(.info, message.interpolated)
            return .null
        case "sleep":
            let duration = parameters?["duration"] ?? parameters?["ms"] ?? input ?? .int(0)
            guard case .int(let ms) = try Evaluator.number(duration, "sleep") else {
                throw FlowFailure(message: "sleep takes a number of milliseconds")
            }
            sleepMillis(ms)
            return .null
        case "throw":
            let message = (parameters?["exception"] ?? parameters?["message"] ?? input ?? .string("error")).interpolated
            var failure = FlowFailure(message: message, errorRef: message)
            if let payload = parameters?["payload"] { failure.cause = payload }
            throw failure
        default:
            throw FlowFailure(message: "unknown task '\(name)' (known tasks: log, sleep, throw)")
        }
    }

    private static func sleepMillis(_ ms: Int64) {
        guard ms > 0 else { return }
        var request = timespec(tv_sec: Int(ms / 1000), tv_nsec: Int(ms % 1000) * 1_000_000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    /// Reads a file inside the working folder; nothing outside it can be read.
    private static func readResource(_ arguments: [Value], _ interpreter: Interpreter) throws -> String {
        guard arguments.count == 1 else { throw FlowFailure(message: "resource takes one path") }
        let requested = arguments[0].interpolated
        try interpreter.ensureWorkDir()
        let root = URL(fileURLWithPath: interpreter.workDir).resolvingSymlinksInPath().path
        let candidate = requested.hasPrefix("/") ? requested : root + "/" + requested
        let resolved = URL(fileURLWithPath: candidate).standardizedFileURL.resolvingSymlinksInPath().path
        guard resolved == root || resolved.hasPrefix(root + "/") else {
            throw FlowFailure(message: "resource '\(requested)' is outside the process's working folder")
        }
        guard let data = FileManager.default.contents(atPath: resolved) else {
            throw FlowFailure(message: "resource '\(requested)' does not exist")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
