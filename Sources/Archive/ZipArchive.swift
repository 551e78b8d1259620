import CZlib

/// Limits for an untrusted archive, checked while it is read.
package struct ZipLimits: Sendable {
    /// Most entries allowed (files and folders).
    package var maxEntries: Int
    /// Most bytes all entries may unpack to, counted as they inflate (headers can lie).
    package var maxUnpackedBytes: Int

    package init(maxEntries: Int = 10_000, maxUnpackedBytes: Int = 256 << 20) {
        self.maxEntries = maxEntries
        self.maxUnpackedBytes = maxUnpackedBytes
    }
}

/// Why an archive was refused. `isTooLarge` separates 413 cases from 400 ones.
package enum ZipError: Error, Equatable, CustomStringConvertible {
    /// The bytes are not a ZIP archive we can read.
    case notZip(String)
    /// An entry is unsafe to unpack (absolute path, `..`, symlink, encryption).
    case unsafeEntry(String)
    /// The archive is damaged.
    case corrupt(String)
    /// It uses a feature this reader does not support.
    case unsupported(String)
    /// A limit was exceeded.
    case tooLarge(String)

    /// Whether this is a limit being exceeded (413) rather than a bad archive (400).
    package var isTooLarge: Bool {
        if case .tooLarge = self { return true }
        return false
    }

    package var description: String {
        switch self {
        case .notZip(let m), .unsafeEntry(let m), .corrupt(let m), .unsupported(let m), .tooLarge(let m): m
        }
    }
}

/// One entry of the central directory, already checked to be safe to unpack.
package struct ZipEntry: Sendable, Hashable {
    /// The path inside the archive, with `/` separators and no leading `./`.
    package let path: String
    /// Whether it is a folder.
    package let isDirectory: Bool
    let method: UInt16
    let crc: UInt32
    let compressedSize: Int
    /// The size its headers declare; inflating checks it.
    package let declaredSize: Int
    let localHeaderOffset: Int
}

/// A ZIP archive read from memory. The central directory is checked up front (entry count, path
/// escapes, absolute paths, symlinks, encryption, ZIP64); entry data is inflated on demand with the
/// declared size and the archive-wide budget enforced as the bytes come out, and the CRC checked.
package struct ZipArchive: Sendable {
    /// The entries, in central-directory order.
    package let entries: [ZipEntry]
    private let bytes: [UInt8]
    let limits: ZipLimits

    /// Reads and checks the central directory.
    package init(bytes: [UInt8], limits: ZipLimits = ZipLimits()) throws {
        self.bytes = bytes
        self.limits = limits
        guard bytes.count >= 22 else { throw ZipError.notZip("the body is not a ZIP archive (it is too short)") }
        guard let eocd = ZipArchive.findEndOfCentralDirectory(bytes) else {
            throw ZipError.notZip("the body is not a ZIP archive (no end-of-central-directory record)")
        }
        let count = Int(bytes.le16(eocd + 10))
        let cdSize = Int(bytes.le32(eocd + 12))
        let cdOffset = Int(bytes.le32(eocd + 16))
        if count == 0xFFFF || cdOffset == 0xFFFF_FFFF { throw ZipError.unsupported("ZIP64 archives are not supported") }
        guard count <= limits.maxEntries else {
            throw ZipError.tooLarge("the archive has \(count) entries; the limit is \(limits.maxEntries)")
        }
        guard cdOffset + cdSize <= eocd else {
            throw ZipError.corrupt("the archive's central directory is out of bounds")
        }
        var entries: [ZipEntry] = []
        entries.reserveCapacity(count)
        var seen = Set<String>()
        var position = cdOffset
        var declaredTotal = 0
        for _ in 0..<count {
            guard position + 46 <= bytes.count, bytes.le32(position) == 0x0201_4B50 else {
                throw ZipError.corrupt("the archive's central directory is damaged")
            }
            let madeBy = bytes.le16(position + 4)
            let flags = bytes.le16(position + 8)
            let method = bytes.le16(position + 10)
            let crc = bytes.le32(position + 16)
            let compressed = Int(bytes.le32(position + 20))
            let uncompressed = Int(bytes.le32(position + 24))
            let nameLength = Int(bytes.le16(position + 28))
            let extraLength = Int(bytes.le16(position + 30))
            let commentLength = Int(bytes.le16(position + 32))
            let externalAttributes = bytes.le32(position + 38)
            let localOffset = Int(bytes.le32(position + 42))
            let nameEnd = position + 46 + nameLength
            guard nameEnd <= bytes.count else { throw ZipError.corrupt("the archive's central directory is damaged") }
            let rawName = String(decoding: bytes[(position + 46)..<nameEnd], as: UTF8.self)
            position = nameEnd + extraLength + commentLength
            guard position <= bytes.count else { throw ZipError.corrupt("the archive's central directory is damaged") }

            let path = try ZipArchive.checkedPath(rawName)
            if flags & 0x1 != 0 {
                throw ZipError.unsafeEntry("entry '\(rawName)' is encrypted; encrypted entries are not accepted")
            }
            let unixMode = (externalAttributes >> 16) & 0o170000
            if madeBy >> 8 == 3, unixMode == 0o120000 {
                throw ZipError.unsafeEntry("entry '\(rawName)' is a symbolic link; links are not accepted")
            }
            if compressed == 0xFFFF_FFFF || uncompressed == 0xFFFF_FFFF {
                throw ZipError.unsupported("entry '\(rawName)' needs ZIP64, which is not supported")
            }
            guard method == 0 || method == 8 else {
                throw ZipError.unsupported(
                    "entry '\(rawName)' uses compression method \(method); only stored and deflate are supported")
            }
            let isDirectory = rawName.hasSuffix("/") || rawName.hasSuffix("\\")
            guard !path.isEmpty || isDirectory else { throw ZipError.unsafeEntry("an entry has an empty name") }
            if !isDirectory {
                guard seen.insert(path).inserted else { throw ZipError.corrupt("entry '\(path)' appears twice") }
            }
            declaredTotal += uncompressed
            guard declaredTotal <= limits.maxUnpackedBytes else {
                throw ZipError.tooLarge("the archive unpacks to more than \(limits.maxUnpackedBytes) bytes")
            }
            entries.append(
                ZipEntry(
                    path: path, isDirectory: isDirectory, method: method, crc: crc, compressedSize: compressed,
                    declaredSize: uncompressed, localHeaderOffset: localOffset))
        }
        self.entries = entries
    }

    /// The entry at `path`, if any (files only).
    package func entry(_ path: String) -> ZipEntry? {
        entries.first { !$0.isDirectory && $0.path == path }
    }

    /// Inflates one entry into memory.
    package func contents(of entry: ZipEntry) throws -> [UInt8] {
        var budget = limits.maxUnpackedBytes
        var out: [UInt8] = []
        out.reserveCapacity(min(entry.declaredSize, 1 << 20))
        try inflate(entry, budget: &budget) { chunk in out += chunk }
        return out
    }

    /// Inflates every entry, discarding the bytes: proves the archive is sound and within limits
    /// without keeping anything.
    package func verifyAll() throws {
        var budget = limits.maxUnpackedBytes
        for entry in entries where !entry.isDirectory {
            try inflate(entry, budget: &budget) { _ in }
        }
    }

    /// One entry's bytes as they are stored (deflated or not), for copying into another archive.
    package func storedBytes(of entry: ZipEntry) throws -> [UInt8] {
        let start = try dataStart(of: entry)
        return Array(bytes[start..<(start + entry.compressedSize)])
    }

    private func dataStart(of entry: ZipEntry) throws -> Int {
        let header = entry.localHeaderOffset
        guard header + 30 <= bytes.count, bytes.le32(header) == 0x0403_4B50 else {
            throw ZipError.corrupt("entry '\(entry.path)': local header is damaged")
        }
        let dataStart = header + 30 + Int(bytes.le16(header + 26)) + Int(bytes.le16(header + 28))
        guard dataStart + entry.compressedSize <= bytes.count else {
            throw ZipError.corrupt("entry '\(entry.path)' is cut short")
        }
        return dataStart
    }

    /// Streams one entry's bytes to `sink` in chunks, enforcing its declared size, the remaining
    /// `budget` and its CRC.
    package func inflate(
        _ entry: ZipEntry, budget: inout Int, _ sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let dataStart = try dataStart(of: entry)
        guard entry.declaredSize <= budget else {
            throw ZipError.tooLarge("the archive unpacks to more than \(limits.maxUnpackedBytes) bytes")
        }
        var crc = CZlib.crc32(0, nil, 0)
        var produced = 0
        try withoutActuallyEscaping(sink) { sink in
            let emit: (UnsafeRawBufferPointer) throws -> Void = { chunk throws in
                produced += chunk.count
                guard produced <= entry.declaredSize else {
                    throw ZipError.corrupt("entry '\(entry.path)' holds more bytes than its header declares")
                }
                crc = CZlib.crc32(crc, chunk.bindMemory(to: Bytef.self).baseAddress, uInt(chunk.count))
                try sink(chunk)
            }
            if entry.method == 0 {
                guard entry.compressedSize == entry.declaredSize else {
                    throw ZipError.corrupt("entry '\(entry.path)': stored sizes disagree")
                }
                try bytes.withUnsafeBytes { raw throws in
                    try emit(UnsafeRawBufferPointer(rebasing: raw[dataStart..<(dataStart + entry.compressedSize)]))
                }
            } else {
                try inflateDeflate(entry, from: dataStart, emit)
            }
        }
        guard produced == entry.declaredSize else {
            throw ZipError.corrupt("entry '\(entry.path)' holds fewer bytes than its header declares")
        }
        guard UInt32(crc) == entry.crc else { throw ZipError.corrupt("entry '\(entry.path)' fails its CRC check") }
        budget -= produced
    }

    private func inflateDeflate(
        _ entry: ZipEntry, from start: Int, _ emit: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ZipError.corrupt("zlib could not start")
        }
        defer { inflateEnd(&stream) }
        let chunkSize = 64 << 10
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        try bytes.withUnsafeBytes { raw throws in
            let input = raw.baseAddress!.advanced(by: start).assumingMemoryBound(to: Bytef.self)
            stream.next_in = UnsafeMutablePointer(mutating: input)
            stream.avail_in = uInt(entry.compressedSize)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBytes { out -> (Int32, Int) in
                    stream.next_out = out.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = uInt(chunkSize)
                    let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return (status, chunkSize - Int(stream.avail_out))
                }
                if produced > 0 {
                    try chunk.withUnsafeBytes { out throws in
                        try emit(UnsafeRawBufferPointer(rebasing: out[0..<produced]))
                    }
                }
                if status == Z_STREAM_END { return }
                guard status == Z_OK else { throw ZipError.corrupt("entry '\(entry.path)' is not valid deflate data") }
                if produced == 0 && stream.avail_in == 0 {
                    throw ZipError.corrupt("entry '\(entry.path)' is cut short")
                }
            }
        }
    }

    /// The normalised path for a raw entry name, or an error when it is absolute or escapes.
    static func checkedPath(_ raw: String) throws -> String {
        let name = raw.replacingAll("\\", with: "/")
        if name.hasPrefix("/") || (name.count >= 2 && name.dropFirst().first == ":") {
            throw ZipError.unsafeEntry(
                "entry '\(raw)' has an absolute path; entries must be relative to the archive root")
        }
        if name.contains("\0") { throw ZipError.unsafeEntry("entry '\(raw)' has a NUL in its name") }
        var parts: [Substring] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                throw ZipError.unsafeEntry("entry '\(raw)' escapes the archive ('..' is not allowed in entry paths)")
            }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }

    private static func findEndOfCentralDirectory(_ bytes: [UInt8]) -> Int? {
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        var position = bytes.count - 22
        while position >= lowest {
            if bytes.le32(position) == 0x0605_4B50 { return position }
            position -= 1
        }
        return nil
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for character in self {
            if character == target { out += replacement } else { out.append(character) }
        }
        return out
    }
}

extension Array where Element == UInt8 {
    func le16(_ offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }

    func le32(_ offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16
            | UInt32(self[offset + 3]) << 24
    }
}
