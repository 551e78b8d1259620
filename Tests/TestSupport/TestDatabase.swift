import Foundation
import Logging
import PostgresNIO
import PostgresStore

/// A database of its own for one test, on the throwaway server `make test` starts
/// (`ACCORD_TEST_DATABASE_URL`, see deploy/test/with-postgres). Dropped when the test is done.
package struct TestDatabase: Sendable {
    /// The URL of the new database.
    package let url: String

    /// The server the tests use, or nil when none was started. Under CI a missing server is an
    /// error, never a quiet skip.
    package static var server: String? {
        let url = ProcessInfo.processInfo.environment["ACCORD_TEST_DATABASE_URL"]
        if url == nil && ProcessInfo.processInfo.environment["CI"] == "true" {
            fatalError(
                "CI=true but ACCORD_TEST_DATABASE_URL is not set: run the tests through deploy/test/with-postgres")
        }
        return url
    }

    /// Whether tests that need PostgreSQL can run (for `.enabled(if:)`).
    package static var available: Bool { server != nil }

    /// Creates an empty database and calls `body` with it; drops it afterwards.
    package static func with<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        guard let server else { throw PostgresURLError("ACCORD_TEST_DATABASE_URL is not set") }
        let name = "accord_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await admin(server) { try await $0.query("CREATE DATABASE \(unescaped: name)", logger: logger) }
        guard var components = URLComponents(string: server) else { throw PostgresURLError("bad URL") }
        components.path = "/" + name
        let url = components.string ?? server
        do {
            let result = try await body(TestDatabase(url: url))
            try await drop(name, server)
            return result
        } catch {
            try? await drop(name, server)
            throw error
        }
    }

    private static let logger = Logger(label: "test-database")

    private static func drop(_ name: String, _ server: String) async throws {
        try await admin(server) { try await $0.query("DROP DATABASE \(unescaped: name) WITH (FORCE)", logger: logger) }
    }

    private static func admin(_ server: String, _ body: (PostgresConnection) async throws -> Void) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: try PostgresURL(server).connectionConfiguration, id: 1, logger: logger)
        do {
            try await body(connection)
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Runs `sql` in this database (for tests that look at or disturb the tables directly).
    package func execute(_ sql: String) async throws {
        try await Self.admin(url) { try await $0.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger) }
    }

    /// The first column of the first row of `sql`, as an integer.
    package func integer(_ sql: String) async throws -> Int64 {
        var result: Int64?
        try await Self.admin(url) { connection in
            for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Self.logger)
                .decode(Int64.self)
            {
                result = value
                break
            }
        }
        guard let result else { throw PostgresURLError("no row: \(sql)") }
        return result
    }
}
