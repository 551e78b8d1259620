import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JSON
import Logging
import Prometheus
import TestSupport
import Testing

@testable import Gateway

/// The OpenAPI document stays true to the router: every route it serves is documented with its
/// method, and nothing is documented that it does not serve. (CI also validates the document and
/// runs schemathesis against a deployment: tests/blackbox/test_openapi.py.)
@Suite struct OpenAPIDocumentTests {
    func document() throws -> [String: JSONValue] {
        let file = try #require(WebRoutes().files["openapi.json"])
        return try #require(try JSONDecoder().decode(JSONValue.self, from: Data(file.bytes)).objectValue)
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedOperationIsARoute() throws {
        let dir = temporaryDirectory()
        defer { cleanUp(dir) }
        let router = buildRouter(
            link: InMemoryScheduler(), projection: try GatewayProjection(directory: dir),
            keys: nil, registry: PrometheusCollectorRegistry(), limits: .init(), maxBodyBytes: 1 << 20)
        // The console's pages are for browsers, not part of the API.
        let served = Set(
            router.routes.map { route -> String in
                // A catch-all (`**`, an attachment's path with its slashes) is one path parameter there.
                let path = route.path.description.split(separator: "/").map {
                    $0.hasPrefix(":") ? "{\($0.dropFirst())}" : $0 == "**" ? "{name}" : String($0)
                }.joined(separator: "/")
                return "\(route.method.rawValue.lowercased()) /\(path)"
            }
        ).filter { !$0.hasSuffix(" /") && !$0.contains("/console") }
        var documented = Set<String>()
        for (path, item) in try document()["paths"]?.objectValue ?? [:] {
            for method in item.objectValue?.keys ?? [:].keys { documented.insert("\(method) \(path)") }
        }
        #expect(
            served == documented,
            "served only: \(served.subtracting(documented)); documented only: \(documented.subtracting(served))")
        #expect(served.count > 10)
    }

    @Test func theDocumentIsOpenAPI31AndServedWithoutAKey() async throws {
        let root = try document()
        #expect(root["openapi"] == .string("3.1.0"))
        let router = Router(context: AccordRequestContext.self)
        WebRoutes().register(on: router)
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/api/v1/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let etag = try #require(response.headers[.eTag])
                try await client.execute(uri: "/api/v1/openapi.json", method: .get, headers: [.ifNoneMatch: etag]) {
                    #expect($0.status == .notModified)
                }
            }
            try await client.execute(uri: "/console/missing.js", method: .get) { #expect($0.status == .notFound) }
        }
    }
}
