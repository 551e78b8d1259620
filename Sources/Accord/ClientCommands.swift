import Archive
import ArgumentParser
import EventLog
import Foundation
import Model
import Wire

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Zip a folder (processes/*.yml, _main.json or concord.yml) and start it.")

    @Argument(help: "The folder to upload.") var directory: String
    @Option(name: .customLong("arg"), help: "An argument k=v (v parsed as JSON when it is JSON); repeatable.")
    var arguments: [String] = []
    @Option(help: "The entry point (default: _main.json's, else concord.yml's, else `default`).") var entryPoint:
        String?
    @Option(help: "An Idempotency-Key: a retry with the same key starts nothing new.") var idempotencyKey: String?
    @Flag(help: "Wait for the instance to end, showing its log as it goes.") var wait = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var zip = ZipWriter()
        do { try zip.addDirectory(directory, skipping: ["_main.json"]) } catch { throw CLIError("\(error)") }
        var main: [String: Any] = [:]
        let mainPath = directory + "/_main.json"
        if let data = FileManager.default.contents(atPath: mainPath) {
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw CLIError("\(mainPath) is not a JSON object")
            }
            main = object
        }
        var args = main["arguments"] as? [String: Any] ?? [:]
        for argument in arguments {
            guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                throw ValidationError("--arg takes k=v, not \(argument)")
            }
            let text = String(argument[argument.index(after: equals)...])
            let value =
                (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? text
            args[String(argument[..<equals])] = value
        }
        if !args.isEmpty || !arguments.isEmpty { main["arguments"] = args }
        if let entryPoint { main["entryPoint"] = entryPoint }
        let hasProject = zip.contains("concord.yml") || zip.contains(".concord.yml")
        if main["entryPoint"] == nil && !hasProject { main["entryPoint"] = "default" }
        zip.add("_main.json", Array(try JSONSerialization.data(withJSONObject: main, options: [.sortedKeys])))
        let client = try options.client()
        var headers: [String: String] = [:]
        if let idempotencyKey { headers["Idempotency-Key"] = idempotencyKey }
        let (status, data, _) = try await client.request("POST", "/api/v1/process", body: zip.build(), headers: headers)
        guard status == 200,
            let id = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["instanceId"] as? String
        else {
            throw CLIError("the start was refused (\(status)): \(Client.message(data))")
        }
        if !wait {
            options.json ? Out.line(#"{"instanceId":"\#(id)"}"#) : Out.line(id)
            return
        }
        if !options.json { Out.line("started \(id)") }
        let final = try await Follow.run(client, id, printLog: !options.json)
        try Follow.finish(final, json: options.json)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "An instance's status.")
    @Argument var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let body = try await options.client().json("GET", "/api/v1/process/\(id)")
        if options.json {
            Out.line(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self))
        } else {
            Out.line(Follow.summary(body))
        }
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait for an instance to end; exits 0 when it FINISHED, 1 otherwise.")
    @Argument var id: String
    @Option(help: "Give up after this many seconds (exit 2).") var timeout: Double?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.client()
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        while true {
            let slice = deadline.map { max(0, min(30, $0.timeIntervalSinceNow)) } ?? 30
            let (status, data, _) = try await client.request(
                "GET", "/api/v1/process/\(id)/wait?timeout=\(Int(slice * 1000))", timeout: slice + 30)
            let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            if status == 200 { return try Follow.finish(body, json: options.json) }
            guard status == 408 else { throw CLIError("wait: \(status) \(Client.message(data))") }
            if let deadline, deadline.timeIntervalSinceNow <= 0 {
                options.json
                    ? Out.line(#"{"timedOut":true}"#)
                    : Out.line("still \(body["status"] ?? "?") after \(timeout ?? 0) s")
                throw ExitCode(2)
            }
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An instance's log; --follow keeps printing until it ends.")
    @Argument var id: String
    @Flag(help: "Keep printing new lines until the instance ends.") var follow = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.client()
        if follow {
            let final = try await Follow.run(client, id, printLog: true)
            Out.error("\(id) ended \(final["status"] ?? "?")")
            return
        }
        let (status, data, _) = try await client.request("GET", "/api/v1/process/\(id)/log")
        guard status == 200 || status == 206 else { throw CLIError("log: \(status) \(Client.message(data))") }
        FileHandle.standardOutput.write(data)
    }
}

struct Kill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop an instance (it ends CANCELLED).")
    @Argument var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.client()
        let (status, data, _) = try await client.request("DELETE", "/api/v1/process/\(id)")
        guard status == 204 || status == 200 else { throw CLIError("stop: \(status) \(Client.message(data))") }
        let body = try await client.json("GET", "/api/v1/process/\(id)")
        options.json
            ? Out.line(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self))
            : Out.line(Follow.summary(body))
    }
}

/// Following an instance: its log as the Gateway pushes it (Server-Sent Events from
/// `.../log?follow=true`), ending with the status event the stream closes with. A dropped
/// connection (a Gateway restarting, say) is picked up again after the last line printed.
enum Follow {
    static func run(_ client: Client, _ id: String, printLog: Bool) async throws -> [String: Any] {
        guard printLog else { return try await waitOnly(client, id) }
        var lastID: String?
        var failures = 0
        while true {
            var headers = ["Accept": "text/event-stream"]
            if let lastID { headers["Last-Event-ID"] = lastID }
            var status = 0
            var refusal = Data()
            var parser = ServerSentEventParser()
            do {
                for try await piece in try client.stream("/api/v1/process/\(id)/log?follow=true", headers: headers) {
                    switch piece {
                    case .status(let code): status = code
                    case .body(let data) where status != 200: refusal.append(data)
                    case .body(let data):
                        failures = 0
                        for event in parser.feed(data) {
                            switch event.event {
                            case "status":
                                return (try? JSONSerialization.jsonObject(with: Data(event.data.utf8)))
                                    as? [String: Any] ?? [:]
                            case "message":
                                FileHandle.standardOutput.write(Data((event.data + "\n").utf8))
                                lastID = event.id ?? lastID
                            default: continue  // progress: the status while it runs
                            }
                        }
                    }
                }
            } catch {
                failures += 1
                guard failures < 5 else {
                    throw CLIError("lost the log stream of \(id): \(error.localizedDescription)")
                }
            }
            if status == 401 { throw CLIError("the gateway refused the API key") }
            if status != 0 && status != 200 { throw CLIError("log: \(status) \(Client.message(refusal))") }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// The final status, by waits that the terminal event itself answers.
    private static func waitOnly(_ client: Client, _ id: String) async throws -> [String: Any] {
        while true {
            let (status, data, _) = try await client.request(
                "GET", "/api/v1/process/\(id)/wait?timeout=30000", timeout: 60)
            guard status == 200 || status == 408 else { throw CLIError("wait: \(status) \(Client.message(data))") }
            if status == 200 { return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:] }
        }
    }

    static func finish(_ body: [String: Any], json: Bool) throws {
        if json {
            Out.line(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]), as: UTF8.self))
        } else {
            Out.line(summary(body))
        }
        if body["status"] as? String != "FINISHED" { throw ExitCode(1) }
    }

    static func summary(_ body: [String: Any]) -> String {
        var text = "\(body["instanceId"] ?? "?")  \(body["status"] ?? "?")"
        if let error = body["error"] as? String { text += "  \(error)" }
        if let out = body["out"] as? [String: Any], !out.isEmpty,
            let data = try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        {
            text += "  out \(String(decoding: data, as: UTF8.self))"
        }
        return text
    }
}
