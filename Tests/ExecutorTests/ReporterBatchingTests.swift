import Model
import Testing
import Wire

@testable import Executor

@Suite struct ReporterBatchingTests {
    private func report(_ seq: UInt64, text bytes: Int) -> Report {
        Report(
            seq: seq, instanceID: InstanceID(),
            kind: .log(lines: [LogLine(at: .now(), level: .info, text: String(repeating: "x", count: bytes))]),
            at: .now())
    }

    @Test func batchesStayUnderTheMessageBound() {
        let pending = (1...20).map { report($0, text: 1 << 20) }
        let count = Reporter.batchCount(pending)
        #expect(count == 3)
        #expect(Reporter.batchCount([report(1, text: 10 << 20)]) == 1)
        #expect(Reporter.batchCount(Array(pending.prefix(2))) == 2)
    }

    @Test func logReportsMergeOnlyUpToTheirWeight() {
        let small = ReportKind.log(lines: [LogLine(at: .now(), level: .info, text: "a")])
        let big = ReportKind.log(lines: [
            LogLine(at: .now(), level: .info, text: String(repeating: "x", count: 1 << 20))
        ])
        #expect(Reporter.merge(small, small) != nil)
        #expect(Reporter.merge(small, big) == nil)
        #expect(Reporter.merge(small, .started) == nil)
    }
}
