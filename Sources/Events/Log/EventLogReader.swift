import Foundation

/// Reads a data folder's event log without changing it: what the tooling (`accord log verify`,
/// `export`, `show`, `scan`) uses, offline or beside a running Scheduler. Unlike `FileEventLog`,
/// which cuts a torn tail on open, it only reports what it finds.
package struct EventLogReader {
    /// Where reading stopped early, and why.
    package struct Problem: Error, CustomStringConvertible, Sendable {
        package var segment: String
        package var offset: Int
        package var reason: String
        /// In the last segment after its last intact record: a torn write the Scheduler cuts (it was
        /// never acknowledged), not damage.
        package var isTornTail: Bool

        package var description: String {
            "\(segment) at byte \(offset): \(reason)\(isTornTail ? " (a torn tail: never acknowledged, cut when the Scheduler opens the log)" : "")"
        }
    }

    package let directory: String
    package let segments: [String]

    package init(directory: String) throws {
        self.directory = directory
        guard FileManager.default.fileExists(atPath: directory) else {
            throw EventLogError("\(directory) does not exist")
        }
        segments = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }.sorted()
            .map { directory + "/" + $0 }
    }

    /// The folder holding the log: `DATA/events` for a data folder, or the log folder itself.
    package static func logDirectory(forData data: String) -> String {
        FileManager.default.fileExists(atPath: data + "/events") ? data + "/events" : data
    }

    /// Calls `body` with each intact record's sequence number (by position), segment, offset and
    /// bytes, in order. Returns where it stopped early, if it did.
    package func forEachRecord(_ body: (_ seq: UInt64, _ segment: String, _ offset: Int, _ bytes: Data) throws -> Void)
        throws -> Problem?
    {
        var expectedFirst: UInt64?
        for (index, path) in segments.enumerated() {
            let name = (path as NSString).lastPathComponent
            guard let firstSeq = UInt64(name.dropFirst("segment-".count).dropLast(".log".count)) else {
                return Problem(segment: path, offset: 0, reason: "not a segment name", isTornTail: false)
            }
            if let expectedFirst, firstSeq != expectedFirst {
                return Problem(
                    segment: path, offset: 0,
                    reason: "starts at sequence \(firstSeq) but the segment before it ends at \(expectedFirst - 1)",
                    isTornTail: false)
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
            var seq = firstSeq
            var failure: (any Error)?
            let walk = FileEventLog.walkRecords(data) { offset, bytes in
                guard failure == nil else { return }
                do { try body(seq, path, offset, bytes) } catch { failure = error }
                seq += 1
            }
            if let failure { throw failure }
            if let problem = walk.problem {
                let torn = index == segments.count - 1 && !walk.intactAfter
                return Problem(
                    segment: path, offset: walk.end,
                    reason: problem + (walk.intactAfter ? ", with intact records after it" : ""), isTornTail: torn)
            }
            expectedFirst = seq
        }
        return nil
    }

    /// Every intact event, decoded, in order (stops quietly at a torn tail; throws on damage).
    package func forEachEvent(_ body: (EventEnvelope) throws -> Void) throws {
        let decoder = JSONDecoder()
        if let problem = try forEachRecord({ seq, segment, offset, bytes in
            let envelope: EventEnvelope
            do {
                envelope = try decoder.decode(EventEnvelope.self, from: bytes)
            } catch {
                throw Problem(
                    segment: segment, offset: offset, reason: "the event does not decode: \(error)", isTornTail: false)
            }
            guard envelope.seq == seq else {
                throw Problem(
                    segment: segment, offset: offset, reason: "sequence \(envelope.seq) where \(seq) belongs",
                    isTornTail: false)
            }
            try body(envelope)
        }), !problem.isTornTail {
            throw problem
        }
    }
}
