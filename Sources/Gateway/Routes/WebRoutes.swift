import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import JSON

/// The files compiled into the Gateway (`Sources/Gateway/Web`): the OpenAPI document at
/// `/api/v1/openapi.json` and the web console under `/console/`. Both anonymous: the console asks
/// for a key in the page and sends it with each API call, as any client does.
struct WebRoutes: Sendable {
    struct File: Sendable {
        var bytes: [UInt8]
        var contentType: String
        var etag: String
    }

    let files: [String: File]

    init() {
        var files: [String: File] = [:]
        for (path, base64) in WebFiles.contents {
            guard let data = Data(base64Encoded: base64) else { continue }
            let bytes = Array(data)
            let digest = Hex.encode(Array(SHA256.hash(data: bytes).prefix(12)))
            files[path] = File(bytes: bytes, contentType: WebRoutes.contentType(path), etag: "\"\(digest)\"")
        }
        self.files = files
    }

    static func contentType(_ path: String) -> String {
        switch path.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "json": "application/json"
        case "svg": "image/svg+xml"
        default: "application/octet-stream"
        }
    }

    func register(on router: Router<AccordRequestContext>) {
        router.get("/api/v1/openapi.json") { request, _ in try serve("openapi.json", request) }
        router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/console"]) }
        // `/console` and `/console/` are one route; the page names its files by absolute paths.
        router.get("/console") { request, _ in try serve("console/index.html", request) }
        router.get("/console/:file") { request, context in
            try serve("console/" + (context.parameters.get("file") ?? ""), request)
        }
    }

    private func serve(_ path: String, _ request: Request) throws -> Response {
        guard let file = files[path] else { throw APIError(.notFound, "no such file: \(request.uri.path)") }
        var headers: HTTPFields = [
            .contentType: file.contentType, .eTag: file.etag, .cacheControl: "no-cache",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ]
        if path.hasPrefix("console/") {
            // Only this Gateway's own scripts, styles and API; never framed by another site.
            headers[HTTPField.Name("Content-Security-Policy")!] =
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        }
        if request.headers[.ifNoneMatch] == file.etag {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: file.bytes)))
    }
}
