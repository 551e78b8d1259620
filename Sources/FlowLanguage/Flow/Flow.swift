import Model

/// A named list of steps from a flow file.
package struct Flow: Sendable {
    var name: String
    var steps: [Step]
    package var location: SourceLocation
}

/// `retry: {times, delay}` on any step.
package struct RetryPolicy: Sendable {
    var times: Value
    var delayMillis: Value
}

/// One step, with where it was written and its optional label and retry policy.
package struct Step: Sendable {
    var kind: StepKind
    package var location: SourceLocation
    var label: String?
    var retry: RetryPolicy?

    /// How the step is named in logs and errors: its `name`, else its kind.
    var displayName: String { label ?? kind.keyword }

    /// A step that a suspension ended at and that does its last part when the flow resumes (a
    /// `concord` task waiting for its child); every other step is done once the flow suspended.
    var completesOnResume: Bool {
        if case .task("concord", _, _) = kind { return true }
        return false
    }
}

/// An `errors:` handler of a `subprocess` group.
package struct ErrorHandler: Sendable {
    var ref: String?
    var call: Value
    var input: Value?
}

/// Every step form of the three syntax generations, told apart by their keys.
package indirect enum StepKind: Sendable {
    case expr(Template, out: String?, error: [Step]?)
    case log(Value)
    case call(Value, input: Value?, out: [String], withItems: Value?, error: [Step]?)
    case ifThen(Value, then: [Step], otherwise: [Step])
    case switchConditions([(condition: Value, steps: [Step])])
    case switchValue(Value, cases: [(key: String, steps: [Step])], otherwise: [Step]?)
    case group([Step], error: [Step]?)
    case subprocess([Step], handlers: [ErrorHandler])
    case set([(path: String, value: Value)])
    case returnFlow
    case exitProcess
    case fail(Value)
    case task(String, input: Value?, out: String?)
    case script(language: String, body: String?, path: String?)
    /// `suspend: event`: stop, durably, until the instance is resumed with that event.
    case suspend(Value)

    var keyword: String {
        switch self {
        case .expr: "expr"
        case .log: "log"
        case .call: "call"
        case .ifThen: "if"
        case .switchConditions, .switchValue: "switch"
        case .group: "try"
        case .subprocess: "subprocess"
        case .set: "set"
        case .returnFlow: "return"
        case .exitProcess: "exit"
        case .fail: "throw"
        case .task(let name, _, _): name
        case .script: "script"
        case .suspend: "suspend"
        }
    }
}

/// A problem in a flow definition, with its place.
package struct FlowDefinitionError: Error, CustomStringConvertible {
    package var location: SourceLocation
    var reason: String

    package var description: String { "\(location): \(reason)" }
}
