import Foundation
import Model

/// `accord log verify`: every record's checksum, contiguous sequence numbers, every event decoding
/// (older versions through their upcasters), and the status rules (an instance is created before
/// anything else happens to it, its status only moves forward, and nothing changes it after a
/// terminal status; an API key is created once, before it is revoked, and revoked at most once).
package enum LogVerifier {
    package struct Report: Sendable {
        package var segments = 0
        package var events = 0
        package var bytes = 0
        package var firstSeq: UInt64?
        package var lastSeq: UInt64?
        package var eventsByType: [String: Int] = [:]
        package var instancesByStatus: [InstanceStatus: Int] = [:]
        /// A torn tail (not damage: it was never acknowledged).
        package var tornTail: EventLogReader.Problem?
        /// The first thing wrong, with where.
        package var failure: EventLogReader.Problem?
        package var seconds: Double = 0

        package var ok: Bool { failure == nil }

        package init() {}
    }

    package static func verify(directory: String) throws -> Report {
        let started = ContinuousClock.now
        let reader = try EventLogReader(directory: directory)
        var report = Report()
        report.segments = reader.segments.count
        // An archive holds what retention removed: instances whose creation stayed in the log.
        var rules = Rules(trimmed: reader.isArchive)
        struct Stop: Error {}
        do {
            let problem = try reader.forEachDecoded { seq, segment, offset, bytes, decoded in
                func fail(_ reason: String) throws -> Never {
                    report.failure = EventLogReader.Problem(
                        segment: segment, offset: offset, reason: "sequence \(seq): \(reason)", isTornTail: false)
                    throw Stop()
                }
                let envelope: EventEnvelope
                do {
                    envelope = try decoded.get()
                } catch {
                    try fail("the event does not decode: \(error)")
                }
                if envelope.seq != seq { try fail("the record says sequence \(envelope.seq)") }
                report.events += 1
                report.bytes += bytes.count + RecordFormat.recordHeaderSize
                report.firstSeq = report.firstSeq ?? seq
                report.lastSeq = seq
                report.eventsByType[envelope.event.typeName, default: 0] += 1
                if let reason = rules.check(envelope) { try fail(reason) }
            }
            if let problem {
                if problem.isTornTail { report.tornTail = problem } else { report.failure = problem }
            }
        } catch is Stop {}
        report.instancesByStatus = rules.instancesByStatus
        let elapsed = started.duration(to: .now).components
        report.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        return report
    }

    /// The status and key rules, event by event, in log order (for any log).
    package struct Rules: Sendable {
        private var status: [InstanceID: InstanceStatus] = [:]
        private var keyRevoked: [KeyID: Bool] = [:]
        private var lastSeq: UInt64?
        /// Retention removed events (a gap in the numbers, or a `HistoryTrimmed` seen): an event
        /// whose instance's creation is gone is what a removed instance left behind, not damage.
        private var trimmed = false

        package init(trimmed: Bool = false) { self.trimmed = trimmed }

        /// What is wrong with `envelope` after everything before it, or nil when nothing is.
        package mutating func check(_ envelope: EventEnvelope) -> String? {
            let id = envelope.instanceID
            if let last = lastSeq, envelope.seq > last + 1 { trimmed = true }
            lastSeq = envelope.seq
            if envelope.event.isTrim {
                trimmed = true
                return nil
            }
            if envelope.event.isKeyEvent {
                if status[id] != nil { return "\(envelope.event.typeName) for \(id), which is an instance" }
                switch (envelope.event, keyRevoked[id]) {
                case (.apiKeyCreated, nil): keyRevoked[id] = false
                case (.apiKeyCreated, _): return "the API key \(id) is created a second time"
                case (_, false?): keyRevoked[id] = true
                case (_, true?): return "the API key \(id) is revoked a second time"
                case (_, nil): return "the API key \(id) is revoked but was never created"
                }
                return nil
            }
            if keyRevoked[id] != nil { return "\(envelope.event.typeName) for \(id), which is an API key" }
            guard let new = envelope.event.status else {
                if status[id] == nil && !trimmed {
                    return "\(envelope.event.typeName) for \(id), which was never created"
                }
                return nil
            }
            if case .instanceCreated = envelope.event {
                if status[id] != nil { return "\(id) is created a second time" }
            } else if let old = status[id] {
                if old.isTerminal {
                    return "\(envelope.event.typeName) for \(id) after its terminal \(old.rawValue)"
                }
                // A resumed instance's assignment leaves it RESUMING.
                if old == .resuming && new == .starting { return nil }
                if new != old && !old.canMove(to: new) {
                    return new.rank < old.rank
                        ? "\(id) moves back from \(old.rawValue) to \(new.rawValue)"
                        : "\(id) moves from \(old.rawValue) to \(new.rawValue), which no instance does"
                }
            } else if trimmed {
                return nil
            } else {
                return "\(envelope.event.typeName) for \(id), which was never created"
            }
            status[id] = new
            return nil
        }

        package var instancesByStatus: [InstanceStatus: Int] {
            var counts: [InstanceStatus: Int] = [:]
            for value in status.values { counts[value, default: 0] += 1 }
            return counts
        }
    }
}
