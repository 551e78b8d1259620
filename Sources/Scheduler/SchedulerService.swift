import EventLog
import Foundation
import Logging
import Model
import PostgresStore
import ServiceLifecycle
import Transport
import UnixSignals
import Wire

/// Wires the Scheduler: log, payload store, core, and its three sockets; runs until SIGTERM/SIGINT.
struct SchedulerService: Service {
    let core: SchedulerCore
    let stores: Stores
    var log: any EventLog { stores.log }
    let commands: NNGSocket
    let executors: NNGSocket
    let publisher: NNGSocket
    let logger: Logger
    var config: SchedulerConfig { core.config }

    static func build(_ config: SchedulerConfig) async throws -> ServiceGroup {
        var logger = Logger(label: "accord.scheduler")
        logger.logLevel = .info
        NNGSocket.reportTransportEvents(TransportLog(logger: logger).report)
        try FileManager.default.createDirectory(
            atPath: config.dataDirectory + "/run", withIntermediateDirectories: true)
        if !config.fsync { logger.warning("fsync is OFF: acknowledged events can be lost in a crash") }
        let stores = try await Stores.open(config, logger: logger)
        let log = stores.log
        let core = try await SchedulerCore(
            log: log, payloads: stores.payloads, snapshots: stores.snapshots, config: config, logger: logger)

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
            core: core, stores: stores, commands: commands, executors: executors, publisher: publisher, logger: logger)
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
                if config.retention != nil {
                    group.addTask {
                        // Once soon after the start (the history may be long past the window), then
                        // every --retention-every.
                        try? await Task.sleep(for: min(.seconds(5), config.retentionEvery))
                        while !Task.isCancelled {
                            await core.trimHistory()
                            try? await Task.sleep(for: config.retentionEvery)
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
        await stores.close()
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
            case .cancelCascade(let requestID, let instanceID):
                reply = await core.cancel(instanceID, request: requestID, cascade: true)
            case .createKey(let create):
                reply = await core.key(.createKey(create))
            case .revokeKey(let requestID, let keyID, let by):
                reply = await core.key(.revokeKey(keyID, requestID, by: by))
            case .catchUp(let after, let limit):
                // The events as stored, not decoded and encoded again: a new Gateway reads the
                // whole log this way.
                let head = log.durableHead
                let stored = try await log.readStored(after: after, limit: min(max(limit, 1), 1000))
                return WireFrame.frame(header: SchedulerReply.eventsHeader(stored: stored.map(\.json), head: head))
            case .readEvents(let seqs):
                let head = log.durableHead
                let wanted = Array(seqs.lazy.filter { $0 > 0 && $0 <= head }.prefix(1000))
                reply = .someEvents(events: try await log.read(seqs: wanted))
            case .ping:
                reply = .pong(head: log.durableHead, epoch: log.epoch)
            case .resume(let requestID, let instanceID, let event, let variables):
                reply = await core.resume(instanceID, event: event, variables: variables, request: requestID)
            case .fetchBlob(let digest):
                // Only a digest the store could have written: nothing else reaches the store.
                guard digest.count == 64, digest.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                    throw WireError("not a SHA-256 digest: \(digest.prefix(80))")
                }
                let bytes = try? await core.payloads.get(PayloadRef(digest: digest, size: 0))
                return (try? WireFrame.encode(SchedulerReply.blob(found: bytes != nil), attachment: bytes ?? [])) ?? []
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
            let (request, attachment) = try WireFrame.decode(ExecutorRequest.self, from: bytes)
            reply = await core.executorRequest(request, attachment: attachment)
        } catch {
            logger.warning("bad executor message", metadata: ["error": "\(error)"])
            reply = .unavailable(message: "\(error)")
        }
        return (try? WireFrame.encode(reply)) ?? []
    }
}

/// The log, payloads and snapshots, on files or on PostgreSQL (where this process first waits to lead).
struct Stores: Sendable {
    let log: any EventLog
    let payloads: any PayloadStorage
    let snapshots: SnapshotStore
    let leadership: Leadership?
    let database: PostgresDatabase?

    static func open(_ config: SchedulerConfig, logger: Logger) async throws -> Stores {
        switch config.store {
        case .files:
            let log = try FileEventLog(
                directory: config.dataDirectory + "/events", segmentBytes: config.segmentBytes, fsync: config.fsync)
            if log.recovery.truncatedBytes > 0 {
                logger.warning(
                    "the event log had a torn tail, which was cut (it was never acknowledged)",
                    metadata: ["bytes": "\(log.recovery.truncatedBytes)", "where": "\(log.recovery.reason ?? "")"])
            }
            return Stores(
                log: log,
                payloads: try PayloadStore(directory: config.dataDirectory + "/payloads", fsync: config.fsync),
                snapshots: try SnapshotStore(directory: config.dataDirectory + "/snapshots", fsync: config.fsync),
                leadership: nil, database: nil)
        case .postgres(let url):
            let database = try await PostgresDatabase.open(url, logger: logger)
            let holder = "\(ProcessInfo.processInfo.hostName) pid \(getpid()) commands \(config.commandsURL)"
            let leadership = try await Leadership.acquire(
                database, holder: holder, logger: logger,
                standingBy: {
                    logger.notice("standing by: another Scheduler leads", metadata: ["database": "\(url)"])
                },
                onLost: { reason in
                    logger.critical("no longer the leader; exiting", metadata: ["why": "\(reason)"])
                    exit(75)
                })
            let log = try await PostgresEventLog(
                database: database, epoch: leadership.epoch, logger: logger,
                onFenced: { _ in exit(75) })
            logger.notice(
                "leading",
                metadata: ["database": "\(url)", "epoch": "\(leadership.epoch)", "head": "\(leadership.head)"])
            return Stores(
                log: log, payloads: PostgresPayloads(database: database, sessions: { [log] in log.failures }),
                snapshots: SnapshotStore(PostgresSnapshots(database: database)), leadership: leadership,
                database: database)
        }
    }

    func close() async {
        await log.close()
        await leadership?.release()
        await database?.close()
    }
}
