import EventLog
import Foundation
import Logging
import Model

/// Retention (`--retention`): instances that ended longer ago than the window leave the read
/// models, the log and the payload store, so that what the deployment keeps follows the window,
/// not the history.
///
/// A pass records `HistoryTrimmed` first, so every read model (every Gateway, `accord projections
/// rebuild`) forgets the same instances at the same place in the log; then, off the actor, it
/// rewrites the sealed history without their events (archived first, unless deleting) and removes
/// their payloads. A crash anywhere leaves either the old history or the new one for each rewrite,
/// and the next pass finishes the work: nothing live is touched, because only instances whose
/// terminal event is older than the window are ever removed.
extension SchedulerCore {
    /// One pass, as of `now`. Returns what it reclaimed (nil when there was nothing to do or the
    /// log cannot give up history).
    @discardableResult
    func trimHistory(now: Timestamp = .now()) async -> RetentionReport? {
        guard let retention = config.retention, let log = log as? any RetainingLog else { return nil }
        let window = retention.components.seconds * 1000 + retention.components.attoseconds / 1_000_000_000_000_000
        let before = Timestamp(millis: now.millis - window)
        let trim = EventEnvelope(
            instanceID: InstanceID(), at: now,
            event: .historyTrimmed(HistoryTrimmed(before: before, retentionMillis: window)))
        let ticket = stage(Decision(events: [trim]))
        guard await durable(ticket), let trimSeq = ticket.envelopes.first?.seq else { return nil }
        let archive = config.retentionArchive
        let payloads = payloads
        let logger = logger
        // What live instances and owed handlers still need, whatever its age: their payloads, and
        // the state a suspended instance resumes from (stored when it suspended, maybe long ago).
        var live = Set<String>()
        for tracked in state.instances.values {
            if let payload = tracked.created?.payload.digest { live.insert(payload) }
            if let suspended = tracked.suspended?.state.digest { live.insert(suspended) }
        }
        for handler in state.handlers.values { live.insert(handler.created.payload.digest) }
        let needed = live
        // The scan and the rewrites read and write whole segments: not on the actor.
        let report = await Task.detached(priority: .utility) { () -> RetentionReport? in
            do {
                return try await Self.reclaim(
                    log, before: before, trimSeq: trimSeq, archive: archive, payloads: payloads, needed: needed)
            } catch {
                logger.error("retention could not reclaim the history this time", metadata: ["error": "\(error)"])
                return nil
            }
        }.value
        if let report {
            logger.info(
                "history trimmed",
                metadata: [
                    "before": "\(before)", "instances": "\(report.instances)", "events": "\(report.log.events)",
                    "segments_rewritten": "\(report.log.rewrites)",
                    "log_bytes": "\(report.log.bytesBefore) -> \(report.log.bytesAfter)",
                    "payloads": "\(report.payloads)", "archives": "\(report.log.archives.count)",
                ])
        }
        return report
    }

    /// Finds the instances whose terminal event is older than `before` in the reclaimable
    /// history, removes their events (and older passes' `HistoryTrimmed`), then the payloads no
    /// instance still in the log names.
    ///
    /// What it holds is the instances that stay, not those that go: the history it looks at begins
    /// at the log's start, so every instance with an event there was created there, and the ones
    /// that stay are those created there that did not end before the cutoff (live, or ended within
    /// the window): about one segment's worth, however long the history. An event of an instance
    /// not among them is one of an expired instance (or left by one an earlier pass removed).
    static func reclaim(
        _ log: any RetainingLog, before: Timestamp, trimSeq: UInt64, archive: String?, payloads: any PayloadStorage,
        needed: Set<String> = []
    ) async throws -> RetentionReport {
        var staying: [InstanceID: String] = [:]
        var expired = 0
        try await log.scanReclaimable(before: before) { envelope in
            if case .instanceCreated(let start) = envelope.event { staying[envelope.instanceID] = start.payload.digest }
            if let status = envelope.event.status, status.isTerminal, envelope.at < before,
                staying.removeValue(forKey: envelope.instanceID) != nil
            {
                expired += 1
            }
        }
        let stays = Set(staying.keys)
        let sink = try archive.map { try EventArchive(directory: $0 + "/events") }
        let report = try await log.reclaim(before: before, archive: sink) { envelope in
            if envelope.event.isTrim { return envelope.seq < trimSeq }
            return envelope.event.isInstanceEvent && !stays.contains(envelope.instanceID)
        }
        // A payload goes when it is older than the window and no instance that stays names it;
        // newer ones are touched by every start that uses them.
        let keeping = Set(staying.values).union(needed)
        let into = archive.map { $0 + "/payloads" }
        var removed = 0
        if let files = payloads as? PayloadStore {
            removed = try files.removeUnused(olderThan: before, keeping: keeping, archive: into)
        } else if let database = payloads as? PostgresPayloads {
            removed = try await database.removeUnused(olderThan: before, keeping: keeping, archive: into)
        }
        return RetentionReport(instances: expired, log: report, payloads: removed)
    }
}

/// What one retention pass reclaimed.
struct RetentionReport: Sendable {
    var instances: Int
    var log: ReclaimReport
    var payloads: Int
}
