import EventLog
import Foundation
import Logging
import Model
import ServiceLifecycle
import Transport
import UnixSignals
import Wire

/// Wires the Scheduler: log, payload store, core, and its three sockets; runs until SIGTERM/SIGINT.
struct SchedulerService: Service {
    let core: SchedulerCore
    let log: FileEventLog
    let commands: NNGSocket
    let executors: NNGSocket
    let publisher: NNGSocket
    let logger: Logger

    static func build(_ config: SchedulerConfig) throws -> ServiceGroup {
        var logger = Logger(label: "accord.scheduler")
        logger.logLevel = .info
        NNGSocket.reportTransportEvents(TransportLog(logger: logger).report)
        try FileManager.default.createDirectory(
            atPath: config.dataDirectory + "/run", withIntermediateDirectories: true)
        let log = try FileEventLog(directory: config.dataDirectory + "/events", fsync: config.fsync)
        if log.recovery.truncatedBytes > 0 {
            logger.warning(
                "the event log had a torn tail, which was cut (it was never acknowledged)",
                metadata: ["bytes": "\(log.recovery.truncatedBytes)", "where": "\(log.recovery.reason ?? "")"])
        }
        if !config.fsync { logger.warning("fsync is OFF: acknowledged events can be lost in a crash") }
        let payloads = try PayloadStore(directory: config.dataDirectory + "/payloads", fsync: config.fsync)
        let snapshots = try SnapshotStore(directory: config.dataDirectory + "/snapshots", fsync: config.fsync)
        let core = try SchedulerCore(
            log: log, payloads: payloads, snapshots: snapshots, config: config, logger: logger)

        let publisher = try NNGSocket(.pub)
        try publisher.listen(config.eventsURL)
        log.onCommit { envelopes, json in
            let header = CommittedEvents.json(encodedEvents: json, head: envelopes.last?.seq ?? 0)
            try? publisher.publish(WireFrame.frame(header: header))
        }
        let commands = try NNGSocket(.rep, maxMessageBytes: config.maxCommandBytes)
        try commands.listen(config.commandsURL)
        let executors = try NNGSocket(.rep, maxMessageBytes: 64 << 20)
        try executors.listen(config.executorsURL)
        logger.info(
            "scheduler listening",
            metadata: [
                "commands": "\(config.commandsURL)", "events": "\(config.eventsURL)",
                "executors": "\(config.executorsURL)",
            ])
        let service = SchedulerService(
            core: core, log: log, commands: commands, executors: executors, publisher: publisher, logger: logger)
        return ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }

    func run() async throws {
        await core.resume()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await commands.serve(workers: 32) { await self.handleCommand($0) } }
                group.addTask { await executors.serve(workers: 16) { await self.handleExecutor($0) } }
                group.addTask {
                    // The head announcement: a gateway that missed the last publication notices
                    // within a second and catches up.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        if let frame = try? WireFrame.encode(CommittedEvents(events: [], head: log.durableHead)) {
                            try? publisher.publish(frame)
                        }
                    }
                }
                await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            commands.close()
            executors.close()
        }
        await core.snapshotAtStop()
        log.close()
        publisher.close()
        logger.info("scheduler stopped")
    }

    private func handleCommand(_ bytes: [UInt8]) async -> [UInt8] {
        let reply: SchedulerReply
        do {
            let (request, attachment) = try WireFrame.decode(SchedulerRequest.self, from: bytes)
            switch request {
            case .start(let start):
                reply = await core.start(start, payload: Array(attachment))
            case .cancel(let requestID, let instanceID):
                reply = await core.cancel(instanceID, request: requestID)
            case .createKey(let create):
                reply = await core.key(.createKey(create))
            case .revokeKey(let requestID, let keyID, let by):
                reply = await core.key(.revokeKey(keyID, requestID, by: by))
            case .catchUp(let after, let limit):
                let head = log.durableHead
                reply = .events(events: try log.read(after: after, limit: min(max(limit, 1), 1000)), head: head)
            case .instanceEvents(let id, let after, let limit):
                guard let seqs = await core.eventSeqs(of: id) else {
                    reply = .instanceEvents(events: [], known: false)
                    break
                }
                let wanted = Array(seqs.lazy.filter { $0 > after }.prefix(min(max(limit, 1), 1000)))
                reply = .instanceEvents(events: try log.read(seqs: wanted), known: true)
            case .ping:
                reply = .pong(head: log.durableHead)
            case .stats:
                let appends = log.appendStats
                let load = await core.load()
                reply = .stats(
                    SchedulerStats(
                        head: log.durableHead, appendedEvents: appends.events, fsyncs: appends.syncs,
                        fsyncSeconds: Double(appends.syncNanos) / 1e9, queueDepth: load.queued,
                        executors: load.executors, overdueQueued: load.overdue,
                        eventLogFailure: log.failed.map(\.description)))
            }
        } catch {
            logger.warning("bad command", metadata: ["error": "\(error)"])
            reply = .rejected(message: "\(error)")
        }
        return (try? WireFrame.encode(reply)) ?? []
    }

    private func handleExecutor(_ bytes: [UInt8]) async -> [UInt8] {
        let reply: ExecutorReply
        do {
            let (request, _) = try WireFrame.decode(ExecutorRequest.self, from: bytes)
            reply = await core.executorRequest(request)
        } catch {
            logger.warning("bad executor message", metadata: ["error": "\(error)"])
            reply = .unavailable(message: "\(error)")
        }
        return (try? WireFrame.encode(reply)) ?? []
    }
}
