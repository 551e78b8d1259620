import JSON

/// Where a suspended flow stands (`- suspend: event`), as data: the path from the entry flow
/// down to the suspend step, with the variables of every scope on it. It is captured as the
/// suspension unwinds the interpreter (each construct puts its own frame in front) and a resume
/// walks it back down, on any runner, from the step after the suspend.
package struct Continuation: Sendable, Codable, Equatable {
    package enum Frame: Sendable, Codable, Equatable {
        /// Step `index` of the list being run.
        case step(Int)
        /// Inside a call of `flow`; `scope`: the callee's own variables when the call had `in`
        /// (without `in` it shares its caller's).
        case call(flow: String, scope: [String: JSONValue]?)
        /// Inside item `index` of a `withItems` call over `items`.
        case item(index: Int, items: [JSONValue])
        /// Inside a branch of an `if` (`then`, `else`), a `switch` (`case:N`, `default`), or a
        /// step with an `error:` block (`steps`, `error`).
        case branch(String)
        /// Inside attempt `attempt` of a step with `retry`, the next delay `delayMillis`.
        case retry(attempt: Int, delayMillis: Int64)
    }

    /// The event a resume must name.
    package var event: String
    /// From the entry flow down to the suspend step.
    package var frames: [Frame]
    /// The variables of the outermost scope.
    package var variables: [String: JSONValue]
    /// The entry flow.
    package var entry: String

    package init(event: String, frames: [Frame], variables: [String: JSONValue], entry: String) {
        self.event = event
        self.frames = frames
        self.variables = variables
        self.entry = entry
    }
}

/// A resume whose continuation does not fit the flows it resumes in (another payload, a damaged
/// state): refused, not guessed at.
struct ContinuationMismatch: Error, CustomStringConvertible {
    var description: String
}
