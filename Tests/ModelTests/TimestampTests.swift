import TestSupport
import Testing

@testable import Model

@Suite struct TimestampTests {
    @Test func formatsTheEpoch() {
        #expect(Timestamp(millis: 0).iso8601 == "1970-01-01T00:00:00.000Z")
    }

    @Test func formatsMillisecondsAndLeapYears() {
        #expect(Timestamp(millis: 951_782_400_007).iso8601 == "2000-02-29T00:00:00.007Z")
        #expect(Timestamp(millis: 1_764_380_000_123).iso8601 == "2025-11-29T01:33:20.123Z")
    }

    @Test func formatsTimesBeforeTheEpoch() {
        #expect(Timestamp(millis: -1).iso8601 == "1969-12-31T23:59:59.999Z")
    }
}
