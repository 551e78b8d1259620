import Foundation
import Model
import Wire

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The Gateway over HTTP, with the API key from the environment or the config file.
struct Client: Sendable {
    let url: String
    let key: String?

    /// `~/.config/accord/config`: `url = http://...` and `api-key = ...` lines (`#` comments).
    static func configFile() -> [String: String] {
        let path =
            ProcessInfo.processInfo.environment["ACCORD_CONFIG"]
            ?? (NSHomeDirectory() + "/.config/accord/config")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            values[trimmed[..<equals].trimmingCharacters(in: .whitespaces)] =
                trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }

    init(url: String?) throws {
        let environment = ProcessInfo.processInfo.environment
        let file = Client.configFile()
        let chosen = url ?? environment["ACCORD_URL"] ?? file["url"] ?? "http://127.0.0.1:8001"
        guard URL(string: chosen)?.scheme?.hasPrefix("http") == true else {
            throw CLIError("\(chosen) is not an http(s) URL")
        }
        self.url = chosen.hasSuffix("/") ? String(chosen.dropLast()) : chosen
        self.key = environment["ACCORD_API_KEY"] ?? file["api-key"]
    }

    func request(
        _ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/zip",
        headers: [String: String] = [:], timeout: TimeInterval = 60
    ) async throws -> (Int, Data, HTTPURLResponse) {
        guard let target = URL(string: url + path) else { throw CLIError("bad URL \(url + path)") }
        var request = URLRequest(url: target)
        request.httpMethod = method
        request.timeoutInterval = timeout
        if let key { request.setValue(key, forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = Data(body)
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw CLIError("cannot reach \(url): \(error.localizedDescription)")
        }
        guard let http = response as? HTTPURLResponse else { throw CLIError("not an HTTP answer from \(url)") }
        if http.statusCode == 401 {
            throw CLIError(
                key == nil
                    ? "the gateway wants an API key: set ACCORD_API_KEY or `api-key = ...` in ~/.config/accord/config"
                    : "the gateway refused the API key")
        }
        return (http.statusCode, data, http)
    }

    /// A JSON answer, or an error naming the status and the server's message.
    func json(_ method: String, _ path: String, expect: Set<Int> = [200]) async throws -> [String: Any] {
        let (status, data, _) = try await request(method, path)
        guard expect.contains(status) else { throw CLIError("\(method) \(path): \(status) \(Client.message(data))") }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    }

    static func message(_ data: Data) -> String {
        if let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let message = object["message"] as? String
        {
            return message
        }
        return String(decoding: data.prefix(500), as: UTF8.self)
    }
}
