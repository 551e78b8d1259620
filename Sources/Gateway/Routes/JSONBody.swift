import Foundation
import Hummingbird
import ReadModels

enum JSONBody {
    static func encode(_ value: some Encodable) -> ByteBuffer { ByteBuffer(bytes: ReadModelBodies.encode(value)) }

    static func response(_ status: HTTPResponse.Status = .ok, _ value: some Encodable) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: encode(value)))
    }

    static func status(_ view: InstanceView) -> [String: JSONBodyValue] { ReadModelBodies.status(view) }
}
