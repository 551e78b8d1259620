import Events
import Foundation

/// What the executor tells a runner: written to a file beside (not inside) the working folder.
struct RunnerRequest: Codable, Sendable {
    var instanceID: InstanceID
    var entryPoint: String?
    var arguments: [String: JSONValue]
    var out: [String]
    var workDir: String
    /// Applied by the runner to itself (and so to every script) before the flow starts.
    var limits: InstanceLimits?
}

/// One line of the runner's stdout, as JSON: log lines while it runs, then exactly one result.
enum RunnerMessage: Codable, Sendable {
    case log(LogLine)
    case steps([StepRecord])
    case result(RunnerResult)
}

/// How the flow ended.
struct RunnerResult: Codable, Sendable {
    /// `nil` when it finished; the reason when it failed.
    var error: String?
    /// The requested `out` variables.
    var out: [String: JSONValue]
}
