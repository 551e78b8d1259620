import Model

/// The per-instance log read model's line format: `2026-11-29T10:00:00.123Z [INFO ] text`.
///
/// A message with line breaks becomes several lines, each with the prefix, so that every line of the
/// log starts with a timestamp and a level.
package enum LogRendering {
    /// The bytes `lines` add to an instance's log.
    package static func render(_ lines: [LogLine]) -> String {
        var out = ""
        for line in lines {
            let prefix = line.at.iso8601 + " [" + paddedLevel(line.level) + "] "
            var text = line.text
            // "\r\n" is one Character in Swift: both spellings of a line break end a line.
            if text.last == "\n" || text.last == "\r\n" { text.removeLast() }
            for part in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
                out += prefix
                out += part
                out += "\n"
            }
        }
        return out
    }

    private static func paddedLevel(_ level: LogLevel) -> String {
        switch level {
        case .debug: "DEBUG"
        case .info: "INFO "
        case .warn: "WARN "
        case .error: "ERROR"
        }
    }
}
