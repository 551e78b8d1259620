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
            var cases: [(String, FormBody, HTTPResponse.Status, String)] = []
            var form = FormBody()
            form.value("entryPoint", "main")
            cases.append(("values only", form, .badRequest, "nothing to run"))
            form = FormBody()
            form.file("archive", Array("not a zip".utf8))
            cases.append(("not a zip", form, .badRequest, "ZIP"))
            form = FormBody()
            form.file("archive", hello)
            form.file("request", Array("[1]".utf8))
            cases.append(("request not an object", form, .badRequest, "request part must be a JSON object"))
            form = FormBody()
            form.file("archive", hello)
            form.value("arguments", "x")
            form.value("arguments.a", "y")
            cases.append(("value and group", form, .badRequest, "both alone and as a group"))
            form = FormBody()
            form.file("archive", hello)
            form.file("../escape.txt", [1])
            cases.append(("escaping file", form, .badRequest, "not a path inside"))
            form = FormBody()
            form.file("archive", hello)
            form.file("archive", hello)
            cases.append(("two archives", form, .badRequest, "appears twice"))
            form = FormBody()
            form.file("processes/main.yml", Array("main:\n- log: hi\n".utf8))
            cases.append(("no entry point", form, .badRequest, "no entryPoint"))
            form = FormBody()
            form.file("archive", hello)
            form.file("big.bin", [UInt8](repeating: 1, count: 5000))
            cases.append(("files over the unpacked limit", form, .contentTooLarge, "unpacks to more than"))
            form = FormBody()
            form.file("archive", hello)
            form.value("timeout", "soon")
            cases.append(("bad timeout", form, .badRequest, "timeout"))
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
