import Archive
import Foundation
import Logging
import Model
import ServiceLifecycle
import Transport
import UnixSignals
import Wire

/// Wires the Executor: its link to the Scheduler, its command socket, heartbeats; runs until
/// SIGTERM/SIGINT, then kills its runners.
struct ExecutorService: Service {
    let core: ExecutorCore
    let commands: NNGSocket
    let scheduler: LeaderLink
    let config: ExecutorConfig
    let logger: Logger

    static func build(_ config: ExecutorConfig) throws -> ServiceGroup {
        var logger = Logger(label: "accord.executor")
        logger.logLevel = .info
        NNGSocket.reportTransportEvents(TransportLog(logger: logger).report)
        let boot = String(UUID().uuidString.lowercased().prefix(8))
        let id = ExecutorID("\(config.name)/\(boot)")
        try? FileManager.default.removeItem(atPath: config.workRoot)
        try FileManager.default.createDirectory(atPath: config.workRoot, withIntermediateDirectories: true)
        let scheduler = try LeaderLink(
            config.schedulerURL, probe: try WireFrame.encode(ExecutorRequest.ping),
            rank: { reply in
                guard case .pong(let epoch)? = try? WireFrame.decode(ExecutorReply.self, from: reply).message else {
                    return nil
                }
                return epoch
            })
        let commands = try NNGSocket(.rep, maxMessageBytes: config.zipLimits.maxUnpackedBytes + (1 << 20))
        try commands.listen(config.listenURL)
        let core = try ExecutorCore(id: id, config: config, schedulerSocket: scheduler, logger: logger)
        switch config.sandbox {
        case .none:
            logger.warning(
                """
                INSTANCES ARE NOT SANDBOXED (--unsandboxed): their scripts run as this executor's user and can \
                read, change and signal everything it can
                """)
        case .bubblewrap(let uid, _, let network):
            // Refuses to start rather than run anyone's code unprotected.
            try core.sandbox.check(workRoot: config.workRoot)
            logger.info(
                "instances run sandboxed",
                metadata: [
                    "uid": "\(uid)", "network": "\(network ? "on" : "off")",
                    "read-only": "\(core.sandbox.readOnly.joined(separator: " "))",
                ])
        }
        logger.info(
            "executor listening",
            metadata: ["executor.id": "\(id)", "address": "\(config.listenURL)", "capacity": "\(config.capacity)"])
        let service = ExecutorService(
            core: core, commands: commands, scheduler: scheduler, config: config, logger: logger)
        return ServiceGroup(
            configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }

    func run() async throws {
        await core.warmUp()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await commands.serve(workers: 8) { bytes in
                        do {
                            let (command, payload) = try WireFrame.decode(ExecutorCommand.self, from: bytes)
                            let reply = await core.handle(command, payload: Array(payload))
                            return try WireFrame.encode(reply)
                        } catch {
                            return (try? WireFrame.encode(ExecutorCommandReply.refused(reason: "\(error)"))) ?? []
                        }
                    }
                }
                group.addTask {
                    await core.reporter.provideRegistration { await core.registration() }
                    await core.reporter.register()
                    // Heartbeats are a liveness signal on a fixed period, not a poll for state.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: config.heartbeat)
                        if Task.isCancelled { break }
                        await core.reporter.heartbeat()
                    }
                }
                await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            logger.info("stopping: no new dispatches; running instances are killed")
            commands.close()
            // The executor keeps nothing durable and its runners die with it (their stdin closes),
            // so a stop that stalls is finished by force rather than left hanging.
            let stalled = logger
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: 5)
                stalled.warning("graceful stop took over 5 s; exiting now")
                exit(0)
            }
        }
        await core.killAll()
        scheduler.close()
        logger.info("executor stopped")
    }
}
