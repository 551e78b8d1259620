import Events
import Foundation
import Hummingbird

/// A JSON value for response bodies, encoded with sorted keys.
enum JSONBodyValue: Encodable {
    case bool(Bool)
    case string(String)
    case int(Int64)
    case json(JSONValue)
    case object([String: JSONBodyValue])
    case array([JSONBodyValue])

    func encode(to encoder: any Encoder) throws {
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

enum JSONBody {
    static func encode(_ value: some Encodable) -> ByteBuffer {
        let data = (try? EventCodec.makeEncoder().encode(value)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    static func response(_ status: HTTPResponse.Status = .ok, _ value: some Encodable) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: encode(value)))
    }

    /// The status body of API.md: ok, instanceId, status, createdAt, lastChangeDt, and once
    /// terminal `out` (and `error` for FAILED/TIMED_OUT).
    static func status(_ view: InstanceView) -> [String: JSONBodyValue] {
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
        return body
    }
}
