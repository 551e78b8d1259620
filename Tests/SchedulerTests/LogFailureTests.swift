import EventLog
import Foundation
import Logging
import Model
import TestSupport
import Testing
import Transport
import Wire

@testable import Scheduler

/// The Scheduler while its log cannot be written: nothing it could not record is acknowledged.
@Suite struct LogFailureTests {
    /// A report batch whose append hits the full disk has already been applied to the in-memory
    /// state; the executor's repeat of it must not be taken for a duplicate and acknowledged
    /// (the report would be lost and the instance left RUNNING for good). Once space returns, the
    /// repeat is recorded.
    @Test func aReportTheLogRefusedIsNotAcknowledgedOnItsRepeat() async throws {
        let root = NSTemporaryDirectory() + "accord-logfail-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: root) }
        guard let fs = SmallFilesystem.mount(at: root + "/events", bytes: 1 << 20) else { return }
        defer { fs.unmount() }

        // A stand-in executor that accepts every dispatch.
        let executorURL = "ipc://\(root)/executor.ipc"
        let executorSocket = try NNGSocket(.rep)
        try executorSocket.listen(executorURL)
        let serving = Task {
            await executorSocket.serve(workers: 2) { _ in
                (try? WireFrame.encode(ExecutorCommandReply.accepted)) ?? []
            }
        }
        defer {
            executorSocket.close()
            serving.cancel()
        }

        let log = try FileEventLog(directory: root + "/events")
        defer { log.close() }
        let core = try await schedulerCore(root: root, log: log, fsync: true)
        let executor = ExecutorID("stand-in/1")
        _ = await core.executorRequest(
            .register(ExecutorRegistration(executorID: executor, address: executorURL, capacity: 4, running: [])))
        let start = StartInstance(
            requestID: .random(), entryPoint: "main", arguments: [:], timeoutMillis: nil, out: [], tags: [],
            idempotencyKey: nil, principal: nil)
        guard case .started(let id, _, _) = await core.start(start, payload: ZipBuilder.payload("main:\n- log: x\n"))
        else {
            Issue.record("the start was not acknowledged")
            return
        }
        func report(_ seq: UInt64, _ kind: ReportKind) async -> ExecutorReply {
            await core.executorRequest(
                .reports(executorID: executor, reports: [Report(seq: seq, instanceID: id, kind: kind, at: .now())]))
        }
        // Dispatched (to the stand-in) and started.
        var seq: UInt64 = 1
        for _ in 0..<200 {
            if case .ack(let upTo) = await report(seq, .started), upTo == seq { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(await core.state.instances[id]?.status == .running)

        // Log lines until the full disk refuses one.
        let filler = fs.fill()
        let line = [LogLine(at: .now(), level: .info, text: String(repeating: "x", count: 4000))]
        var refused: UInt64?
        for _ in 0..<2000 where refused == nil {
            seq += 1
            if case .unavailable = await report(seq, .log(lines: line)) { refused = seq }
        }
        let refusedSeq = try #require(refused, "the log never refused a report")
        if case .ack = await report(refusedSeq, .log(lines: line)) {
            Issue.record("a report the log refused was acknowledged on its repeat")
        }

        try FileManager.default.removeItem(atPath: filler)
        var recorded = false
        for _ in 0..<100 where !recorded {
            try await Task.sleep(for: .milliseconds(100))
            if case .ack(let upTo) = await report(refusedSeq, .log(lines: line)), upTo == refusedSeq { recorded = true }
        }
        #expect(recorded, "the repeat was not recorded once space returned")
        if case .ack(let upTo) = await report(refusedSeq + 1, .finished(out: [:])) {
            #expect(upTo == refusedSeq + 1)
        } else {
            Issue.record("the instance's end was not recorded")
        }
        #expect(await core.state.instances[id] == nil, "the instance did not end")
    }
}
