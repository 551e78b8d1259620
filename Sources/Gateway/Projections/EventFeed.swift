import Logging
import Model
import ReadModels
import ServiceLifecycle
import Support
import Wire

/// Keeps the projection in step with the Scheduler: subscribes to committed events, and catches up
/// by sequence number at start and whenever it sees a gap or a head beyond its own.
struct EventFeed: Service {
    let source: any CommittedEventSource
    let client: any SchedulerLink
    let projection: GatewayProjection
    let logger: Logger

    func run() async throws {
        let (stream, continuation) = AsyncStream.makeStream(
            of: CommittedEvents.self, bufferingPolicy: .bufferingNewest(4096))
        let source = source
        let receiver = Task {
            while !Task.isCancelled, let message = await source.next() { continuation.yield(message) }
            continuation.finish()
        }
        // Cancelled on graceful shutdown, so that a catch-up retrying against an absent Scheduler
        // does not keep the process from stopping.
        await cancelWhenGracefulShutdown {
            await checkTheLog()
            await catchUp(to: nil)
            guard !Task.isCancelled else { return }
            projection.ready.fulfill(.success(()))
            logger.info("caught up with the event log", metadata: ["head": "\(projection.head)"])
            for await message in stream {
                if !projection.apply(message.events) || message.head > projection.head {
                    await catchUp(to: message.head)
                    _ = projection.apply(message.events)
                }
            }
        }
        source.close()
        receiver.cancel()
        // What was folded since the last write is written now, so a restart has nothing to fold again.
        await projection.flush()
    }

    /// A store folded from another log (a data folder's events replaced, a new database) is
    /// emptied before anything is served from it: the log's first event and its head tell.
    private func checkTheLog() async {
        guard projection.head > 0 else { return }
        var failures = 0
        while !Task.isCancelled {
            do {
                guard case .events(let events, let head) = try await client.send(.catchUp(after: 0, limit: 1)) else {
                    return
                }
                let first = events.first.map(GatewayProjection.identity(of:))
                guard head < projection.head || first != projection.identity else { return }
                logger.warning(
                    "the read models were folded from another event log: folding this one afresh",
                    metadata: [
                        "stored_head": "\(projection.head)", "log_head": "\(head)",
                        "stored_first": "\(projection.identity ?? "-")", "log_first": "\(first ?? "-")",
                    ])
                try await projection.reset()
                return
            } catch {
                failures += 1
                if failures == 1 || failures % 20 == 0 {
                    logger.warning(
                        "cannot reach the scheduler to check the log; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(min(1000, 50 * failures)))
            }
        }
    }

    /// Reads events from the Scheduler until the projection reaches `target` (or the Scheduler's
    /// head when nil). While the Scheduler is unreachable it retries; reads meanwhile answer from
    /// what the projection has. The next page is asked for as soon as a page arrives, so the
    /// Scheduler reads it while this one is folded (a new Gateway folds the whole log this way).
    private func catchUp(to target: UInt64?) async {
        var failures = 0
        var readAhead: Task<SchedulerReply, any Error>?
        defer { readAhead?.cancel() }
        while !Task.isCancelled {
            do {
                let reply: SchedulerReply
                if let pending = readAhead {
                    readAhead = nil
                    reply = try await pending.value
                } else {
                    reply = try await client.send(.catchUp(after: projection.head, limit: 1000))
                }
                guard case .events(let events, let head) = reply else { return }
                let goal = target ?? head
                if let last = events.last?.seq, last < goal {
                    readAhead = Task { [client] in try await client.send(.catchUp(after: last, limit: 1000)) }
                }
                _ = projection.apply(events, fromLog: true)
                if events.isEmpty || projection.head >= goal { return }
                failures = 0
            } catch {
                failures += 1
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("cannot reach the scheduler to catch up; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .milliseconds(min(1000, 50 * failures)))
            }
        }
    }
}
