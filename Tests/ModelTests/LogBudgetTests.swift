import TestSupport
import Testing

@testable import Model

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
