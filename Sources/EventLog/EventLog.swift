import Foundation
import Model
import Support

/// The durable, append-only sequence of events: the truth every read model folds.
///
/// Appends are ordered by call: `append` assigns sequence numbers before it returns, so the order in
/// which a single writer calls it is the order in the log. Durability is awaited separately
/// (`AppendTicket.durable()`), which lets concurrent appends share one fsync.
package protocol EventLog: AnyObject, Sendable {
    /// Assigns sequence numbers (in call order) and queues the events for the next durable write.
    func append(_ drafts: [EventEnvelope]) -> AppendTicket

    /// The highest sequence number that is durable (0 for an empty log).
    var durableHead: UInt64 { get }
    /// The writer's epoch: raised by every takeover of a shared log (PostgreSQL), always 0 for a
    /// log that one Scheduler owns (files). Peers given every Scheduler send to the highest.
    var epoch: UInt64 { get }

    /// Returns once every event up to `seq` is durable; throws if the log fails first.
    func waitDurable(_ seq: UInt64) async throws

    /// Durable events with `seq > after`, oldest first, at most `limit`.
    func read(after: UInt64, limit: Int) async throws -> [EventEnvelope]

    /// The same events as `read(after:limit:)`, each as its JSON is stored: what a catch-up sends
    /// on, without decoding and encoding every event again.
    func readStored(after: UInt64, limit: Int) async throws -> [StoredEvent]

    /// The durable events with these sequence numbers, in the given order; unknown ones are skipped.
    func read(seqs: [UInt64]) async throws -> [EventEnvelope]

    /// Calls `body` with every durable event from `firstSeq` on, in order.
    func scan(from firstSeq: UInt64, _ body: (EventEnvelope) throws -> Void) async throws

    /// Called with each durable batch, in log order, before any appender is told its events are
    /// durable: the place to publish committed events in order. Each envelope comes with its JSON
    /// exactly as stored, so publishing need not encode it again.
    func onCommit(_ hook: @escaping @Sendable (_ envelopes: [EventEnvelope], _ json: [ArraySlice<UInt8>]) -> Void)

    /// Why the log refuses appends, when a write has failed and `recover()` has not yet succeeded.
    var failed: EventLogError? { get }

    /// Failed writes so far: a reader that saw the same count before and after knows no event it
    /// was shown has been refused since.
    var failures: Int { get }

    /// After a failed write: checks that the log can take writes again and where it really ends
    /// (a write that failed may or may not have landed), then accepts appends again. Throws,
    /// leaving the log refusing appends, while the fault persists; throws `EventLogFenced` when
    /// another writer has taken the log over, which no retry mends.
    func recover() async throws

    /// What the writer has done so far, for metrics and benchmarks.
    var appendStats: AppendStats { get }

    /// Writes what is queued, then stops taking appends and lets the log go (another process
    /// may open it at once).
    func close() async
}

/// What a log's writer has done so far.
package struct AppendStats: Sendable {
    /// Durable writes (one fsync, or one transaction, each).
    package var syncs: Int = 0
    /// Events made durable.
    package var events: Int = 0
    /// Total time spent making batches durable, in nanoseconds.
    package var syncNanos: UInt64 = 0

    package init() {}

    package mutating func record(events count: Int, took elapsed: Duration) {
        syncs += 1
        events += count
        syncNanos +=
            UInt64(elapsed.components.attoseconds / 1_000_000_000) + UInt64(elapsed.components.seconds) * 1_000_000_000
    }
}

/// The log was taken over by another writer (a Scheduler that leads after this one was paused or
/// cut off): this process must not append again, and exits.
package struct EventLogFenced: Error, CustomStringConvertible {
    package var description: String

    package init(_ description: String) { self.description = description }
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

/// How an event is stored, in every log: its JSON, by the hand-written encoder where it covers the
/// event, else by `Codable`.
/// One event as the log stores it: its number and its JSON (`EventCodec`'s, as written then).
package struct StoredEvent: Sendable, Equatable {
    package var seq: UInt64
    package var json: [UInt8]

    package init(seq: UInt64, json: [UInt8]) {
        self.seq = seq
        self.json = json
    }
}

package enum EventRecord {
    package static func body(of envelope: EventEnvelope) throws -> [UInt8] {
        if let body = FastEventEncoder.encode(envelope) { return body }
        return [UInt8](try EventCodec.encode(envelope))
    }

    /// `drafts` numbered from `first` on, each with its stored JSON; what every log's `append` does.
    package static func number(_ drafts: [EventEnvelope], from first: UInt64) throws -> (
        envelopes: [EventEnvelope], bodies: [[UInt8]]
    ) {
        var envelopes: [EventEnvelope] = []
        var bodies: [[UInt8]] = []
        envelopes.reserveCapacity(drafts.count)
        bodies.reserveCapacity(drafts.count)
        do {
            for (offset, draft) in drafts.enumerated() {
                var envelope = draft
                envelope.seq = first + UInt64(offset)
                bodies.append(try body(of: envelope))
                envelopes.append(envelope)
            }
        } catch {
            throw EventLogError("an event could not be encoded: \(error)")
        }
        return (envelopes, bodies)
    }

    /// A stored event read back, checked to be the one its place says (`where` names the place).
    package static func decode(_ bytes: Data, expecting seq: UInt64, at place: String) throws -> EventEnvelope {
        let envelope: EventEnvelope
        do {
            envelope = try FastEventDecoder.decode(bytes)
        } catch {
            throw EventLogError("\(place): an event does not decode: \(error)")
        }
        guard envelope.seq == seq else { throw EventLogError("\(place): sequence \(envelope.seq), expected \(seq)") }
        return envelope
    }
}
