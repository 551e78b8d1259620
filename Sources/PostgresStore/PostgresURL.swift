import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Where the database is: `postgres://user:password@host:port/database`, the form libpq and every
/// PostgreSQL tool read. `?host=/run/postgresql` (a folder, as libpq reads it) connects over the
/// Unix socket in that folder instead of TCP.
package struct PostgresURL: Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int
    package var socketDirectory: String?
    package var user: String
    package var password: String?
    package var database: String

    /// Parses `text`; every part that is not understood is an error, never silently ignored.
    package init(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw PostgresURLError("\(Self.redact(text)) is not a postgres://user:password@host:port/database URL")
        }
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw PostgresURLError("\(Self.redact(text)) names no user (postgres://user:password@host/database)")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw PostgresURLError("\(Self.redact(text)) names no database (postgres://user:password@host/database)")
        }
        self.user = user
        self.password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        self.database = database.removingPercentEncoding ?? database
        self.host = components.host ?? ""
        self.port = components.port ?? 5432
        for item in components.queryItems ?? [] {
            switch item.name {
            case "host":
                guard let value = item.value, value.hasPrefix("/") else {
                    throw PostgresURLError("?host= must be the folder of the server's Unix socket, an absolute path")
                }
                socketDirectory = value
            case "sslmode" where item.value == "disable":
                break
            default:
                throw PostgresURLError(
                    "\(item.name)=\(item.value ?? "") is not understood here (only host=/socket/folder and sslmode=disable)"
                )
            }
        }
        if host.isEmpty && socketDirectory == nil {
            throw PostgresURLError("\(Self.redact(text)) names no host (postgres://user:password@host/database)")
        }
    }

    /// The URL with its password replaced by `***`, for logs.
    package var description: String {
        let credentials = user + (password == nil ? "" : ":***")
        let place = socketDirectory.map { "?host=\($0)" } ?? ""
        return "postgres://\(credentials)@\(host.isEmpty ? "" : "\(host):\(port)")/\(database)\(place)"
    }

    /// `text` without the password it may hold.
    package static func redact(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? "(a URL)"
    }

    package var connectionConfiguration: PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password,
                database: database)
        } else {
            configuration = .init(
                host: host, port: port, username: user, password: password, database: database, tls: .disable)
        }
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    package var clientConfiguration: PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password,
                database: database)
        } else {
            configuration = .init(
                host: host, port: port, username: user, password: password, database: database, tls: .disable)
        }
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 8
        // The pool writes only payloads and snapshots; the log appends on connections of its own
        // (`PostgresDatabase.connect`), whose commits stay synchronous. A payload needs no flush of
        // its own: the start that names it is acknowledged only once its event's commit is flushed,
        // and that flush covers every WAL record written before it, the payload's among them (the
        // Scheduler stores the payload before it appends the event). One fsync per start, not two.
        configuration.options.additionalStartupParameters = [("synchronous_commit", "off")]
        return configuration
    }
}

/// A database URL that cannot be used, with what is wrong with it.
package struct PostgresURLError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
