import Events
import Testing

@testable import Executor

@Suite struct LogBudgetTests {
    private func lines(_ texts: [String]) -> [LogLine] {
        texts.map { LogLine(at: .now(), level: .info, text: $0) }
    }

    @Test func keepsLinesUntilTheBudgetThenOneMarkerThenNothing() {
        var budget = LogBudget(maxBytes: 4 * (30 + LogBudget.renderedOverhead) - 1)
        let first = budget.admit(lines(Array(repeating: String(repeating: "a", count: 30), count: 3)))
        #expect(first.count == 3)
        let second = budget.admit(lines(["b" + String(repeating: "x", count: 29), "c", "d"]))
        #expect(second.map(\.text).first?.hasPrefix("b") == true)
        #expect(second.count == 2)
        #expect(second[1].level == .warn)
        #expect(second[1].text.contains("limit of 255 bytes"))
        #expect(budget.admit(lines(["e", "f"])).isEmpty)
        #expect(budget.dropped == 4)
    }

    @Test func cutsLongLinesOnACharacterBoundary() {
        var budget = LogBudget(maxBytes: 1 << 20, maxLineBytes: 10)
        let kept = budget.admit(lines(["ééééééé", "short"]))  // 14 bytes: cut after 5 characters
        #expect(kept.map(\.text) == ["ééééé [line cut at 10 bytes]", "short"])
        #expect(LogBudget.prefix("aé", bytes: 2) == "a")
        #expect(LogBudget.prefix("", bytes: 2) == "")
    }
}

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
