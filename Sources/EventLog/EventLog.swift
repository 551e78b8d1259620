import Model
import Support

/// The durable, append-only sequence of events: the truth every read model folds.
///
/// Appends are ordered by call: `append` assigns sequence numbers before it returns, so the order in
/// which a single writer calls it is the order in the log. Durability is awaited separately
/// (`AppendTicket.durable()`), which lets concurrent appends share one fsync.
package protocol EventLog: Sendable {
    /// Assigns sequence numbers (in call order) and queues the events for the next durable write.
    func append(_ drafts: [EventEnvelope]) -> AppendTicket

    /// The highest sequence number that is durable (0 for an empty log).
    var durableHead: UInt64 { get }

    /// Durable events with `seq > after`, oldest first, at most `limit`.
    func read(after: UInt64, limit: Int) throws -> [EventEnvelope]

    /// Returns once every event up to `seq` is durable; throws if the log fails first.
    func waitDurable(_ seq: UInt64) async throws

    /// The durable events with these sequence numbers, in the given order; unknown ones are skipped.
    func read(seqs: [UInt64]) throws -> [EventEnvelope]
}

/// The result of `EventLog.append`: the numbered events, and a way to wait until they are on disk.
package struct AppendTicket: Sendable {
    /// The events with their sequence numbers.
    package let envelopes: [EventEnvelope]
    let promise: Promise<Void>

    package init(envelopes: [EventEnvelope], promise: Promise<Void>) {
        self.envelopes = envelopes
        self.promise = promise
    }

    /// Returns once the events are durable; throws when they could not be written (they are then not
    /// in the log, and neither is anything appended after them).
    package func durable() async throws { try await promise.value() }
}

/// Why the log refused or lost an append.
package struct EventLogError: Error, CustomStringConvertible {
    /// What happened, for the operator's log.
    package var description: String

    package init(_ description: String) { self.description = description }
}
