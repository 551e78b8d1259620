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
        /// `handlerTimeout`: how long an `onFailure`/`onCancel`/`onTimeout` flow may run.
        var handlerTimeoutMillis: Int64? = nil
    }

    /// A ZIP body: the archive checked whole, then its `_main.json`.
    func parse(_ body: [UInt8]) throws -> Parsed {
        let archive = try open(body)
        let hasProjectFile = StartRequestParser.hasProjectFile(archive.entries.lazy.map(\.path))
        guard let main = try mainJSON(of: archive) else {
            guard hasProjectFile else {
                throw APIError(
                    .badRequest,
                    "the archive has neither _main.json nor concord.yml; add _main.json with {\"entryPoint\": \"<flow name>\"}"
                )
            }
            return Parsed(entryPoint: nil, arguments: [:], timeoutMillis: nil, out: [], tags: [])
        }
        return try StartRequestParser.configuration(main, hasProjectFile: hasProjectFile, source: "_main.json")
    }

    /// Opens an uploaded archive and inflates every entry once, within the limits: a bad archive
    /// is 400, one over a limit 413.
    func open(_ bytes: [UInt8]) throws -> ZipArchive {
        try refusingBadArchives {
            let archive = try ZipArchive(bytes: bytes, limits: limits)
            try archive.verifyAll()
            return archive
        }
    }

    /// Checks an archive this Gateway wrote from entries already verified against the limits
    /// (the count and the declared sizes; nothing is inflated again).
    func checkLimits(_ bytes: [UInt8]) throws {
        _ = try refusingBadArchives { try ZipArchive(bytes: bytes, limits: limits) }
    }

    private func refusingBadArchives<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ZipError {
            throw APIError(error.isTooLarge ? .contentTooLarge : .badRequest, error.description)
        }
    }

    /// The archive's `_main.json` as an object, or nil when it has none.
    func mainJSON(of archive: ZipArchive) throws -> [String: JSONValue]? {
        guard let entry = archive.entry("_main.json") else { return nil }
        return try StartRequestParser.jsonObject(try archive.contents(of: entry), source: "_main.json")
    }

    /// Whether these paths hold a project file, which may name the entry point itself.
    static func hasProjectFile(_ paths: some Sequence<String>) -> Bool {
        paths.contains { $0 == "concord.yml" || $0 == ".concord.yml" }
    }

    /// UTF-8 text holding one JSON object, such as `_main.json` or a multipart start's `request`.
    static func jsonObject(_ text: [UInt8], source: String) throws -> [String: JSONValue] {
        guard String(validating: text, as: UTF8.self) != nil else {
            throw APIError(.badRequest, "\(source) is not UTF-8 text")
        }
        let json: JSONValue
        do {
            json = try JSONDecoder().decode(JSONValue.self, from: Data(text))
        } catch {
            throw APIError(.badRequest, "\(source) is not valid JSON")
        }
        guard case .object(let object) = json else {
            throw APIError(.badRequest, "\(source) must be a JSON object such as {\"entryPoint\": \"main\"}")
        }
        return object
    }

    /// The keys of `_main.json` the server honours, checked: `source` names where they came from
    /// in every refusal. Without a project file, `entryPoint` is mandatory.
    static func configuration(_ main: [String: JSONValue], hasProjectFile: Bool, source: String) throws -> Parsed {
        var parsed = Parsed(entryPoint: nil, arguments: [:], timeoutMillis: nil, out: [], tags: [])
        switch main["entryPoint"] {
        case .string(let name) where !name.isEmpty: parsed.entryPoint = name
        case nil where hasProjectFile: break
        default:
            throw APIError(.badRequest, "\(source) has no entryPoint (a string naming the flow to start)")
        }
        switch main["arguments"] {
        case nil: break
        case .object(let arguments): parsed.arguments = arguments
        default: throw APIError(.badRequest, "\(source)'s arguments must be a JSON object of names to values")
        }
        if let timeout = main["timeout"] {
            parsed.timeoutMillis = try StartRequestParser.timeout(timeout, source: source)
        }
        if let timeout = main["handlerTimeout"] {
            parsed.handlerTimeoutMillis = try StartRequestParser.timeout(timeout, source: source, key: "handlerTimeout")
        }
        parsed.out = try strings(main["out"], "out", source: source)
        parsed.tags = try strings(main["tags"], "tags", source: source)
        return parsed
    }

    private static func strings(_ value: JSONValue?, _ key: String, source: String) throws -> [String] {
        switch value {
        case nil, .null: return []
        case .array(let items):
            return try items.map { item in
                guard case .string(let text) = item else {
                    throw APIError(.badRequest, "\(source)'s \(key) must be a list of strings")
                }
                return text
            }
        default: throw APIError(.badRequest, "\(source)'s \(key) must be a list of strings")
        }
    }

    /// `timeout`: seconds as a number (or, as a form value sends it, as text), or an ISO-8601
    /// duration such as `PT30S` or `PT1H2M3.5S`.
    static func timeout(_ value: JSONValue, source: String = "_main.json", key: String = "timeout") throws -> Int64? {
        let bad = APIError(
            .badRequest,
            "\(source)'s \(key) must be a number of seconds or an ISO-8601 duration such as PT30S (1 ms to 10 years)")
        // At least a millisecond, at most ten years: a number past any clock is refused here, never
        // overflowed into (a huge one trapped the Gateway).
        func bounded(_ millis: Double) throws -> Int64 {
            guard millis.isFinite, millis >= 1, millis <= Double(maxTimeoutMillis) else { throw bad }
            return Int64(millis.rounded())
        }
        switch value {
        case .null: return nil
        case .int(let seconds): return try bounded(Double(seconds) * 1000)
        case .double(let seconds): return try bounded(seconds * 1000)
        case .string(let text) where !text.isEmpty && text.allSatisfy(\.isASCII) && text.allSatisfy(\.isNumber):
            guard let seconds = Int64(text) else { throw bad }
            return try bounded(Double(seconds) * 1000)
        case .string(let text):
            guard let millis = isoDurationMillis(text) else { throw bad }
            return try bounded(millis)
        default: throw bad
        }
    }

    /// Ten years, in milliseconds: the longest timeout taken.
    static let maxTimeoutMillis: Int64 = 10 * 366 * 86_400 * 1000

    static func isoDurationMillis(_ text: String) -> Double? {
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
        return total * 1000
    }
}
