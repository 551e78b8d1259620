import Model
import TestSupport
import Testing

@testable import ReadModels

@Suite struct LogRenderingTests {
    @Test func everyLineGetsTheTimestampAndLevel() {
        let at = Timestamp(millis: 0)
        let text = LogRendering.render([
            LogLine(at: at, level: .info, text: "one\ntwo\r\nthree\n"),
            LogLine(at: at, level: .warn, text: "careful"),
            LogLine(at: at, level: .error, text: ""),
        ])
        #expect(
            text == """
                1970-01-01T00:00:00.000Z [INFO ] one
                1970-01-01T00:00:00.000Z [INFO ] two
                1970-01-01T00:00:00.000Z [INFO ] three
                1970-01-01T00:00:00.000Z [WARN ] careful
                1970-01-01T00:00:00.000Z [ERROR] \n
                """)
    }
}
