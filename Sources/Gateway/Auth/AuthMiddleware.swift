import Foundation
import Hummingbird
import JSON
import Model
import ReadModels

/// Requires `Authorization: <key>` or `Authorization: Bearer <key>` on every request it wraps, and
/// tells the routes who is calling. A configured key (keys file, `ACCORD_API_KEYS`) is an admin
/// key; any other is looked up among the keys the event log records, which this Gateway knows only
/// once it has caught up with the log (until then a request waits, at most five seconds, then 503).
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AccordRequestContext
    /// nil: `--no-auth`, every caller is an admin.
    let keys: APIKeys?
    let projection: GatewayProjection

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let keys else { return try await next(request, context) }
        guard var value = request.headers[.authorization]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else {
            throw APIError(.unauthorized, "this endpoint needs an API key in the Authorization header")
        }
        if value.lowercased().hasPrefix("bearer ") {
            value = String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        var context = context
        context.caller = try await caller(value, keys)
        return try await next(request, context)
    }

    private func caller(_ key: String, _ keys: APIKeys) async throws -> Caller {
        let invalid = APIError(
            .unauthorized, "the API key is not valid (unknown or revoked); pass a valid key in the Authorization header"
        )
        guard !key.isEmpty else { throw invalid }
        let digest = APIKeys.digest(key)
        if let principal = keys.authenticate(digest: digest) {
            return Caller(principal: principal, team: nil, admin: true)
        }
        guard await projection.awaitReady(within: .seconds(5)) else {
            throw APIError(.serviceUnavailable, "the gateway is still catching up with the event log; retry shortly")
        }
        guard let recorded = projection.key(hash: Hex.encode(digest)) else { throw invalid }
        return Caller(principal: recorded.id.description, team: recorded.team, admin: recorded.admin)
    }
}

/// Who is calling: an API key's principal, its team, and whether it is an admin key.
struct Caller: Sendable, Hashable {
    /// A recorded key's id, or a configured key's fingerprint; never the secret.
    var principal: String?
    /// The team the caller's starts belong to (`nil`: a configured admin key).
    var team: String?
    /// An admin sees every team's instances and manages keys.
    var admin: Bool

    /// With `--no-auth`: anyone, as an admin.
    static let anonymous = Caller(principal: nil, team: nil, admin: true)

    /// Which instances the caller may see.
    var visibility: Visibility {
        if admin { return .all }
        return .team(team ?? "")
    }
}

/// The request context: Hummingbird's core plus who is calling.
struct AccordRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware`; anonymous (an admin) when auth is off.
    var caller = Caller.anonymous

    init(source: Source) {
        self.coreContext = .init(source: source)
    }
}
