import Foundation
import Hummingbird
import Model

/// Requires `Authorization: <key>` or `Authorization: Bearer <key>` on every request it wraps.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AccordRequestContext
    let keys: APIKeys?

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
        guard !value.isEmpty, let principal = keys.authenticate(value) else {
            throw APIError(.unauthorized, "the API key is not valid; pass a configured key in the Authorization header")
        }
        var context = context
        context.principal = principal
        return try await next(request, context)
    }
}

/// The request context: Hummingbird's core plus who is calling.
struct AccordRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The fingerprint of the API key used, when auth is on.
    var principal: String?

    init(source: Source) {
        self.coreContext = .init(source: source)
    }
}
