import EventLog
import Foundation
import Logging
import Model
import PostgresStore
import ReadModels
import Wire

/// A stream of events in log order, from a data folder or from a Gateway.
protocol EventSource {
    /// Calls `body` with every event after `after`, in order, until it returns false; with the
    /// event's bytes as stored, when the source has them.
    func forEachStored(after: UInt64, _ body: (EventEnvelope, Data) throws -> Bool) async throws
}

extension EventSource {
    func forEach(after: UInt64, _ body: (EventEnvelope) throws -> Bool) async throws {
        try await forEachStored(after: after) { envelope, _ in try body(envelope) }
    }
}

struct OfflineSource: EventSource {
    let reader: EventLogReader

    init(data: String) throws {
        reader = try EventLogReader(directory: EventLogReader.logDirectory(forData: data))
    }

    func forEachStored(after: UInt64, _ body: (EventEnvelope, Data) throws -> Bool) async throws {
        struct Done: Error {}
        do {
            try reader.forEachEvent { envelope, bytes in
                guard envelope.seq > after else { return }
                guard try body(envelope, bytes) else { throw Done() }
            }
        } catch is Done {}
    }
}

/// The PostgreSQL log, up to the head it had when the reading began.
struct PostgresSource: EventSource {
    let url: PostgresURL

    func forEachStored(after: UInt64, _ body: (EventEnvelope, Data) throws -> Bool) async throws {
        let database = try await PostgresDatabase.open(url, logger: Logger(label: "accord"))
        do {
            let (_, head) = try await database.head()
            try await database.scan(from: after + 1, through: head, body)
        } catch {
            await database.close()
            throw error
        }
        await database.close()
    }
}

/// Pages through `GET /api/v1/events?after=&limit=` (JSON Lines, the log's own encoding).
struct LiveSource: EventSource {
    let client: Client

    func forEachStored(after: UInt64, _ body: (EventEnvelope, Data) throws -> Bool) async throws {
        var cursor = after
        while true {
            let (status, data, _) = try await client.request("GET", "/api/v1/events?after=\(cursor)&limit=1000")
            guard status == 200 else { throw CLIError("the gateway answered \(status): \(Client.message(data))") }
            var count = 0
            for line in data.split(separator: 0x0A) where !line.isEmpty {
                let bytes = Data(line)
                let envelope = try FastEventDecoder.decode(bytes)
                count += 1
                cursor = envelope.seq
                guard try body(envelope, bytes) else { return }
            }
            if count == 0 { return }
        }
    }
}
