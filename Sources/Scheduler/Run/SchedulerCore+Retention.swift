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
        let payloads = payloads as? PayloadStore
        let logger = logger
        // The scan and the rewrites read and write whole segments: not on the actor.
        let report = await Task.detached(priority: .utility) { () -> RetentionReport? in
            do {
                return try await Self.reclaim(
                    log, before: before, trimSeq: trimSeq, archive: archive, payloads: payloads)
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
    static func reclaim(
        _ log: any RetainingLog, before: Timestamp, trimSeq: UInt64, archive: String?, payloads: PayloadStore?
    ) async throws -> RetentionReport {
        var ended: Set<InstanceID> = []
        var created: [InstanceID: String] = [:]
        try await log.scanReclaimable(before: before) { envelope in
            if let status = envelope.event.status, status.isTerminal, envelope.at < before {
                ended.insert(envelope.instanceID)
            }
            if case .instanceCreated(let start) = envelope.event { created[envelope.instanceID] = start.payload.digest }
        }
        let expired = ended
        let sink = try archive.map { try EventArchive(directory: $0 + "/events") }
        let report = try await log.reclaim(before: before, archive: sink) { envelope in
            if envelope.event.isTrim { return envelope.seq < trimSeq }
            return envelope.event.isInstanceEvent && expired.contains(envelope.instanceID)
        }
        // A payload goes when it is older than the window and no instance left in the history
        // that was looked at names it; newer ones are touched by every start that uses them.
        var kept: Set<String> = []
        for (id, digest) in created where !expired.contains(id) { kept.insert(digest) }
        let removed = try payloads?.removeUnused(
            olderThan: before, keeping: kept, archive: archive.map { $0 + "/payloads" })
        return RetentionReport(instances: expired.count, log: report, payloads: removed ?? 0)
    }
}

/// What one retention pass reclaimed.
struct RetentionReport: Sendable {
    var instances: Int
    var log: ReclaimReport
    var payloads: Int
}
