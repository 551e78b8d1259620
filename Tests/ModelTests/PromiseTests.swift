import Support
import TestSupport
import Testing

@testable import Model

@Suite struct PromiseTests {
    @Test func everyWaiterGetsTheFirstValue() async throws {
        let promise = Promise<Int>()
        async let a = promise.value()
        async let b = promise.value()
        promise.fulfill(.success(1))
        promise.fulfill(.success(2))
        #expect(try await a == 1)
        #expect(try await b == 1)
        #expect(try await promise.value() == 1)
    }

    /// A waiter that gives up (a timeout racing it) must not keep its task group open.
    @Test func aCancelledWaiterStopsWaiting() async {
        let promise = Promise<Int>()
        let outcome = await withTaskGroup(of: String.self) { group in
            group.addTask { (try? await promise.value()).map { "value \($0)" } ?? "cancelled" }
            group.addTask { "timeout" }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        #expect(outcome == "timeout")
    }
}
