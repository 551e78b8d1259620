import Foundation
import Hummingbird
import ReadModels
import Wire

/// An error answered as `{"ok": false, "message": ...}` with its status; extra fields allowed.
struct APIError: Error, HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    var extra: [String: String] = [:]
    /// Headers the answer carries besides the content type (a 416's `Content-Range`).
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"accord\"" }
        var body: [String: JSONBodyValue] = ["ok": .bool(false), "message": .string(message)]
        for (key, value) in extra { body[key] = .string(value) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: JSONBody.encode(body)))
    }
}

/// Turns every other error (Hummingbird's own 404/413, decoding errors) into the JSON error body,
/// so that no answer leaks a stack trace or a non-JSON error.
struct ErrorBodyMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as any HTTPResponseError {
            // Hummingbird's own (HTTPError), and NIO's NIOTooManyBytesError from `collectBody(upTo:)`,
            // which used to fall through to the 500 below.
            let message: String
            switch error.status {
            case .notFound: message = "no such endpoint: \(request.method) \(request.uri.path)"
            case .contentTooLarge: message = "the request body is larger than the configured limit"
            case .methodNotAllowed: message = "\(request.method) is not allowed on \(request.uri.path)"
            default:
                message = (error as? HTTPError)?.body ?? "the request could not be handled (\(error.status.code))"
            }
            throw APIError(error.status, message)
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, "the server failed to handle the request; see its log")
        }
    }
}

extension SchedulerLink {
    /// `send`, with a Scheduler that does not answer in time as a 503 saying `unanswered`.
    func ask(
        _ request: SchedulerRequest, attachment: [UInt8] = [],
        unanswered: String = "the scheduler did not answer in time; nothing was recorded by this request, retry later"
    ) async throws -> SchedulerReply {
        do {
            return try await send(request, attachment: attachment)
        } catch {
            throw APIError(.serviceUnavailable, unanswered)
        }
    }

    /// `fetch`, with a missing answer as 503.
    func fetchOr503(_ request: SchedulerRequest) async throws -> (SchedulerReply, [UInt8]) {
        do {
            return try await fetch(request)
        } catch {
            throw APIError(.serviceUnavailable, "the scheduler did not answer in time; retry later")
        }
    }
}

extension Request {
    /// The `Content-Type` without its parameters, lower-cased (`application/zip`).
    var mediaType: String? {
        headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
    }
}
