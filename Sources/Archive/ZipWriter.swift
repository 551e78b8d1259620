import CZlib
import Foundation

/// Writes ZIP archives (deflated entries, Unix permissions) from files or bytes: what
/// `accord start DIR` uploads, and what a multipart start's parts are gathered into.
package struct ZipWriter {
    private struct Entry {
        var name: String
        var mode: UInt32
        var method: UInt16
        var crc: UInt32
        var size: Int
        var stored: [UInt8]
    }
    private var entries: [Entry] = []

    package init() {}

    package mutating func add(_ name: String, _ data: [UInt8], mode: UInt32 = 0o644) {
        let crc = UInt32(data.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) })
        entries.append(
            Entry(name: name, mode: mode, method: 8, crc: crc, size: data.count, stored: ZipWriter.deflate(data)))
    }

    /// Copies an entry of another archive as it is stored, without inflating it again (its CRC and
    /// sizes were checked when that archive was verified). Folders are left out: extraction makes
    /// every file's folders.
    package mutating func copy(_ entry: ZipEntry, from archive: ZipArchive) throws {
        guard !entry.isDirectory else { return }
        entries.append(
            Entry(
                name: entry.path, mode: 0o644, method: entry.method, crc: entry.crc, size: entry.declaredSize,
                stored: try archive.storedBytes(of: entry)))
    }

    /// Every regular file under `directory` (symbolic links and hidden version-control folders
    /// skipped), with paths relative to it.
    package mutating func addDirectory(
        _ directory: String, skipping skipped: Set<String> = [], maxBytes: Int = .max
    ) throws {
        let root = URL(fileURLWithPath: directory).standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(atPath: root) else {
            throw ZipWriterError("cannot read \(directory)")
        }
        var files: [String] = []
        var total = 0
        while let relative = walker.nextObject() as? String {
            if relative.hasPrefix(".git/") || relative == ".git" || skipped.contains(relative) { continue }
            var info = stat()
            guard lstat(root + "/" + relative, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            total += Int(info.st_size)
            guard total <= maxBytes else { throw ZipWriterError("\(directory) holds more than \(maxBytes) bytes") }
            files.append(relative)
        }
        for relative in files.sorted() {
            guard let data = FileManager.default.contents(atPath: root + "/" + relative) else {
                throw ZipWriterError("cannot read \(root)/\(relative)")
            }
            var info = stat()
            _ = stat(root + "/" + relative, &info)
            add(relative, Array(data), mode: UInt32(info.st_mode) & 0o777)
        }
    }

    package var names: [String] { entries.map(\.name) }

    package func contains(_ name: String) -> Bool { entries.contains { $0.name == name } }

    package func build() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for entry in entries {
            let name = Array(entry.name.utf8)
            let (crc, stored, size) = (entry.crc, entry.stored, UInt32(entry.size))
            let offset = UInt32(out.count)
            // Version 2.0, flag 0x800 (UTF-8 names), deflate or stored, a fixed 1980-01-01 timestamp.
            out += le32(0x0403_4B50) + le16(20) + le16(0x800) + le16(entry.method) + le16(0) + le16(0x21)
            out += le32(crc) + le32(UInt32(stored.count)) + le32(size)
            out += le16(UInt16(name.count)) + le16(0) + name + stored
            central += le32(0x0201_4B50) + le16(3 << 8 | 20) + le16(20) + le16(0x800) + le16(entry.method) + le16(0)
            central += le16(0x21) + le32(crc) + le32(UInt32(stored.count)) + le32(size)
            central += le16(UInt16(name.count)) + le16(0) + le16(0) + le16(0) + le16(0)
            central += le32((0o100000 | entry.mode) << 16) + le32(offset) + name
        }
        let directoryOffset = UInt32(out.count)
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(UInt16(entries.count)) + le16(UInt16(entries.count))
        out += le32(UInt32(central.count)) + le32(directoryOffset) + le16(0)
        return out
    }

    /// Raw deflate (no zlib header), as ZIP stores it.
    package static func deflate(_ data: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        deflateInit2_(
            &stream, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)
        )
        defer { deflateEnd(&stream) }
        var input = data
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(data.count))) + 16)
        let produced = input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.next_in = inBuffer.baseAddress
                stream.avail_in = uInt(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = uInt(outBuffer.count)
                CZlib.deflate(&stream, Z_FINISH)
                return outBuffer.count - Int(stream.avail_out)
            }
        }
        return Array(output.prefix(produced))
    }

    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
    private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}

package struct ZipWriterError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
