import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

/// `LeaderLink`: requests go to the peer that answers the probe with the highest rank, leave one
/// that stops answering, and wait (within their timeout) while none answers.
@Suite struct LeaderLinkTests {
    static let probe = Array("who leads?".utf8)

    final class Flag: Sendable { let value = Atomic<Bool>(false) }
    final class Counter: Sendable { let value = Atomic<Int>(0) }

    /// A peer: answers the probe with its rank and every other request with its name, unless paused
    /// (then it receives and never answers, as a stopped process whose connections stay open).
    final class Peer: Sendable {
        let name: String
        let url: String
        let rank: UInt64
        let paused = Flag()
        /// Requests it received other than probes.
        let received = Counter()
        let socket: NNGSocket
        let serving: Task<Void, Never>

        init(_ name: String, rank: UInt64, url: String? = nil) throws {
            self.name = name
            self.rank = rank
            self.url = url ?? LeaderLinkTests.address(name)
            let socket = try NNGSocket(.rep)
            try socket.listen(self.url)
            self.socket = socket
            let (paused, received) = (paused, received)
            serving = Task {
                await socket.serve(workers: 4) { request in
                    if request != LeaderLinkTests.probe { received.value.add(1, ordering: .relaxed) }
                    while paused.value.load(ordering: .relaxed), !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                    return request == LeaderLinkTests.probe ? Array("\(rank)".utf8) : Array(name.utf8)
                }
            }
        }

        func stop() async {
            socket.close()
            serving.cancel()
            await serving.value
        }
    }

    static func address(_ name: String) -> String {
        "ipc://" + NSTemporaryDirectory() + "accord-leader-\(name)-\(UUID().uuidString.prefix(8)).ipc"
    }

    private func link(_ urls: [String], patience: Int = 2) throws -> LeaderLink {
        try LeaderLink(
            urls.joined(separator: ","), probe: Self.probe,
            rank: { UInt64(String(decoding: $0, as: UTF8.self)) }, every: .milliseconds(50),
            probeTimeout: .milliseconds(300), patience: patience)
    }

    /// A liveness bound, not a speed claim: in the whole suite on two cores other tests held this
    /// one's threads for over ten seconds (seen in the suite loop), and 5 s ran out.
    private func answerer(_ link: LeaderLink) async throws -> String {
        String(decoding: try await link.request(Array("work".utf8), timeout: Liveness.deadline), as: UTF8.self)
    }

    /// Patience without end: on a loaded host a probe can miss its 300 ms (seen in CI: the link
    /// moved to "low" for a moment), and this test is about ranks, not about leaving.
    @Test func requestsGoToThePeerWithTheHighestRank() async throws {
        let low = try Peer("low", rank: 1)
        let high = try Peer("high", rank: 2)
        let absent = Self.address("absent")
        let link = try link([low.url, absent, high.url], patience: .max)
        #expect(await eventually { link.leaderAddress == high.url })
        for _ in 0..<20 { #expect(try await answerer(link) == "high") }
        link.close()
        await low.stop()
        await high.stop()
    }

    /// The leader misses probes (paused) while a lower rank, a deposed leader, keeps answering: the
    /// lead stays until `patience` probes in a row went unanswered, then moves.
    @Test func aMissedProbeDoesNotHandTheLeadToALowerRank() async throws {
        let low = try Peer("low", rank: 1)
        let high = try Peer("high", rank: 2)
        let link = try link([low.url, high.url], patience: 1_000)
        #expect(await eventually { link.leaderAddress == high.url })
        high.paused.value.store(true, ordering: .relaxed)
        for _ in 0..<3 { await link.probeOnce() }
        #expect(link.leaderAddress == high.url)
        link.close()
        high.paused.value.store(false, ordering: .relaxed)
        await low.stop()
        await high.stop()
    }

    /// The leader pauses with its connection open: the link moves to the peer that still answers,
    /// and no request after the move waits on the paused one.
    @Test func aLeaderThatStopsAnsweringIsLeftForOneThatAnswers() async throws {
        let old = try Peer("old", rank: 1)
        let new = try Peer("new", rank: 2)
        let link = try link([old.url, new.url])
        #expect(await eventually { link.leaderAddress == new.url })
        new.paused.value.store(true, ordering: .relaxed)
        #expect(await eventually { link.leaderAddress == old.url })
        for _ in 0..<20 { #expect(try await answerer(link) == "old") }
        link.close()
        new.paused.value.store(false, ordering: .relaxed)
        await old.stop()
        await new.stop()
    }

    enum Move: String, CaseIterable, Sendable {
        /// The leader dies with the request (nng ends it as reset), and another leads later.
        case leaderDies
        /// Another peer takes the lead while the paused leader holds the request.
        case higherRankLeads
    }

    /// A request its leader received and never answered goes to the peer that leads next, within
    /// its own timeout, when it is safe to apply twice (`resend: .always`).
    @Test(arguments: Move.allCases)
    func aRequestSafeToRepeatGoesToTheNextLeader(move: Move) async throws {
        let old = try Peer("old", rank: 1)
        let next = Self.address("next")
        // Missed probes never move the lead: only the leader's death or a higher rank does.
        let link = try link([old.url, next], patience: .max)
        #expect(await eventually { link.leaderAddress == old.url })
        old.paused.value.store(true, ordering: .relaxed)
        let waiting = Task {
            try await link.request(Array("work".utf8), timeout: Liveness.deadline, resend: .always)
        }
        let taken = await eventually { old.received.value.load(ordering: .relaxed) == 1 }
        #expect(taken, "the leader never got the request")
        if move == .leaderDies {
            old.socket.close()
            try await Task.sleep(for: .milliseconds(200))
        }
        let new = try Peer("new", rank: 2, url: next)
        #expect(String(decoding: try await waiting.value, as: UTF8.self) == "new")
        link.close()
        await old.stop()
        await new.stop()
    }

    /// A request the leader received is not sent again by default (`resend: .ifUnsent`: a stop
    /// applied twice would be refused the second time): when another peer takes the lead, it
    /// still waits for the old leader's answer.
    @Test func aRequestThatIsNotToBeRepeatedWaitsForTheLeaderThatHasIt() async throws {
        let old = try Peer("old", rank: 1)
        let link = try link([old.url, Self.address("next")], patience: .max)
        #expect(await eventually { link.leaderAddress == old.url })
        old.paused.value.store(true, ordering: .relaxed)
        let waiting = Task { try await link.request(Array("work".utf8), timeout: Liveness.deadline) }
        let taken = await eventually { old.received.value.load(ordering: .relaxed) == 1 }
        #expect(taken, "the leader never got the request")
        let new = try Peer("new", rank: 2, url: link.addresses[1])
        #expect(await eventually { link.leaderAddress == new.url })
        // Probes went round with the new leader: had the request moved, it would have by now.
        for _ in 0..<3 { await link.probeOnce() }
        #expect(new.received.value.load(ordering: .relaxed) == 0, "a request that must not be repeated was sent again")
        old.paused.value.store(false, ordering: .relaxed)
        #expect(String(decoding: try await waiting.value, as: UTF8.self) == "old")
        link.close()
        await old.stop()
        await new.stop()
    }

    /// With no peer up, a request waits; it is sent once one answers.
    @Test func aRequestWaitsForAPeerToAnswer() async throws {
        let url = Self.address("late")
        let link = try link([url, Self.address("never")])
        let waiting = Task { try await answerer(link) }
        try await Task.sleep(for: .milliseconds(300))
        let peer = try Peer("late", rank: 1, url: url)
        #expect(try await waiting.value == "late")
        link.close()
        await peer.stop()
    }

    @Test func withNoPeerARequestEndsAtItsTimeout() async throws {
        let urls = [Self.address("none"), Self.address("none")]
        let link = try link(urls)
        await #expect {
            _ = try await link.request([1], timeout: .milliseconds(300))
        } throws: { error in
            (error as? NNGError)?.isTimeout == true
        }
        link.close()
    }

    /// Closing the link ends a request that waits for a peer, as closed.
    @Test func closingEndsAWaitingRequest() async throws {
        let urls = [Self.address("closed"), Self.address("closed")]
        let link = try link(urls)
        let waiting = Task { try await link.request([1], timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        link.close()
        await #expect {
            _ = try await waiting.value
        } throws: { error in
            (error as? NNGError)?.isClosed == true
        }
    }
}
