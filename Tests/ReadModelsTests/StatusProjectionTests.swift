import JSON
import Model
import TestSupport
import Testing

@testable import ReadModels

@Suite struct StatusProjectionTests {
    private func numbered(_ events: [EventEnvelope]) -> [EventEnvelope] {
        events.enumerated().map { offset, envelope in
            var copy = envelope
            copy.seq = UInt64(offset + 1)
            return copy
        }
    }

    @Test func aRunGoesTheWholeWay() {
        var projection = StatusProjection()
        let events = numbered([everyEvent()[0], everyEvent()[1], everyEvent()[2], everyEvent()[3], everyEvent()[4]])
        var changes: [ProjectionChange] = []
        for e in events { changes.append(projection.apply(e)) }
        let view = projection.instances[fixedID]!
        #expect(view.status == .finished)
        #expect(view.history.map(\.status) == [.enqueued, .starting, .running, .finished])
        #expect(view.out == ["result": .int(42)])
        #expect(changes.last == .terminal(fixedID))
        #expect(changes[3] == ProjectionChange.none)
    }

    @Test func terminalAbsorbsEverythingAfter() {
        var projection = StatusProjection()
        let all = everyEvent()
        for e in numbered([all[0], all[6], all[2], all[4], all[5]]) { projection.apply(e) }
        let view = projection.instances[fixedID]!
        #expect(view.status == .cancelled)
        #expect(view.history.map(\.status) == [.enqueued, .cancelled])
        #expect(view.error == nil)
    }

    @Test func duplicatesAndOldEventsChangeNothing() {
        var projection = StatusProjection()
        let events = numbered(Array(everyEvent().prefix(3)))
        for e in events { projection.apply(e) }
        let before = projection.instances[fixedID]
        for e in events { #expect(projection.apply(e) == .none) }
        #expect(projection.instances[fixedID] == before)
        #expect(projection.head == 3)
    }

    @Test func listingIsNewestFirstWithFilters() {
        var projection = StatusProjection()
        let a = InstanceID()
        let b = InstanceID()
        var seq: UInt64 = 0
        for e in [created(a), created(b), event(b, .instanceCancelled(InstanceCancelled(reason: "x")))] {
            seq += 1
            var copy = e
            copy.seq = seq
            projection.apply(copy)
        }
        #expect(projection.list(status: nil, tag: nil, limit: 10, offset: 0).map(\.id) == [b, a])
        #expect(projection.list(status: .enqueued, tag: nil, limit: 10, offset: 0).map(\.id) == [a])
        #expect(projection.list(status: nil, tag: "demo", limit: 1, offset: 1).map(\.id) == [a])
        #expect(projection.list(status: nil, tag: "nope", limit: 10, offset: 0).isEmpty)
    }

    /// A seeded random walk over many instances and arbitrary event orders: statuses only move
    /// forward, terminal statuses never change, and folding the stream in any chunking gives the
    /// same projection as folding it at once.
    @Test(arguments: [1, 7, 42, 1234, 99_991])
    func randomWalkKeepsTheInvariants(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        let ids = (0..<8).map { _ in InstanceID() }
        var stream: [EventEnvelope] = []
        for i in 0..<600 {
            let id = ids[Int(rng.next() % UInt64(ids.count))]
            let kinds = everyEvent(id)
            var e = kinds[Int(rng.next() % UInt64(kinds.count))]
            e.at = Timestamp(millis: Int64(i))
            e.seq = UInt64(stream.count + 1)
            stream.append(e)
            if rng.next() % 10 == 0 { stream.append(e) }  // a duplicate delivery
        }
        var whole = StatusProjection()
        var lastStatus: [InstanceID: InstanceStatus] = [:]
        for e in stream {
            whole.apply(e)
            if let view = whole.instances[e.instanceID] {
                if let before = lastStatus[e.instanceID] {
                    #expect(view.status.rank >= before.rank)
                    if before.isTerminal { #expect(view.status == before) }
                }
                lastStatus[e.instanceID] = view.status
            }
        }
        for view in whole.instances.values {
            let ranks = view.history.map(\.status.rank)
            #expect(ranks == ranks.sorted())
            #expect(Set(ranks).count == ranks.count)
        }
        var chunked = StatusProjection()
        var index = 0
        while index < stream.count {
            let size = Int(rng.next() % 17) + 1
            for e in stream[index..<min(stream.count, index + size)] { chunked.apply(e) }
            // Re-delivering what was already applied (a catch-up overlapping the stream) is harmless.
            for e in stream[max(0, index - 3)..<index] { chunked.apply(e) }
            index += size
        }
        #expect(chunked.instances == whole.instances)
        #expect(chunked.order == whole.order)
    }

    @Test func aTeamsListingHoldsItsInstancesOnlyAndKeyEventsAreNoInstances() {
        var projection = StatusProjection()
        var seq: UInt64 = 0
        func add(_ team: String?) -> InstanceID {
            let id = InstanceID()
            var envelope = created(id)
            if case .instanceCreated(var data) = envelope.event {
                data.team = team
                envelope.event = .instanceCreated(data)
            }
            seq += 1
            envelope.seq = seq
            projection.apply(envelope)
            return id
        }
        let payments = add("payments")
        let search = add("search")
        let configured = add(nil)
        for var key in everyKeyEvent() {
            seq += 1
            key.seq = seq
            #expect(projection.apply(key) == .none)
        }
        #expect(projection.instances.count == 3)
        #expect(projection.instances[payments]?.team == "payments")
        let all = projection.list(status: nil, tag: nil, limit: 10, offset: 0).map(\.id)
        #expect(all == [configured, search, payments])
        #expect(
            projection.list(status: nil, tag: nil, visible: .team("payments"), limit: 10, offset: 0).map(\.id) == [
                payments
            ])
        #expect(projection.list(status: nil, tag: nil, visible: .team("nobody"), limit: 10, offset: 0).isEmpty)
    }

    @Test func theKeyProjectionKnowsLiveKeysByHash() {
        var keys = KeyProjection()
        let events = everyKeyEvent()
        var first = events[0]
        first.seq = 1
        keys.apply(first)
        let hash = String(repeating: "cd", count: 32)
        #expect(keys.live(hash: hash)?.name == "ci-bot")
        #expect(keys.live.map(\.team) == ["payments"])
        #expect(keys.name(ofPrincipal: fixedKeyID.description) == "ci-bot")
        var revoked = events[1]
        revoked.seq = 2
        keys.apply(revoked)
        #expect(keys.live(hash: hash) == nil && keys.live.isEmpty)
        #expect(keys.name(ofPrincipal: fixedKeyID.description) == "ci-bot", "the tooling still names a revoked key")
        keys.apply(first)
        #expect(keys.live(hash: hash) == nil, "an old event changes nothing")
    }
}
