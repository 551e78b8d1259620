import Foundation
import JSON
import Model

/// A JSON value for response bodies, encoded with sorted keys.
package enum JSONBodyValue: Encodable, Sendable {
    case bool(Bool)
    case string(String)
    case int(Int64)
    case json(JSONValue)
    case object([String: JSONBodyValue])
    case array([JSONBodyValue])

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try container.encode(b)
        case .string(let s): try container.encode(s)
        case .int(let i): try container.encode(i)
        case .json(let v): try container.encode(v)
        case .object(let o): try container.encode(o)
        case .array(let a): try container.encode(a)
        }
    }
}

/// The read models' answers as the API serves them, byte for byte: the Gateway answers with these,
/// and `accord projections rebuild` renders the same from the log alone to compare.
package enum ReadModelBodies {
    package static func encode(_ value: some Encodable) -> Data {
        (try? EventCodec.makeEncoder().encode(value)) ?? Data("{}".utf8)
    }

    /// The status body of API.md: ok, instanceId, status, createdAt, lastChangeDt, tags, and once
    /// terminal `out` (and `error` for FAILED/TIMED_OUT).
    package static func status(_ view: InstanceView) -> [String: JSONBodyValue] {
        var body: [String: JSONBodyValue] = [
            "ok": .bool(true),
            "instanceId": .string(view.id.description),
            "status": .string(view.status.rawValue),
            "createdAt": .string(view.createdAt.iso8601),
            "lastChangeDt": .string(view.lastChangeAt.iso8601),
            "tags": .array(view.tags.map { .string($0) }),
        ]
        if view.status.isTerminal { body["out"] = .json(.object(view.out ?? [:])) }
        if let error = view.error { body["error"] = .string(error) }
        if let parent = view.parentInstanceId { body["parentInstanceId"] = .string(parent.description) }
        return body
    }

    /// `GET .../history`: the status changes, oldest first.
    package static func history(_ view: InstanceView) -> [JSONBodyValue] {
        view.history.map {
            .object([
                "status": .string($0.status.rawValue), "changeDate": .string($0.at.iso8601),
                "reason": .string($0.reason),
            ])
        }
    }

    /// `GET /api/v2/process`: status bodies, newest first.
    package static func listing(_ views: [InstanceView]) -> [JSONBodyValue] {
        views.map { .object(status($0)) }
    }
}
