import Archive
import Foundation
import Model
import TestSupport
import Testing
import Wire

@testable import Gateway

/// `_main.json` as users (and attackers) write it: every input is either parsed or refused with a
/// 4xx that says why; nothing crashes or hangs.
@Suite struct StartRequestParserTests {
    let parser = StartRequestParser(limits: ZipLimits())

    private func parse(_ main: String) -> Result<StartRequestParser.Parsed, APIError> {
        let zip = ZipBuilder.payload("main:\n- log: hi\n", main: main)
        do {
            return .success(try parser.parse(zip))
        } catch let error as APIError {
            return .failure(error)
        } catch {
            Issue.record("unexpected error type: \(error)")
            return .failure(APIError(.badRequest, "\(error)"))
        }
    }

    @Test func theUsualShapes() throws {
        let parsed = try parse(
            #"{"entryPoint": "main", "arguments": {"a": [1, {"b": null}]}, "timeout": "PT1M", "out": ["x.y"]}"#
        ).get()
        #expect(parsed.entryPoint == "main")
        #expect(parsed.timeoutMillis == 60_000)
        #expect(parsed.out == ["x.y"])
        #expect(try parse(#"{"entryPoint": "main", "timeout": 5}"#).get().timeoutMillis == 5_000)
    }

    @Test(arguments: [
        ("[1]", "must be a JSON object"),
        ("{}", "no entryPoint"),
        (#"{"entryPoint": 3}"#, "no entryPoint"),
        (#"{"entryPoint": "main", "arguments": []}"#, "arguments must be"),
        (#"{"entryPoint": "main", "timeout": "soon"}"#, "timeout"),
        // Numbers past any clock: refused, never an overflow (one crashed the Gateway in CI).
        (#"{"entryPoint": "main", "timeout": 9223372036854775807}"#, "timeout"),
        (#"{"entryPoint": "main", "timeout": 1e300}"#, "timeout"),
        (#"{"entryPoint": "main", "timeout": "P99999999999999999999D"}"#, "timeout"),
        (#"{"entryPoint": "main", "handlerTimeout": 9223372036854775807}"#, "handlerTimeout"),
        (#"{"entryPoint": "main", "handlerTimeout": 1e-9}"#, "handlerTimeout"),
        (#"{"entryPoint": "main", "out": "x"}"#, "out"),
        ("{\"entryPoint\": \"main\"", "not valid JSON"),
    ])
    func mistakesAreNamed(main: String, expected: String) {
        guard case .failure(let error) = parse(main) else {
            Issue.record("\(main) was accepted")
            return
        }
        #expect(error.status.code == 400)
        #expect(error.message.contains(expected), "\(error.message)")
    }

    @Test func deepNestingIsRefusedWithTheReason() {
        let deep =
            #"{"entryPoint": "main", "arguments": {"x": "# + String(repeating: "[", count: 5000)
            + String(repeating: "]", count: 5000) + "}}"
        guard case .failure(let error) = parse(deep) else {
            Issue.record("5,000 levels of nesting were accepted")
            return
        }
        #expect(error.status.code == 400)
        #expect(error.message.contains("not valid JSON"), "\(error.message)")
    }

    /// Seeded mutations of valid documents: byte flips, cuts, insertions, repeats. The same seeds
    /// run every time, so a failure can be replayed.
    @Test(arguments: 0..<4)
    func mutatedDocumentsAreParsedOrRefused(seed: Int) async {
        var rng = SplitMix(seed: UInt64(seed) &* 0x1234_5678_9ABC)
        let corpus = [
            #"{"entryPoint": "main", "arguments": {"name": "x", "n": [1, 2.5e3, -7, true, null, {"k": "\u00e9"}]}}"#,
            #"{"entryPoint": "flow", "timeout": "PT1H2M3.5S", "out": ["a", "b.c"], "tags": ["t"]}"#,
        ]
        let alphabet = Array(#"{}[]",:0123456789.eE+-\"tfnu \#u{0}\#u{7f}é"#.utf8)
        for _ in 0..<750 {
            await Task.yield()
            var bytes = Array(corpus[Int.random(in: 0..<corpus.count, using: &rng)].utf8)
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let at = Int.random(in: 0..<max(bytes.count, 1), using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !bytes.isEmpty: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes = Array(bytes.prefix(at))
                case 2: bytes.insert(alphabet.randomElement(using: &rng)!, at: min(at, bytes.count))
                case 3 where !bytes.isEmpty:
                    let slice = bytes[at..<min(bytes.count, at + Int.random(in: 1...8, using: &rng))]
                    bytes.insert(contentsOf: Array(repeating: Array(slice), count: 50).joined(), at: at)
                default: bytes.shuffle(using: &rng)
                }
            }
            if case .failure(let error) = parse(String(decoding: bytes, as: UTF8.self)) {
                #expect(error.status.code == 400 || error.status.code == 413, "\(error)")
            }
        }
    }
}
