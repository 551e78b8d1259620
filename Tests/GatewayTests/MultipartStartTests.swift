import Archive
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JSON
import Model
import TestSupport
import Testing
import Wire

@testable import Gateway

/// A `multipart/form-data` body as curl's `-F` writes it.
struct FormBody {
    static let boundary = "------------------------accordTestBoundary7d1f"
    var parts: [(name: String, filename: String?, type: String?, body: [UInt8])] = []

    /// `-F name=value`: no content type, so a configuration value.
    mutating func value(_ name: String, _ text: String) { parts.append((name, nil, nil, Array(text.utf8))) }

    /// `-F name=@file`: a file, sent as `application/octet-stream` unless told otherwise.
    mutating func file(_ name: String, _ body: [UInt8], type: String = "application/octet-stream") {
        parts.append((name, name.split(separator: "/").last.map(String.init), type, body))
    }

    /// Values only, in the given order (`-F name=value ...`).
    static func values(_ values: KeyValuePairs<String, String>) -> FormBody {
        var form = FormBody()
        for (name, text) in values { form.value(name, text) }
        return form
    }

    /// Files only, in the given order (`-F name=@file ...`).
    static func files(_ files: KeyValuePairs<String, [UInt8]>) -> FormBody {
        var form = FormBody()
        for (name, body) in files { form.file(name, body) }
        return form
    }

    var contentType: String { "multipart/form-data; boundary=\(FormBody.boundary)" }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            let quoted = part.name.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            var head = "--\(FormBody.boundary)\r\nContent-Disposition: form-data; name=\"\(quoted)\""
            if let filename = part.filename { head += "; filename=\"\(filename)\"" }
            head += "\r\n"
            if let type = part.type { head += "Content-Type: \(type)\r\n" }
            out += Array((head + "\r\n").utf8) + part.body + Array("\r\n".utf8)
        }
        return out + Array("--\(FormBody.boundary)--\r\n".utf8)
    }
}

/// The pure parts of a multipart start: names, nesting, precedence.
@Suite struct MultipartStartTests {
    let start = MultipartStart(
        parser: StartRequestParser(limits: ZipLimits(maxEntries: 100, maxUnpackedBytes: 1 << 20)))

    func parts(_ form: FormBody) throws -> [MultipartStart.Part] {
        try MultipartStart.parts(ByteBuffer(bytes: form.bytes), boundary: FormBody.boundary, maxParts: 100)
    }

    @Test func dottedNamesNestAndListsSplitOnCommas() throws {
        let nested = try MultipartStart.nested([
            ("arguments.name", "Ada"), ("arguments.deep.n", "1"), ("tags", "a, b,,c"), ("out", "x.y"),
            ("entryPoint", "main"),
        ])
        #expect(
            nested == [
                "arguments": .object(["name": .string("Ada"), "deep": .object(["n": .string("1")])]),
                "tags": .array([.string("a"), .string("b"), .string("c")]), "out": .array([.string("x.y")]),
                "entryPoint": .string("main"),
            ])
        #expect(throws: APIError.self) { try MultipartStart.nested([("arguments", "x"), ("arguments.a", "y")]) }
        #expect(throws: APIError.self) { try MultipartStart.nested([("arguments.a", "y"), ("arguments", "x")]) }
        #expect(throws: APIError.self) { try MultipartStart.nested([("arguments..a", "y")]) }
    }

    @Test func laterSourcesWinKeyByKeyAtEveryDepth() {
        let merged = MultipartStart.merged(
            ["entryPoint": .string("a"), "arguments": .object(["x": .int(1), "y": .int(1)])],
            over: ["arguments": .object(["y": .int(2), "z": .object([:])])])
        #expect(
            merged == [
                "entryPoint": .string("a"), "arguments": .object(["x": .int(1), "y": .int(2), "z": .object([:])]),
            ])
    }

    @Test func contentDispositionParametersAreUnquoted() throws {
        let parsed = MultipartStart.dispositionParameters(#"form-data; name="a \"b\"; c"; filename=x.zip"#)
        #expect(parsed.type == "form-data")
        #expect(parsed.values == ["name": #"a "b"; c"#, "filename": "x.zip"])
        #expect(try MultipartStart.boundary(ofContentType: #"multipart/form-data; boundary="q r""#) == "q r")
        #expect(throws: APIError.self) { try MultipartStart.boundary(ofContentType: "multipart/form-data") }
    }

    @Test func filesLandInTheWorkingFolderOverTheArchive() throws {
        var archive = ZipBuilder()
        archive.add("_main.json", #"{"entryPoint": "main", "arguments": {"x": "1"}}"#)
        archive.add("processes/main.yml", "main:\n- log: old\n")
        archive.add("data/keep.txt", "kept")
        var form = FormBody()
        form.file("archive", archive.build(), type: "application/zip")
        form.file("processes/main.yml", Array("main:\n- log: new\n".utf8))
        form.file("extra.bin", [0, 1, 2])
        let (parsed, payload) = try start.upload(try parts(form))
        #expect(parsed.entryPoint == "main")
        #expect(parsed.arguments == ["x": .string("1")])
        let zip = try ZipArchive(bytes: payload)
        #expect(Set(zip.entries.map(\.path)) == ["_main.json", "processes/main.yml", "data/keep.txt", "extra.bin"])
        #expect(try zip.contents(of: zip.entry("processes/main.yml")!) == Array("main:\n- log: new\n".utf8))
        #expect(try zip.contents(of: zip.entry("data/keep.txt")!) == Array("kept".utf8))
        #expect(try zip.contents(of: zip.entry("extra.bin")!) == [0, 1, 2])
    }

    @Test func anArchiveAloneIsRecordedByteForByte() throws {
        let archive = ZipBuilder.payload("main:\n- log: hi\n")
        var form = FormBody()
        form.file("archive", archive)
        let (parsed, payload) = try start.upload(try parts(form))
        #expect(parsed.entryPoint == "main")
        #expect(payload == archive)
    }

    @Test(arguments: [
        ("../x.yml", "not a path inside"), ("/etc/passwd", "not a path inside"), ("a/../../b", "not a path inside"),
        ("a\\b", "not a path inside"), (String(repeating: "x", count: 300), "too long"),
        (String(repeating: "abc/", count: 300) + "x", "too long"),
    ])
    func fileNamesOutsideTheWorkingFolderAre400(name: String, expected: String) throws {
        var form = FormBody()
        form.file("concord.yml", Array("flows:\n  default:\n  - log: hi\n".utf8))
        form.file(name, [1])
        #expect {
            try start.upload(try parts(form))
        } throws: { error in
            guard let error = error as? APIError else { return false }
            return error.status == .badRequest && error.message.contains(expected)
        }
    }

    @Test func malformedBodiesAre400() throws {
        var form = FormBody()
        form.file("archive", ZipBuilder.payload("main:\n- log: hi\n"))
        let whole = form.bytes
        for cut in [whole.count / 2, whole.count - 10] {
            #expect(throws: APIError.self, "cut at \(cut)") {
                try MultipartStart.parts(
                    ByteBuffer(bytes: Array(whole.prefix(cut))), boundary: FormBody.boundary, maxParts: 100)
            }
        }
        #expect(throws: APIError.self) {
            try MultipartStart.parts(ByteBuffer(string: "no boundary here"), boundary: FormBody.boundary, maxParts: 100)
        }
        let unnamed = "--\(FormBody.boundary)\r\nContent-Type: text/plain\r\n\r\nx\r\n--\(FormBody.boundary)--\r\n"
        #expect(throws: APIError.self) {
            try MultipartStart.parts(ByteBuffer(string: unnamed), boundary: FormBody.boundary, maxParts: 100)
        }
        // What schemathesis sent that crashed the Gateway: a part of bytes with no headers at all.
        let boundary = "1b35495958edbf84dcd5d5ce07bd65d5"
        let headerless: [UInt8] =
            Array("--\(boundary)\r\n".utf8) + [0xF2, 0x84, 0xA7, 0x95, 0xF1, 0xAA, 0x9B, 0x9C, 0x26]
            + Array("--\(boundary)--\r\n".utf8)
        #expect(throws: APIError.self) {
            try MultipartStart.parts(ByteBuffer(bytes: headerless), boundary: boundary, maxParts: 100)
        }
        // And any bytes at all where the headers go: a 4xx or parts, never a trap.
        var random = SplitMix(seed: 1_203)
        for _ in 0..<2_000 {
            let noise = (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let body = Array("--\(boundary)\r\n".utf8) + noise + Array("\r\n\r\nx\r\n--\(boundary)--\r\n".utf8)
            _ = try? MultipartStart.parts(ByteBuffer(bytes: body), boundary: boundary, maxParts: 100)
        }
        var many = FormBody()
        for n in 0..<5 { many.value("v\(n)", "x") }
        #expect(throws: APIError.self) {
            try MultipartStart.parts(ByteBuffer(bytes: many.bytes), boundary: FormBody.boundary, maxParts: 4)
        }
    }
}

/// The multipart start through the router: what is recorded, and that every refusal records nothing.
extension RouterTests {
    func post(
        _ client: some TestClientProtocol, _ form: FormBody, headers: HTTPFields = [:]
    ) async throws -> (HTTPResponse.Status, [String: JSONValue]) {
        try await client.execute(
            uri: "/api/v1/process", method: .post, headers: auth + headers + [.contentType: form.contentType],
            body: ByteBuffer(bytes: form.bytes)
        ) { response in (response.status, try json(response)) }
    }

    @Test func aMultipartStartRecordsTheMergedRequest() async throws {
        try await withGateway { client, scheduler in
            var archive = ZipBuilder()
            archive.add(
                "_main.json",
                #"{"entryPoint": "a", "arguments": {"x": "zip", "y": "zip"}, "tags": ["zip"], "timeout": 5}"#)
            archive.add("processes/main.yml", "c:\n- log: hi\n")
            var form = FormBody()
            form.file("archive", archive.build())
            form.file("request", Array(#"{"entryPoint": "b", "arguments": {"y": "request", "z": "request"}}"#.utf8))
            form.value("entryPoint", "c")
            form.value("arguments.z", "form")
            form.value("tags", "one,two")
            form.value("out", "x")
            let (status, body) = try await post(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "k1"])
            #expect(status == .ok, "\(body)")
            let (again, second) = try await post(client, form, headers: [HTTPField.Name("Idempotency-Key")!: "k1"])
            #expect(again == .ok)
            #expect(second["instanceId"] == body["instanceId"])
            let starts = await scheduler.starts
            let command = try #require(starts.first?.0)
            #expect(command.entryPoint == "c")
            #expect(command.arguments == ["x": .string("zip"), "y": .string("request"), "z": .string("form")])
            #expect(command.tags == ["one", "two"])
            #expect(command.out == ["x"])
            #expect(command.timeoutMillis == 5000)
            #expect(command.idempotencyKey == "k1")
        }
    }

    @Test func aProjectFileAloneIsARunnableStart() async throws {
        try await withGateway { client, scheduler in
            var form = FormBody()
            form.file("concord.yml", Array("flows:\n  default:\n  - log: hi\n".utf8))
            let (status, body) = try await post(client, form)
            #expect(status == .ok, "\(body)")
            let payload = try #require(await scheduler.starts.first?.1)
            #expect(try ZipArchive(bytes: payload).entries.map(\.path) == ["concord.yml"])
        }
    }

    @Test func badMultipartStartsAreRefusedAndRecordNothing() async throws {
        try await withGateway(maxUnpackedBytes: 4000) { client, scheduler in
            let hello = ZipBuilder.payload("main:\n- log: hi\n")
            let withArchive: (FormBody) -> FormBody = { rest in
                var form = FormBody()
                form.file("archive", hello)
                form.parts += rest.parts
                return form
            }
            let cases: [(String, FormBody, HTTPResponse.Status, String)] = [
                ("values only", .values(["entryPoint": "main"]), .badRequest, "nothing to run"),
                ("not a zip", .files(["archive": Array("not a zip".utf8)]), .badRequest, "ZIP"),
                (
                    "request not an object", withArchive(.files(["request": Array("[1]".utf8)])), .badRequest,
                    "request part must be a JSON object"
                ),
                (
                    "value and group", withArchive(.values(["arguments": "x", "arguments.a": "y"])), .badRequest,
                    "both alone and as a group"
                ),
                ("escaping file", withArchive(.files(["../escape.txt": [1]])), .badRequest, "not a path inside"),
                ("two archives", withArchive(.files(["archive": hello])), .badRequest, "appears twice"),
                (
                    "no entry point", .files(["processes/main.yml": Array("main:\n- log: hi\n".utf8)]), .badRequest,
                    "no entryPoint"
                ),
                (
                    "files over the unpacked limit",
                    withArchive(.files(["big.bin": [UInt8](repeating: 1, count: 5000)])),
                    .contentTooLarge, "unpacks to more than"
                ),
                ("bad timeout", withArchive(.values(["timeout": "soon"])), .badRequest, "timeout"),
            ]
            for (name, form, expected, message) in cases {
                let (status, body) = try await post(client, form)
                #expect(status == expected, "\(name): \(body)")
                #expect(body["ok"] == .bool(false), "\(name)")
                let text = body["message"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? ""
                #expect(text.contains(message), "\(name): \(text)")
            }
            try await client.execute(
                uri: "/api/v1/process", method: .post, headers: auth + [.contentType: "multipart/form-data"],
                body: ByteBuffer(bytes: hello)
            ) { #expect($0.status == .badRequest) }
            #expect(await scheduler.starts.isEmpty)
            #expect(await scheduler.head == 0)
        }
    }
}
