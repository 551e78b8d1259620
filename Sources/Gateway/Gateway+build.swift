import Archive
import Foundation
import Hummingbird
import Logging
import Metrics
import Model
import Prometheus
import ReadModels
import Transport
import Wire

/// Wires the Gateway: keys, sockets, projection and event feed, routes, and the HTTP server.
func buildGateway(_ config: GatewayConfig) throws -> some ApplicationProtocol {
    var logger = Logger(label: "accord.gateway")
    logger.logLevel = .info
    NNGSocket.reportTransportEvents(TransportLog(logger: logger).report)
    var keys: APIKeys?
    if config.authEnabled {
        let loaded = try APIKeys(file: config.keysFile, extra: config.environmentKeys)
        if loaded.isEmpty {
            logger.warning(
                "no API keys are configured: every /api request will be refused",
                metadata: ["keys-file": "\(config.keysFile)"])
        }
        keys = loaded
    } else {
        logger.warning("AUTH IS OFF (--no-auth): anyone who can reach this port can start and stop processes")
    }

    let commands = try LeaderLink(
        config.schedulerURL, maxMessageBytes: 256 << 20, probe: try WireFrame.encode(SchedulerRequest.ping),
        rank: { reply in
            guard case .pong(_, let epoch)? = try? WireFrame.decode(SchedulerReply.self, from: reply).message else {
                return nil
            }
            return epoch
        })
    // Given every Scheduler, the next leader's events are dialled within 100 ms of its start.
    let subscriber = try NNGSocket(
        .sub, maxMessageBytes: 256 << 20,
        reconnectMax: config.eventsURL.contains(",") ? .milliseconds(100) : .milliseconds(500))
    try subscriber.dial(all: config.eventsURL)
    let client = SchedulerClient(socket: commands, timeout: config.schedulerTimeout)
    let projection = try GatewayProjection(
        directory: "\(config.dataDirectory)/gateway-\(config.port)", logger: logger)
    let feed = EventFeed(
        source: SubscriberEventSource(
            subscriber: subscriber,
            onSilence: { [logger] in
                logger.warning("no events from any Scheduler for 3 s: dialling every Scheduler afresh")
            }),
        client: client, projection: projection, logger: logger)

    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    let router = buildRouter(
        link: client, projection: projection, keys: keys, registry: registry,
        limits: ZipLimits(maxEntries: config.maxEntries, maxUnpackedBytes: config.maxUnpackedBytes),
        maxBodyBytes: config.maxBodyBytes)

    let startupLogger = logger
    return Application(
        router: router,
        server: .http1(
            configuration: .init(
                additionalChannelHandlers: [RequestDeadlineHandler(timeout: config.requestReadTimeout)],
                idleTimeout: .nanoseconds(config.idleTimeout.nanoseconds),
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: 16 << 10, maxHeaderListSize: 64 << 10, maxHeaderFieldCount: 100))),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "accord"),
        services: [feed],
        onServerRunning: { _ in
            startupLogger.info("gateway listening", metadata: ["url": "http://\(config.host):\(config.port)"])
        },
        logger: logger)
}

/// Every route of the API over a Scheduler link and a projection: what `buildGateway` serves, and
/// what the router tests drive in process with an in-memory Scheduler.
func buildRouter(
    link: any SchedulerLink, projection: GatewayProjection, keys: APIKeys?, registry: PrometheusCollectorRegistry,
    limits: ZipLimits, maxBodyBytes: Int
) -> Router<AccordRequestContext> {
    let router = Router(context: AccordRequestContext.self)
    router.add(middleware: ErrorBodyMiddleware())
    router.add(middleware: MetricsMiddleware())
    MetricsRoute(registry: registry, projection: projection, client: link).register(on: router)
    router.get("/api/v1/server/ping") { _, _ in JSONBody.response(.ok, ["ok": JSONBodyValue.bool(true)]) }
    WebRoutes().register(on: router)
    let api = router.group("api").add(middleware: AuthMiddleware(keys: keys, projection: projection))
    KeyRoutes(client: link, projection: projection).register(on: api)
    ProcessRoutes(
        client: link, projection: projection, parser: StartRequestParser(limits: limits), maxBodyBytes: maxBodyBytes
    ).register(on: api)
    return router
}
