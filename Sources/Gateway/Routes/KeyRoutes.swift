import Foundation
import HTTPTypes
import Hummingbird
import JSON
import Model
import ReadModels
import Wire

/// `/api/v1/apikey`, as the reference server has it: admins make keys for teams, list them and
/// revoke them. A key is recorded as an event holding only the hash of its secret, so every Gateway
/// learns of it (and of its revocation) from the event stream it already follows.
struct KeyRoutes: Sendable {
    let client: any SchedulerLink
    let projection: GatewayProjection

    /// Names and teams: what the reference server allows for its names (`ConcordKey`).
    static let namePattern = "^[0-9a-zA-Z][0-9a-zA-Z_@.\\-~]{2,127}$"
    static let maxBodyBytes = 64 << 10

    func register(on api: RouterGroup<AccordRequestContext>) {
        api.post("v1/apikey") { request, context in try await create(request, context) }
        api.get("v1/apikey") { _, context in try list(context) }
        api.delete("v1/apikey/:id") { _, context in try await revoke(context) }
    }

    private static func requireAdmin(_ context: AccordRequestContext) throws {
        guard context.caller.admin else {
            throw APIError(.forbidden, "only an admin key may manage API keys; this key belongs to a team")
        }
    }

    /// What a create asks for, checked.
    struct CreateRequest: Equatable {
        var name: String
        var team: String?
        var admin: Bool

        /// `{"name", "team", "admin"?}`; every problem is a 400 that says what to fix.
        static func parse(_ body: [UInt8]) throws -> CreateRequest {
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body)),
                let object = value.objectValue
            else {
                throw APIError(.badRequest, #"send a JSON object: {"name": "...", "team": "...", "admin": false}"#)
            }
            let known: Set<String> = ["name", "team", "admin"]
            if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
                throw APIError(.badRequest, "unknown field '\(unknown)'; a key has name, team and admin")
            }
            guard case .string(let name)? = object["name"] else {
                throw APIError(.badRequest, "name is required and must be a string")
            }
            try check(name, "name")
            var admin = false
            switch object["admin"] {
            case nil, .null?: break
            case .bool(let flag)?: admin = flag
            default: throw APIError(.badRequest, "admin must be true or false")
            }
            var team: String?
            switch object["team"] {
            case nil, .null?: break
            case .string(let text)?:
                try check(text, "team")
                team = text
            default: throw APIError(.badRequest, "team must be a string")
            }
            if team == nil && !admin {
                throw APIError(.badRequest, "team is required for a key that is not an admin key")
            }
            return CreateRequest(name: name, team: team, admin: admin)
        }

        private static func check(_ text: String, _ field: String) throws {
            guard text.range(of: KeyRoutes.namePattern, options: .regularExpression) != nil else {
                throw APIError(
                    .badRequest,
                    "\(field) must be 3 to 128 letters, digits, '_', '@', '.', '-' or '~', starting with a letter or digit"
                )
            }
        }
    }

    private func create(_ request: Request, _ context: AccordRequestContext) async throws -> Response {
        try Self.requireAdmin(context)
        if let type = request.mediaType, type != "application/json" {
            throw APIError(.unsupportedMediaType, "send the key as application/json, not \(type)")
        }
        var request = request
        let body = try await request.collectBody(upTo: Self.maxBodyBytes)
        let asked = try CreateRequest.parse(Array(body.readableBytesView))
        let secret = Self.newSecret()
        let hash = Hex.encode(APIKeys.digest(secret))
        let id = KeyID()
        let command = CreateKey(
            requestID: .random(), keyID: id,
            key: ApiKeyCreated(
                name: asked.name, team: asked.team, admin: asked.admin, hash: hash, createdBy: context.caller.principal)
        )
        switch try await ask(.createKey(command)) {
        case .keyCreated(let seq):
            _ = await projection.waitForHead(seq, timeout: .seconds(5))
            var answer: [String: JSONBodyValue] = [
                "ok": .bool(true), "id": .string(id.description), "name": .string(asked.name),
                "admin": .bool(asked.admin), "key": .string(secret), "result": .string("CREATED"),
                "team": asked.team.map { .string($0) } ?? .json(.null),
            ]
            if let view = projection.key(id: id) {
                answer["createdAt"] = .string(view.createdAt.iso8601)
            }
            return JSONBody.response(.created, answer)
        case .conflict(let message):
            throw APIError(.conflict, "\(message) ('\(asked.name)'); revoke it first or choose another name")
        case .unavailable(let message):
            throw APIError(.serviceUnavailable, "\(message); nothing was recorded")
        case .rejected(let message):
            throw APIError(.badRequest, message)
        default:
            throw APIError(.internalServerError, "the scheduler answered a key creation unexpectedly")
        }
    }

    private func list(_ context: AccordRequestContext) throws -> Response {
        try Self.requireAdmin(context)
        let keys: [JSONBodyValue] = projection.liveKeys().map { key in
            .object([
                "id": .string(key.id.description), "name": .string(key.name),
                "team": key.team.map { .string($0) } ?? .json(.null), "admin": .bool(key.admin),
                "createdAt": .string(key.createdAt.iso8601),
            ])
        }
        return JSONBody.response(.ok, keys)
    }

    private func revoke(_ context: AccordRequestContext) async throws -> Response {
        try Self.requireAdmin(context)
        let raw = context.parameters.get("id") ?? ""
        guard let id = KeyID(raw) else { throw APIError(.notFound, "no API key '\(raw)' (ids are UUIDs)") }
        switch try await ask(.revokeKey(requestID: .random(), keyID: id, by: context.caller.principal)) {
        case .keyRevoked(let seq):
            _ = await projection.waitForHead(seq, timeout: .seconds(5))
            return Response(status: .noContent)
        case .keyUnknown:
            throw APIError(.notFound, "no API key \(id) (unknown, or revoked already)")
        case .unavailable(let message):
            throw APIError(.serviceUnavailable, "\(message); nothing was recorded")
        default:
            throw APIError(.internalServerError, "the scheduler answered a key revocation unexpectedly")
        }
    }

    /// 32 random bytes from the system's generator, base64url without padding (43 characters).
    static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<4).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64) { Array($0) } }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    private func ask(_ request: SchedulerRequest) async throws -> SchedulerReply {
        try await client.ask(
            request,
            unanswered: "the scheduler did not answer in time; retry later (a new key may have been recorded "
                + "without its secret reaching you: list the keys and revoke it if so)")
    }
}
