import Archive
import Foundation
import JSON
import Model
import ReadModels
import Wire

/// Checks an uploaded archive's envelope (API.md "Start") and reads its `_main.json`. Flow
/// problems are not checked here: those end the instance `FAILED`, as the reference server did.
struct StartRequestParser {
    let limits: ZipLimits

    struct Parsed {
        var entryPoint: String?
        var arguments: [String: JSONValue]
        var timeoutMillis: Int64?
        var out: [String]
        var tags: [String]
    }

    func parse(_ body: [UInt8]) throws -> Parsed {
        let archive: ZipArchive
        do {
            archive = try ZipArchive(bytes: body, limits: limits)
            try archive.verifyAll()
        } catch let error as ZipError {
            throw APIError(error.isTooLarge ? .contentTooLarge : .badRequest, error.description)
        }
        let hasProjectFile = archive.entry("concord.yml") != nil || archive.entry(".concord.yml") != nil
        guard let mainEntry = archive.entry("_main.json") else {
            guard hasProjectFile else {
                throw APIError(
                    .badRequest,
                    "the archive has neither _main.json nor concord.yml; add _main.json with {\"entryPoint\": \"<flow name>\"}"
                )
            }
            return Parsed(entryPoint: nil, arguments: [:], timeoutMillis: nil, out: [], tags: [])
        }
        let text = try archive.contents(of: mainEntry)
        guard String(validating: text, as: UTF8.self) != nil else {
            throw APIError(.badRequest, "_main.json is not UTF-8 text")
        }
        let json: JSONValue
        do {
            json = try JSONDecoder().decode(JSONValue.self, from: Data(text))
        } catch {
            throw APIError(.badRequest, "_main.json is not valid JSON")
        }
        guard case .object(let main) = json else {
            throw APIError(.badRequest, "_main.json must be a JSON object such as {\"entryPoint\": \"main\"}")
        }
        var parsed = Parsed(entryPoint: nil, arguments: [:], timeoutMillis: nil, out: [], tags: [])
        switch main["entryPoint"] {
        case .string(let name) where !name.isEmpty: parsed.entryPoint = name
        case nil where hasProjectFile: break
        default:
            throw APIError(.badRequest, "_main.json has no entryPoint (a string naming the flow to start)")
        }
        switch main["arguments"] {
        case nil: break
        case .object(let arguments): parsed.arguments = arguments
        default: throw APIError(.badRequest, "_main.json's arguments must be a JSON object of names to values")
        }
        if let timeout = main["timeout"] { parsed.timeoutMillis = try StartRequestParser.timeout(timeout) }
        parsed.out = try StartRequestParser.strings(main["out"], "out")
        parsed.tags = try StartRequestParser.strings(main["tags"], "tags")
        return parsed
    }

    private static func strings(_ value: JSONValue?, _ key: String) throws -> [String] {
        switch value {
        case nil, .null: return []
        case .array(let items):
            return try items.map { item in
                guard case .string(let text) = item else {
                    throw APIError(.badRequest, "_main.json's \(key) must be a list of strings")
                }
                return text
            }
        default: throw APIError(.badRequest, "_main.json's \(key) must be a list of strings")
        }
    }

    /// `timeout`: seconds as a number, or an ISO-8601 duration such as `PT30S` or `PT1H2M3.5S`.
    static func timeout(_ value: JSONValue) throws -> Int64? {
        let bad = APIError(
            .badRequest, "_main.json's timeout must be a number of seconds or an ISO-8601 duration such as PT30S")
        switch value {
        case .null: return nil
        case .int(let seconds) where seconds > 0: return seconds * 1000
        case .double(let seconds) where seconds > 0: return Int64(seconds * 1000)
        case .string(let text):
            guard let millis = isoDurationMillis(text), millis > 0 else { throw bad }
            return millis
        default: throw bad
        }
    }

    static func isoDurationMillis(_ text: String) -> Int64? {
        var rest = Substring(text.uppercased())
        guard rest.hasPrefix("P") else { return nil }
        rest = rest.dropFirst()
        var total = 0.0
        var inTime = false
        var number = ""
        var sawUnit = false
        for c in rest {
            if c == "T" {
                guard number.isEmpty, !inTime else { return nil }
                inTime = true
            } else if c.isNumber || c == "." || c == "," {
                number.append(c == "," ? "." : c)
            } else {
                guard let value = Double(number) else { return nil }
                number = ""
                sawUnit = true
                switch (c, inTime) {
                case ("D", false): total += value * 86_400
                case ("W", false): total += value * 7 * 86_400
                case ("H", true): total += value * 3600
                case ("M", true): total += value * 60
                case ("S", true): total += value
                default: return nil
                }
            }
        }
        guard number.isEmpty, sawUnit else { return nil }
        return Int64((total * 1000).rounded())
    }
}
