import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One segment file's descriptor, closed when the last entry naming it goes.
final class SegmentFile: Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    deinit { Glibc.close(fd) }

    /// The file's bytes as they are now, mapped (empty for an empty file).
    func map() throws -> Data {
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw EventLogError("cannot read a segment: \(String(cString: strerror(errno)))")
        }
        let size = Int(info.st_size)
        guard size > 0 else { return Data() }
        guard let address = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), address != MAP_FAILED else {
            throw EventLogError("cannot map a segment: \(String(cString: strerror(errno)))")
        }
        return Data(
            bytesNoCopy: address, count: size, deallocator: .custom { pointer, count in _ = munmap(pointer, count) })
    }
}
