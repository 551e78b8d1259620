import ArgumentParser
import Foundation

/// `accord keys`: API keys for teams, through a Gateway, with an admin key.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Make, list and revoke API keys (needs an admin key).",
        subcommands: [KeyCreate.self, KeyList.self, KeyRevoke.self])
}

struct KeyCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Make an API key for a team; prints its secret, which is shown only this once.")

    @Option(help: "A name unique among the live keys (3 to 128 of letters, digits, _ @ . - ~).") var name: String
    @Option(help: "The team whose instances the key starts and sees (optional for an admin key).") var team: String?
    @Flag(help: "An admin key: sees every team's instances and manages keys.") var admin = false
    @OptionGroup var options: ClientOptions

    func run() async throws {
        var request: [String: Any] = ["name": name, "admin": admin]
        if let team { request["team"] = team }
        let body = try JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])
        let client = try options.client()
        let (status, data, _) = try await client.request(
            "POST", "/api/v1/apikey", body: Array(body), contentType: "application/json")
        guard status == 201, let answer = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
            let key = answer["key"] as? String, let id = answer["id"] as? String
        else { throw CLIError("the key was not made (\(status)): \(Client.message(data))") }
        if options.json {
            Out.line(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: answer, options: [.sortedKeys]), as: UTF8.self)
            )
            return
        }
        Out.line("id:  \(id)")
        Out.line("key: \(key)")
        Out.line("(the key is shown only now: keep it somewhere safe)")
    }
}

struct KeyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "The live API keys (never their secrets).")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (status, data, _) = try await options.client().request("GET", "/api/v1/apikey")
        guard status == 200, let keys = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
            throw CLIError("GET /api/v1/apikey: \(status) \(Client.message(data))")
        }
        if options.json {
            for key in keys {
                Out.line(
                    String(
                        decoding: try JSONSerialization.data(withJSONObject: key, options: [.sortedKeys]), as: UTF8.self
                    ))
            }
            return
        }
        for key in keys {
            let team = key["team"] as? String ?? "-"
            let role = (key["admin"] as? Bool ?? false) ? "admin" : "member"
            Out.line(
                "\(key["id"] as? String ?? "?")  \(role.padding(toLength: 6, withPad: " ", startingAt: 0))  "
                    + "team \(team)  \(key["name"] as? String ?? "?")  created \(key["createdAt"] as? String ?? "?")")
        }
    }
}

struct KeyRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke an API key: every Gateway refuses it from then on.")
    @Argument(help: "The key's id (from `accord keys list`).") var id: String
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (status, data, _) = try await options.client().request("DELETE", "/api/v1/apikey/\(id)")
        guard status == 204 else { throw CLIError("the key was not revoked (\(status)): \(Client.message(data))") }
        if !options.json { Out.line("revoked \(id)") }
    }
}
