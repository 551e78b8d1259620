import Foundation
import JSON

/// A message `WireFrame` writes and reads by hand when it can (the per-instance messages):
/// `fastHeader` is the JSON `Codable` would write, or nil to let `Codable` write it.
package protocol FastWireEncodable {
    var fastHeader: [UInt8]? { get }
}

/// A message `WireFrame` reads by hand when it can: nil lets `JSONDecoder` read it.
package protocol FastWireDecodable {
    static func fastDecode(_ header: ArraySlice<UInt8>) -> Self?
}

extension WireFrame {
    /// The one member of an enum case's object (`{"case": {...}}`) and its fields.
    package static func enumCase(_ header: ArraySlice<UInt8>) -> (name: String, fields: JSONNode.Members)? {
        header.withUnsafeBytes { raw in
            guard case .object(let root)? = JSONNode.parse(raw), root.pairs.count == 1,
                let fields = root.pairs[0].value.objectValue
            else { return nil }
            return (root.pairs[0].key, fields)
        }
    }
}
