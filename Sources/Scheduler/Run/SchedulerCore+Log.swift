import EventLog
import Foundation
import Logging
import Model
import Support
import Transport
import Wire

/// Appending: decisions staged, made durable, and the recovery after a failed write.
extension SchedulerCore {
    /// Appends and applies a decision's events now; durability is awaited separately.
    /// While a recovery rebuilds the state (it suspends to read the log), nothing is staged: the
    /// events would go into the log but not into the state that replaces this one.
    func stage(_ decision: Decision) -> AppendTicket {
        guard !recovering else {
            let refused = Promise<Void>()
            refused.fulfill(.failure(EventLogError("the event log is being recovered")))
            return AppendTicket(envelopes: [], promise: refused)
        }
        let ticket = log.append(decision.events)
        for envelope in ticket.envelopes {
            state.apply(envelope)
            deadlines.follow(
                envelope, tracked: state.instances[envelope.instanceID], handler: state.handlers[envelope.instanceID])
        }
        rearmTimer()
        if state.head >= snapshotSeq + config.snapshotEvery { takeSnapshot() }
        if !state.childResumes.isEmpty { resumeParents() }
        return ticket
    }

    @discardableResult
    func durable(_ ticket: AppendTicket) async -> Bool {
        do {
            try await ticket.durable()
            return true
        } catch {
            // The state already holds events the log refused: only a rebuild from the log is right.
            logFailed(error)
            return false
        }
    }

    static func logUnavailable(_ failure: EventLogError) -> SchedulerReply {
        .unavailable(message: "the server cannot record anything right now (\(failure)); try again shortly")
    }

    func logFailed(_ error: any Error) {
        guard !recovering else { return }
        recovering = true
        logger.error(
            "the event log cannot be written: commands are refused until it can", metadata: ["error": "\(error)"])
        Task { await self.recoverLog() }
    }

    /// Probes the log once a second until it takes writes again, then rebuilds from it.
    func recoverLog() async {
        var attempts = 0
        while true {
            try? await Task.sleep(for: .seconds(1))
            do {
                try await log.recover()
                break
            } catch let fenced as EventLogFenced {
                logger.critical("this Scheduler no longer leads; exiting", metadata: ["why": "\(fenced)"])
                exit(75)
            } catch {
                attempts += 1
                if attempts % 30 == 0 {
                    logger.error("the event log still cannot be written", metadata: ["error": "\(error)"])
                }
            }
        }
        // Nothing is staged between the probe and the rebuild: every command is refused while
        // `recovering` holds.
        do {
            let rebuilt = try await Self.rebuild(log, snapshots, logger)
            state = rebuilt.state
            snapshotSeq = rebuilt.snapshot
        } catch {
            logger.critical("the event log cannot be read back; exiting", metadata: ["error": "\(error)"])
            exit(75)
        }
        recovering = false
        logger.notice("the event log takes writes again")
        resume()
        pumpDispatch()
    }

    @discardableResult
    func commit(_ decision: Decision) async -> Bool {
        guard !decision.events.isEmpty else { return true }
        return await durable(stage(decision))
    }
}
