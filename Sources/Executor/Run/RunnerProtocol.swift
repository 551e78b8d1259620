import Events
import Foundation

/// What the executor tells a runner to run: one line of JSON on the runner's stdin.
struct RunnerRequest: Codable, Sendable {
    var instanceID: InstanceID
    var entryPoint: String?
    var arguments: [String: JSONValue]
    var out: [String]
    var workDir: String
    /// Applied by the runner to itself (and so to every script) before the flow starts.
    var limits: InstanceLimits?
}

/// One line of the runner's stdout, as JSON: per instance, `begin` once the runner has the request,
/// log lines and steps while it runs, then exactly one result.
enum RunnerMessage: Codable, Sendable {
    case begin(InstanceID)
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
    /// The runner waits for another instance (it started no process and has served fewer than its
    /// share); otherwise it exits after this message.
    var reusable = false
}
