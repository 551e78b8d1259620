import Archive
import CZlib
import Model

/// Writes ZIP archives byte by byte, so tests control every header field (as the conformance
/// suite's `raw_zip` does).
public struct ZipBuilder {
    public struct Entry {
        public var name: String
        public var data: [UInt8]
        public var deflate = false
        public var flags: UInt16 = 0
        public var unixMode: UInt32 = 0o100644
        public var declaredSize: UInt32?
        public var crc: UInt32?

        public init(
            name: String, data: [UInt8], deflate: Bool = false, flags: UInt16 = 0, unixMode: UInt32 = 0o100644,
            declaredSize: UInt32? = nil, crc: UInt32? = nil
        ) {
            self.name = name
            self.data = data
            self.deflate = deflate
            self.flags = flags
            self.unixMode = unixMode
            self.declaredSize = declaredSize
            self.crc = crc
        }
    }

    /// A payload: `_main.json` and `processes/main.yml`.
    public static func payload(_ flow: String, main: String = #"{"entryPoint": "main"}"#) -> [UInt8] {
        var zip = ZipBuilder()
        zip.add("_main.json", main)
        zip.add("processes/main.yml", flow)
        return zip.build()
    }

    public var entries: [Entry] = []

    public init() {}

    public mutating func add(_ name: String, _ text: String, deflate: Bool = true) {
        entries.append(Entry(name: name, data: Array(text.utf8), deflate: deflate))
    }

    public static func deflate(_ data: [UInt8]) -> [UInt8] { ZipWriter.deflate(data) }

    public func build() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for e in entries {
            let name = Array(e.name.utf8)
            let compressed = e.deflate ? ZipBuilder.deflate(e.data) : e.data
            let crc = e.crc ?? UInt32(e.data.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) })
            let size = e.declaredSize ?? UInt32(e.data.count)
            let offset = UInt32(out.count)
            let method: UInt16 = e.deflate ? 8 : 0
            out += le32(0x0403_4B50) + le16(20) + le16(e.flags) + le16(method) + le16(0) + le16(0x5021)
            out += le32(crc) + le32(UInt32(compressed.count)) + le32(size) + le16(UInt16(name.count)) + le16(0)
            out += name + compressed
            central +=
                le32(0x0201_4B50) + le16(3 << 8 | 20) + le16(20) + le16(e.flags) + le16(method) + le16(0) + le16(0x5021)
            central += le32(crc) + le32(UInt32(compressed.count)) + le32(size) + le16(UInt16(name.count))
            central += le16(0) + le16(0) + le16(0) + le16(0) + le32(e.unixMode << 16) + le32(offset) + name
        }
        let cdOffset = UInt32(out.count)
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(UInt16(entries.count)) + le16(UInt16(entries.count))
        out += le32(UInt32(central.count)) + le32(cdOffset) + le16(0)
        return out
    }

    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}
