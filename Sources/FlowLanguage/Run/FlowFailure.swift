import Model

/// An error that ends a step: thrown by `throw`/`end: code`/`return: code`, or raised by an
/// expression, a task or a script. Handlers catch it; unhandled, it fails the process.
package struct FlowFailure: Error, CustomStringConvertible {
    /// The thrown text or error code as written, or the runtime error's message.
    package var message: String
    /// The error code, for `subprocess` handlers with `ref`.
    var errorRef: String?
    /// Where the failing step is.
    package var location: SourceLocation?
    /// The failing step's label or kind.
    package var step: String?
    /// What caused it, when known: a `throw` task's payload (kept as a value, so
    /// `${lastError.cause.code}` reads a field), a failed script's last line of output.
    var cause: Value?

    package init(
        message: String, errorRef: String? = nil, location: SourceLocation? = nil, step: String? = nil,
        cause: Value? = nil
    ) {
        self.message = message
        self.errorRef = errorRef
        self.location = location
        self.step = step
        self.cause = cause
    }

    package var description: String { message }

    /// `lastError` as flows see it.
    var asValue: Value {
        var map = OrderedMap()
        map["message"] = .string(message)
        if let errorRef { map["errorRef"] = .string(errorRef) }
        if let cause { map["cause"] = cause }
        return .map(map)
    }
}

/// Non-error ways out of a flow.
package enum Unwind: Error {
    /// `return` / `end:`: the current flow ends successfully.
    case returnFromFlow
    /// `exit`: the whole process ends successfully.
    case exitProcess
    /// `suspend`: the flow stops here, to go on from the next step when its event comes.
    case suspend(Continuation)
}
