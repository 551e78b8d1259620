/// One instance's share of the log: lines longer than `maxLineBytes` are cut, and once the
/// instance has written `maxBytes` of text, further lines are dropped after one marker line; the
/// instance itself carries on. A chatty or runaway process cannot fill the Scheduler's disk or the
/// Gateways' memory.
package struct LogBudget: Sendable {
    package let maxBytes: Int
    package let maxLineBytes: Int
    package private(set) var used = 0
    package private(set) var dropped = 0

    /// What a line costs beyond its text in the log as served: `2026-11-29T10:00:00.123Z [INFO ] `
    /// and the newline. The cap is on the log users download, not on an internal measure.
    package static let renderedOverhead = 34

    /// Longest log line kept whole.
    package static let defaultMaxLineBytes = 64 << 10

    package init(maxBytes: Int, maxLineBytes: Int = defaultMaxLineBytes) {
        self.maxBytes = maxBytes
        self.maxLineBytes = maxLineBytes
    }

    package var exhausted: Bool { used >= maxBytes }

    /// The lines to keep, cut where needed, with the marker once the budget runs out.
    package mutating func admit(_ lines: [LogLine]) -> [LogLine] {
        var kept: [LogLine] = []
        kept.reserveCapacity(lines.count)
        for var line in lines {
            guard !exhausted else {
                dropped += 1
                continue
            }
            if line.text.utf8.count > maxLineBytes { line.text = Self.cut(line.text, at: maxLineBytes) }
            used += line.text.utf8.count + Self.renderedOverhead
            kept.append(line)
            if exhausted {
                kept.append(
                    LogLine(
                        at: line.at, level: .warn,
                        text: "[accord] this instance's log reached its limit of \(maxBytes) bytes: "
                            + "further output is dropped (the instance keeps running)"))
            }
        }
        return kept
    }

    /// `text` cut to `bytes` with a note saying so.
    package static func cut(_ text: String, at bytes: Int = defaultMaxLineBytes) -> String {
        prefix(text, bytes: bytes) + " [line cut at \(bytes) bytes]"
    }

    /// The longest prefix of `text` within `bytes` UTF-8 bytes, never cutting a character in half.
    package static func prefix(_ text: String, bytes: Int) -> String {
        var length = 0
        var end = text.unicodeScalars.startIndex
        for scalar in text.unicodeScalars {
            let size = UTF8.width(scalar)
            guard length + size <= bytes else { break }
            length += size
            end = text.unicodeScalars.index(after: end)
        }
        return String(text.unicodeScalars[..<end])
    }
}
