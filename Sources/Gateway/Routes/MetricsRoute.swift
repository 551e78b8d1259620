import Hummingbird
import Model
import Prometheus
import ReadModels
import Wire

/// `GET /metrics` in Prometheus text format: HTTP request counts and latencies by route (from
/// Hummingbird's `MetricsMiddleware`), instances by status and queue depth (this gateway's
/// projection), and the Scheduler's event-log appends and fsync time (asked when scraped).
struct MetricsRoute: Sendable {
    let registry: PrometheusCollectorRegistry
    let projection: GatewayProjection
    let client: any SchedulerLink

    func register(on router: Router<AccordRequestContext>) {
        router.get("/metrics") { _, _ in await render() }
    }

    private func gauge(_ name: String, _ unit: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(
            descriptor: MetricNameDescriptor(namespace: "accord", metricName: name, unitName: unit, helpText: help),
            labels: labels)
    }

    private func render() async -> Response {
        let counts = projection.countsByStatus()
        for status in InstanceStatus.allCases {
            gauge("instances", "count", "Instances by status, as this gateway sees them", [("status", status.rawValue)])
                .set(Double(counts[status] ?? 0))
        }
        gauge("projection", "head", "Last event sequence number this gateway applied").set(Double(projection.head))
        gauge("log_followers", "count", "Open followed logs (?follow=true) on this gateway").set(
            Double(projection.doorbells.listening))
        if case .stats(let stats) = try? await client.send(.stats) {
            gauge("queue", "depth", "Instances waiting for an executor").set(Double(stats.queueDepth))
            gauge("executors", "count", "Registered executors").set(Double(stats.executors))
            gauge(
                "queue_overdue", "count", "Instances waiting for an executor longer than the scheduler's warning time"
            )
            .set(Double(stats.overdueQueued ?? 0))
            gauge("eventlog", "failed", "1 while the event log refuses writes (starts answer 503)").set(
                stats.eventLogFailure == nil ? 0.0 : 1.0)
            gauge("eventlog", "head", "Durable head of the event log").set(Double(stats.head))
            gauge("eventlog_appended", "events", "Events made durable since the scheduler started").set(
                Double(stats.appendedEvents))
            gauge("eventlog", "fsyncs", "fsyncs since the scheduler started (one per group commit)").set(
                Double(stats.fsyncs))
            gauge("eventlog_fsync", "seconds", "Time spent in fsync since the scheduler started").set(
                stats.fsyncSeconds)
            gauge("scheduler", "up", "1 when the scheduler answered this scrape").set(1.0)
        } else {
            gauge("scheduler", "up", "1 when the scheduler answered this scrape").set(0.0)
        }
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}
