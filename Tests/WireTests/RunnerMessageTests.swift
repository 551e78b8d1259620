import Foundation
import JSON
import Model
import TestSupport
import Testing

@testable import Wire

/// The executor reads runner messages with the fast parser; it must read exactly what
/// `JSONDecoder` reads, for every kind of message the runner writes.
@Suite struct RunnerMessageTests {
    @Test(arguments: 0..<2)
    func theFastPathReadsWhatJSONDecoderReads(seed: Int) async throws {
        var random = RandomJSON(seed: UInt64(seed) &+ 4242)
        let encoder = EventCodec.makeEncoder()
        for n in 0..<200 {
            await Task.yield()
            let messages: [RunnerMessage] = [
                .begin(InstanceID()),
                .log(
                    LogLine(
                        at: Timestamp(millis: Int64(n)), level: [.debug, .info, .warn, .error][n % 4],
                        text: random.text())),
                .steps([
                    StepRecord(
                        flow: random.text(), step: random.text(), file: random.text(), line: n,
                        column: n % 2 == 0 ? nil : n,
                        startedAt: Timestamp(millis: 9), durationMicros: Int64(n), outcome: n % 3 == 0 ? .failed : .ok)
                ]),
                .result(
                    RunnerResult(
                        error: n % 2 == 0 ? nil : random.text(), out: random.object(extra: ["Key"]),
                        reusable: n % 3 == 0)),
                .result(RunnerResult(error: random.text(), out: [:], variables: random.object())),
                .handlers(["onCancel", random.text()]),
                .attachments(Data(Array(random.text().utf8)).base64EncodedString()),
                .state(Data(Array(random.text().utf8)).base64EncodedString()),
                .result(RunnerResult(error: nil, out: [:], suspended: random.text())),
            ]
            for message in messages {
                let line = Array(try encoder.encode(message))
                #expect(message.fastEncoded == line, "\(String(decoding: line, as: UTF8.self))")
                let reference = try JSONDecoder().decode(RunnerMessage.self, from: Data(line))
                let fast = try #require(RunnerMessage.fastDecode(line[...]), "\(String(decoding: line, as: UTF8.self))")
                #expect(try encoder.encode(fast) == encoder.encode(reference))
            }
        }
        // Anything else still decodes, through JSONDecoder.
        let withFraction = Array(
            try encoder.encode(RunnerMessage.result(RunnerResult(error: nil, out: ["x": .double(0.5)]))))
        #expect(RunnerMessage.fastDecode(withFraction[...]) == nil)
        #expect(RunnerMessage.result(RunnerResult(error: nil, out: ["x": .double(0.5)])).fastEncoded == nil)
        if case .result(let result)? = RunnerMessage.decode(withFraction[...]) {
            #expect(result.out["x"] == .double(0.5))
        } else {
            Issue.record("a message with a fraction did not decode")
        }
        #expect(RunnerMessage.decode(Array("not json".utf8)[...]) == nil)
    }

    /// A child's start goes out as a line (through `Codable`), and its answer comes back as a frame
    /// on the runner's stdin, which the same reader as requests splits.
    @Test func aChildsStartAndItsAnswerTravel() throws {
        let start = ChildStart(
            entryPoint: "child", arguments: ["n": .int(1), "s": .string("x\ny")], out: ["a"], tags: ["t"], sync: true,
            fork: true)
        let line = Array(try EventCodec.makeEncoder().encode(RunnerMessage.startChild(start)))
        #expect(RunnerMessage.startChild(start).fastEncoded == nil)
        guard case .startChild(let read)? = RunnerMessage.decode(line[...]) else {
            Issue.record("\(String(decoding: line, as: UTF8.self))")
            return
        }
        #expect(read == start)
        let id = InstanceID()
        for reply in [RunnerReply.childStarted(id), .childRefused("the instance no longer runs there")] {
            var reader = RunnerFrame.Reader()
            try RunnerFrame.encode(reply).withUnsafeBytes { reader.append($0) }
            let frame = try #require(try reader.next())
            #expect(RunnerReply.decode(Array(frame.json)) == reply && frame.payload.isEmpty)
        }
        #expect(RunnerReply.decode(Array("{}".utf8)) == nil)
    }

    @Test func requestsAreWrittenAndReadLikeCodable() throws {
        var random = RandomJSON(seed: 31)
        let encoder = EventCodec.makeEncoder()
        for n in 0..<300 {
            let request = RunnerRequest(
                instanceID: InstanceID(), entryPoint: n % 2 == 0 ? nil : random.text(),
                arguments: random.object(extra: ["Key"]), out: [random.text(), random.text()],
                workDir: "/data/work/" + random.text(),
                limits: n % 3 == 0
                    ? nil : InstanceLimits(maxProcesses: n, maxMemoryBytes: n << 20, maxOpenFiles: 64 + n),
                maxEntries: 10 + n, maxUnpackedBytes: n << 10)
            let reference = Array(try encoder.encode(request))
            #expect(request.fastJSON == reference, "\(String(decoding: reference, as: UTF8.self))")
            let read = try #require(RunnerRequest.fastDecode(reference[...]))
            #expect(try encoder.encode(read) == encoder.encode(request))
        }
        let withFraction = RunnerRequest(
            instanceID: InstanceID(), entryPoint: nil, arguments: ["x": .double(2.5)], out: [], workDir: "/w",
            limits: nil, maxEntries: 10, maxUnpackedBytes: 1 << 20)
        #expect(withFraction.fastJSON == nil)
        let frame = try RunnerFrame.encode(withFraction, payload: [9])
        var reader = RunnerFrame.Reader()
        frame.withUnsafeBytes { reader.append($0) }
        let next = try reader.next()
        let (json, payload) = try #require(next)
        #expect(Array(payload) == [9])
        #expect(RunnerRequest.decode(json)?.arguments["x"] == .double(2.5))
    }

    /// Frames arrive over a pipe in pieces of any size, several to a read: each comes out whole,
    /// in order, and none before its last byte.
    @Test func framesComeOutWholeWhateverTheReadSizes() throws {
        let requests = (0..<20).map { n in
            RunnerRequest(
                instanceID: InstanceID(), entryPoint: "main", arguments: ["n": .int(Int64(n))], out: [],
                workDir: "/w/\(n)", limits: nil, maxEntries: 10, maxUnpackedBytes: 1 << 20)
        }
        let payloads = (0..<20).map { n in [UInt8](repeating: UInt8(n), count: n * 37) }
        let stream = try zip(requests, payloads).flatMap { try RunnerFrame.encode($0, payload: $1) }
        for chunk in [1, 3, 8, 64, 100_000] {
            var reader = RunnerFrame.Reader()
            var read: [(json: ArraySlice<UInt8>, payload: ArraySlice<UInt8>)] = []
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + chunk)
                stream[offset..<end].withUnsafeBytes { reader.append($0) }
                offset = end
                while let frame = try reader.next() { read.append(frame) }
            }
            #expect(read.count == 20, "chunks of \(chunk)")
            for (n, frame) in read.enumerated() {
                #expect(Array(frame.payload) == payloads[n])
                #expect(RunnerRequest.decode(frame.json)?.workDir == "/w/\(n)")
            }
        }
    }
}
