import Archive
import JSON
import MultipartKit
import NIOCore

/// A start sent as `multipart/form-data`, read as the reference server reads it (API.md
/// "Multipart start"): `archive` is the payload ZIP, `request` a JSON object with the keys of
/// `_main.json`, every other `text/plain` part a configuration value under its dotted name, and
/// every other part a file for the working folder. What comes out is what a ZIP start makes: the
/// configuration checked as `_main.json` is, and one ZIP payload holding the archive's entries with
/// the files over them, inside the same limits.
struct MultipartStart {
    /// One part of the body, as sent.
    struct Part: Equatable {
        var name: String
        /// The part's media type without parameters, lower-cased; nil when it names none.
        var mediaType: String?
        var body: [UInt8]

        /// A configuration value rather than a file: `text/plain`, or no type at all (RFC 7578's
        /// default, and what `curl -F name=value` sends).
        var isText: Bool { mediaType == nil || mediaType == "text/plain" }
    }

    let parser: StartRequestParser

    /// The `boundary` parameter of a `multipart/form-data` content type.
    static func boundary(ofContentType header: String) throws -> String {
        for parameter in header.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else {
                continue
            }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            guard !value.isEmpty, value.utf8.count <= 70 else { break }
            return value
        }
        throw APIError(.badRequest, "the multipart/form-data Content-Type has no boundary (1 to 70 characters)")
    }

    /// Splits the body into its parts: at most `maxParts`, each with a form-data name, the body
    /// closed by its final boundary.
    static func parts(_ body: ByteBuffer, boundary: String, maxParts: Int) throws -> [Part] {
        let parser = MultipartParser(boundary: boundary)
        var parts: [Part] = []
        var headers: [(String, String)] = []
        var current: [UInt8] = []
        var open = false
        var refusal: APIError?
        parser.onHeader = { name, value in
            open = true
            headers.append((name, value))
        }
        parser.onBody = { chunk in
            open = true
            current += chunk.readableBytesView
        }
        parser.onPartComplete = {
            defer {
                headers = []
                current = []
                open = false
            }
            guard refusal == nil else { return }
            guard parts.count < maxParts else {
                refusal = APIError(.contentTooLarge, "the multipart body has more than \(maxParts) parts")
                return
            }
            do {
                parts.append(try part(headers: headers, body: current))
            } catch let error as APIError {
                refusal = error
            } catch {
                refusal = APIError(.badRequest, "a part of the multipart body is malformed")
            }
        }
        try checkHeaderNames(body, boundary: boundary)
        do {
            try parser.execute(body)
        } catch {
            throw APIError(.badRequest, "the multipart body is malformed (it does not follow its boundary)")
        }
        if let refusal { throw refusal }
        guard !open else { throw APIError(.badRequest, "the multipart body is cut short: its last part never ends") }
        guard !parts.isEmpty else {
            throw APIError(.badRequest, "the multipart body has no parts; send -F archive=@payload.zip")
        }
        return parts
    }

    /// multipart-kit 4.7.1 indexes a table of 128 entries with each byte of a part's header names:
    /// one of 128 or more trapped and brought the Gateway down (schemathesis found it). Every header
    /// name is checked to be ASCII first; a line that is not a header at all is left to the parser.
    static func checkHeaderNames(_ body: ByteBuffer, boundary: String) throws {
        let bytes = body.readableBytesView
        let delimiter = Array(("--" + boundary).utf8)
        guard let first = delimiter.first else { return }
        var index = bytes.startIndex
        while let start = bytes[index...].firstIndex(of: first) {
            index = start + 1
            guard bytes.endIndex - start >= delimiter.count + 2,
                bytes[start..<(start + delimiter.count)].elementsEqual(delimiter)
            else { continue }
            var line = start + delimiter.count
            guard bytes[line] == 0x0D, bytes[line + 1] == 0x0A else { continue }
            line += 2
            // The part's header lines, up to the empty one.
            while line < bytes.endIndex {
                let end = bytes[line...].firstIndex(of: 0x0D) ?? bytes.endIndex
                if end == line { break }
                let name = bytes[line..<end].prefix { $0 != UInt8(ascii: ":") }
                if name.contains(where: { $0 >= 0x80 }) {
                    throw APIError(.badRequest, "a part of the multipart body has a header name that is not ASCII")
                }
                line = end + 2
            }
            index = max(index, min(line, bytes.endIndex))
        }
    }

    private static func part(headers: [(String, String)], body: [UInt8]) throws -> Part {
        guard let disposition = headers.last(where: { $0.0.lowercased() == "content-disposition" })?.1 else {
            throw APIError(.badRequest, "a part of the multipart body has no Content-Disposition header")
        }
        let parameters = dispositionParameters(disposition)
        guard parameters.type == "form-data", let name = parameters.values["name"], !name.isEmpty else {
            throw APIError(.badRequest, "every part must be form-data with a name, not '\(disposition)'")
        }
        let mediaType = headers.last(where: { $0.0.lowercased() == "content-type" })?.1
            .split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        return Part(name: name, mediaType: mediaType, body: body)
    }

    /// `form-data; name="a"; filename="b.zip"`: the type and its parameters, quoted strings
    /// unescaped.
    static func dispositionParameters(_ header: String) -> (type: String, values: [String: String]) {
        var characters = Substring(header)
        func skipSpaces() { characters = characters.drop(while: { $0 == " " || $0 == "\t" }) }
        skipSpaces()
        let type = characters.prefix(while: { $0 != ";" })
        characters = characters.dropFirst(type.count)
        var values: [String: String] = [:]
        while characters.first == ";" {
            characters = characters.dropFirst()
            skipSpaces()
            let key = characters.prefix(while: { $0 != "=" && $0 != ";" })
            characters = characters.dropFirst(key.count)
            guard characters.first == "=" else { continue }
            characters = characters.dropFirst()
            var value = ""
            if characters.first == "\"" {
                characters = characters.dropFirst()
                while let c = characters.first, c != "\"" {
                    characters = characters.dropFirst()
                    if c == "\\", let escaped = characters.first {
                        value.append(escaped)
                        characters = characters.dropFirst()
                    } else {
                        value.append(c)
                    }
                }
                characters = characters.dropFirst()
                characters = characters.drop(while: { $0 != ";" })
            } else {
                let raw = characters.prefix(while: { $0 != ";" })
                characters = characters.dropFirst(raw.count)
                value = raw.trimmingCharacters(in: .whitespaces)
            }
            values[key.trimmingCharacters(in: .whitespaces).lowercased()] = value
        }
        return (type.trimmingCharacters(in: .whitespaces).lowercased(), values)
    }

    /// The start the parts describe: the configuration merged (`_main.json` in the archive, then
    /// `request`, then the form values) and checked, and the payload to record.
    func upload(_ parts: [Part]) throws -> (parsed: StartRequestParser.Parsed, payload: [UInt8]) {
        var seen = Set<String>()
        for part in parts where !seen.insert(part.name).inserted {
            throw APIError(.badRequest, "the part '\(part.name)' appears twice; send each name once")
        }
        let archivePart = parts.first { $0.name == "archive" }
        let requestPart = parts.first { $0.name == "request" }
        let rest = parts.filter { $0.name != "archive" && $0.name != "request" }
        let files = try rest.filter { !$0.isText }.map { (path: try MultipartStart.filePath($0.name), body: $0.body) }
        let values = try rest.filter(\.isText).map { part -> (String, String) in
            guard let text = String(validating: part.body, as: UTF8.self) else {
                throw APIError(.badRequest, "the value of '\(part.name)' is not UTF-8 text")
            }
            return (part.name, text)
        }
        let archive = try archivePart.map { (bytes: $0.body, zip: try parser.open($0.body)) }
        guard archive != nil || !files.isEmpty else {
            throw APIError(
                .badRequest,
                "the multipart start has nothing to run: send the payload as -F archive=@payload.zip, or files such as -F concord.yml=@concord.yml"
            )
        }
        var configuration = try archive.flatMap { try parser.mainJSON(of: $0.zip) } ?? [:]
        if let requestPart {
            let request = try StartRequestParser.jsonObject(requestPart.body, source: "the request part")
            configuration = MultipartStart.merged(configuration, over: request)
        }
        configuration = MultipartStart.merged(configuration, over: try MultipartStart.nested(values))

        let entries = archive?.zip.entries ?? []
        let parsed = try StartRequestParser.configuration(
            configuration, hasProjectFile: StartRequestParser.hasProjectFile(entries.map(\.path) + files.map(\.path)),
            source: "the start request")
        if let archive, files.isEmpty { return (parsed, archive.bytes) }

        var writer = ZipWriter()
        let replaced = Set(files.map(\.path))
        if let archive {
            for entry in entries where !replaced.contains(entry.path) { try writer.copy(entry, from: archive.zip) }
        }
        for file in files { writer.add(file.path, file.body) }
        let payload = writer.build()
        try parser.checkLimits(payload)
        return (parsed, payload)
    }

    /// A file part's name as a path in the working folder: relative, inside it.
    static func filePath(_ name: String) throws -> String {
        guard !name.hasPrefix("/"), !name.contains(".."), !name.contains("\\"), !name.contains("\0") else {
            throw APIError(
                .badRequest,
                "the part name '\(name)' is not a path inside the working folder (absolute, '..' or '\\' are refused)")
        }
        let parts = name.split(separator: "/").filter { $0 != "." }
        guard !parts.isEmpty else { throw APIError(.badRequest, "the part name '\(name)' names no file") }
        guard name.utf8.count <= 1024, parts.allSatisfy({ $0.utf8.count <= 255 }) else {
            throw APIError(
                .badRequest,
                "the part name '\(name.prefix(64))…' is too long for a file (1024 bytes, 255 per folder or file)")
        }
        return parts.joined(separator: "/")
    }

    /// Form values under their dotted names: `arguments.name=Ada` is `{"arguments": {"name": "Ada"}}`.
    /// Values stay strings, except `tags` and `out`, which are comma-separated lists.
    static func nested(_ values: [(String, String)]) throws -> [String: JSONValue] {
        var root: [String: JSONValue] = [:]
        for (name, text) in values {
            let path = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !path.contains(where: \.isEmpty) else {
                throw APIError(.badRequest, "the value name '\(name)' has an empty part between its dots")
            }
            let value: JSONValue =
                path.count == 1 && (name == "tags" || name == "out")
                ? .array(
                    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                        .map(JSONValue.string))
                : .string(text)
            try insert(value, at: path[...], into: &root, name: name)
        }
        return root
    }

    private static func insert(
        _ value: JSONValue, at path: ArraySlice<String>, into object: inout [String: JSONValue], name: String
    ) throws {
        let key = path.first!
        guard path.count > 1 else {
            guard object[key] == nil else {
                throw APIError(.badRequest, "the value '\(name)' is given both alone and as a group of dotted names")
            }
            object[key] = value
            return
        }
        var child: [String: JSONValue]
        switch object[key] {
        case nil: child = [:]
        case .object(let existing): child = existing
        default: throw APIError(.badRequest, "the value '\(name)' is given both alone and as a group of dotted names")
        }
        try insert(value, at: path.dropFirst(), into: &child, name: name)
        object[key] = .object(child)
    }

    /// `top` over `base`: objects merge key by key, at every depth; anything else is replaced.
    static func merged(_ base: [String: JSONValue], over top: [String: JSONValue]) -> [String: JSONValue] {
        var out = base
        for (key, value) in top {
            if case .object(let upper) = value, case .object(let lower)? = out[key] {
                out[key] = .object(merged(lower, over: upper))
            } else {
                out[key] = value
            }
        }
        return out
    }
}
