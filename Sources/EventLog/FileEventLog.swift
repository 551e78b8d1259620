import CZlib
import Foundation
import Model
import Support
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Past 400 lines on purpose: the segment list, the durable head, the writer thread's queue and the
// recovery after a failed write share one lock and its invariants; split further, each part would
// need the others' private state. Opening a folder is `FileEventLog+Opening.swift`, retention's
// rewrites `Retention.swift`, the record format `RecordFormat.swift`, indexes `SegmentIndex.swift`.

/// The embedded event log: append-only segment files of length-prefixed, CRC-checked records
/// (`RecordFormat`), each body the event's JSON (`EventCodec`). Segments are named by their first sequence number and rolled past
/// `segmentBytes`. On open every record is checked; a torn or corrupt tail of the last segment is
/// truncated (it was never acknowledged), while damage anywhere else refuses to open.
///
/// One writer thread drains everything queued since its last write, writes it with one `pwrite`
/// and makes it durable with one `fdatasync`: concurrent appends share the fsync (group commit).
package final class FileEventLog: EventLog, @unchecked Sendable {
    // @unchecked: `segments`, `nextSeq`, `pending` and `durable` are guarded by `lock`;
    // the writer thread alone writes files.

    struct Segment {
        let firstSeq: UInt64
        let path: String
        /// Shared by every copy of the entry: a reader that took the entry keeps the file open
        /// even when retention swaps in a rewritten one meanwhile.
        let file: SegmentFile
        var offsets: RecordOffsets
        var size: UInt64

        var fd: Int32 { file.fd }
        /// The numbers it covers, present or removed by retention.
        var end: UInt64 { firstSeq + offsets.span }
    }

    struct Pending {
        var bytes: [UInt8]
        var envelopes: [EventEnvelope]
        var promise: Promise<Void>
    }

    let directory: String
    private let segmentBytes: UInt64
    let fsyncEnabled: Bool
    let lock = NSCondition()
    var segments: [Segment] = []
    var nextSeq: UInt64 = 1
    var durable: UInt64 = 0
    private var pending: [Pending] = []
    private var durableWaiters: [(seq: UInt64, promise: Promise<Void>)] = []
    private var closed = false
    private var writerDone = false
    /// Set by a failed write: appends are refused until `recover()` succeeds, so nothing is
    /// numbered on top of a write whose fate the appenders have not yet heard.
    private var failure: EventLogError?
    private var failureCount = 0
    private var writer: Thread?
    /// Holds the folder's `LOCK` (flock) for the log's lifetime.
    private let lockFD: Int32
    private let stats = Mutex(AppendStats())
    /// In a class, not as a bare closure: `withLock { $0 }` on a `Mutex` of a closure wraps the
    /// stored closure in two more reabstraction thunks on every read (the inout is written back),
    /// so each commit called through a chain one link longer than the last (quadratic, and in the
    /// end a stack overflow on the writer thread).
    private final class CommitHook: Sendable {
        let call: @Sendable ([EventEnvelope], [ArraySlice<UInt8>]) -> Void
        init(_ call: @escaping @Sendable ([EventEnvelope], [ArraySlice<UInt8>]) -> Void) { self.call = call }
    }
    private let commitHook = Mutex<CommitHook?>(nil)

    /// Called on the writer thread with each durable batch (see `EventLog.onCommit`).
    package func onCommit(
        _ hook: @escaping @Sendable (_ envelopes: [EventEnvelope], _ json: [ArraySlice<UInt8>]) -> Void
    ) {
        let boxed = CommitHook(hook)
        commitHook.withLock { $0 = boxed }
    }

    /// What `open` found and repaired.
    package struct Recovery: Sendable {
        /// Bytes cut from the tail of the last segment (a torn or corrupt write), 0 when clean.
        package var truncatedBytes: UInt64
        /// Why the tail was cut, when it was.
        package var reason: String?
    }

    /// What `open` found and repaired.
    package internal(set) var recovery = Recovery(truncatedBytes: 0, reason: nil)

    /// Opens (or creates) the log in `directory`, checking every record of the last segment, and
    /// of each earlier one that has no sealed index that holds (`SegmentIndex`); records of indexed
    /// segments are checked as they are read, and `accord log verify` checks them all.
    ///
    /// - Throws: `EventLogError` when a checked record before the last segment's tail is damaged
    ///   or the sequence has a gap: that needs a person, not a silent repair.
    package init(directory: String, segmentBytes: UInt64 = 64 << 20, fsync: Bool = true) throws {
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.fsyncEnabled = fsync
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        lockFD = try Self.lockFolder(directory)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }.sorted()
        for (index, name) in names.enumerated() {
            let next = index + 1 < names.count ? Self.firstSeq(ofSegment: names[index + 1]) : nil
            try openSegment(path: directory + "/" + name, nextFirstSeq: next)
        }
        if segments.isEmpty { try createSegment(firstSeq: 1) }
        durable = nextSeq - 1
        // The thread holds the log until `close()` ends its loop.
        let thread = Thread { self.writerLoop() }
        thread.name = "accord-log-writer"
        thread.qualityOfService = .userInitiated
        writer = thread
        thread.start()
    }

    deinit { Glibc.close(lockFD) }

    /// One writer per log, ever: a second Scheduler (or an import) on the same folder is refused.
    /// The descriptor is closed here when refused, before `lockFD` is set: once every stored
    /// property is set, a throwing init runs `deinit`, which would close it a second time, and
    /// by then that number may be another thread's file (seen as a segment that read as empty
    /// in a test running beside the refused open).
    private static func lockFolder(_ directory: String) throws -> Int32 {
        let fd = Glibc.open(directory + "/LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { Glibc.close(fd) }
            throw EventLogError("the event log in \(directory) is in use by another process (\(reason))")
        }
        return fd
    }

    /// The first number of the segment file `name` (`segment-<first>.log`).
    static func firstSeq(ofSegment name: String) -> UInt64? {
        UInt64(name.dropFirst("segment-".count).dropLast(".log".count))
    }

    /// Stops the writer after it has written what is queued, waits for it, and releases the
    /// folder's lock (so the log can be opened again at once, by this process or another).
    package func close() {
        lock.lock()
        if closed {
            lock.unlock()
            return
        }
        closed = true
        lock.broadcast()
        while !writerDone { lock.wait() }
        lock.unlock()
        _ = flock(lockFD, LOCK_UN)
    }

    /// One Scheduler owns a file log: nothing to fence, no epoch to raise.
    package var epoch: UInt64 { 0 }

    package var durableHead: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return durable
    }

    /// Returns once every event up to `seq` is durable (at once if it already is); throws if the
    /// log fails first.
    package func waitDurable(_ seq: UInt64) async throws {
        guard let promise = registerDurableWaiter(seq) else { return }
        try await promise.value()
    }

    private func registerDurableWaiter(_ seq: UInt64) -> Promise<Void>? {
        lock.lock()
        defer { lock.unlock() }
        if seq <= durable { return nil }
        let promise = Promise<Void>()
        durableWaiters.append((seq, promise))
        return promise
    }

    /// Appends, fsyncs and their timings so far.
    package var appendStats: AppendStats { stats.withLock { $0 } }

    package func append(_ drafts: [EventEnvelope]) -> AppendTicket {
        let promise = Promise<Void>()
        guard !drafts.isEmpty else {
            promise.fulfill(.success(()))
            return AppendTicket(envelopes: [], promise: promise)
        }
        lock.lock()
        defer { lock.unlock() }
        if closed {
            promise.fulfill(.failure(EventLogError("the event log is closed")))
            return AppendTicket(envelopes: [], promise: promise)
        }
        if let failure {
            promise.fulfill(.failure(failure))
            return AppendTicket(envelopes: [], promise: promise)
        }
        let numbered: [EventEnvelope]
        var bytes: [UInt8] = []
        do {
            let records = try EventRecord.number(drafts, from: nextSeq)
            numbered = records.envelopes
            for body in records.bodies { RecordFormat.append(body: body, to: &bytes) }
        } catch {
            promise.fulfill(.failure(error))
            return AppendTicket(envelopes: [], promise: promise)
        }
        nextSeq += UInt64(drafts.count)
        pending.append(Pending(bytes: bytes, envelopes: numbered, promise: promise))
        lock.signal()
        return AppendTicket(envelopes: numbered, promise: promise)
    }

    /// The next `limit` events after `after` that the log holds (numbers retention removed are
    /// passed over, so a reader walks across them).
    package func read(after: UInt64, limit: Int) throws -> [EventEnvelope] {
        try locations(after: after, limit: limit).map {
            try readRecord($0.file.fd, at: $0.offset, expecting: $0.seq, in: $0.path)
        }
    }

    /// The same events' stored JSON, each record's checksum and number checked, none decoded.
    package func readStored(after: UInt64, limit: Int) throws -> [StoredEvent] {
        try locations(after: after, limit: limit).map {
            StoredEvent(
                seq: $0.seq, json: try readRecordBody($0.file.fd, at: $0.offset, expecting: $0.seq, in: $0.path))
        }
    }

    private func locations(after: UInt64, limit: Int) -> [(
        file: SegmentFile, offset: UInt64, seq: UInt64, path: String
    )] {
        lock.lock()
        let head = durable
        var locations: [(file: SegmentFile, offset: UInt64, seq: UInt64, path: String)] = []
        if after < head, limit > 0, var index = segmentIndex(for: after + 1) {
            while index < segments.count, locations.count < limit {
                let segment = segments[index]
                var slot = segment.offsets.firstRecord(atOrAfter: after + 1, firstSeq: segment.firstSeq)
                while slot < segment.offsets.count, locations.count < limit {
                    let record = segment.offsets.record(slot, firstSeq: segment.firstSeq)
                    if record.seq > head { break }
                    locations.append((segment.file, record.offset, record.seq, segment.path))
                    slot += 1
                }
                index += 1
            }
        }
        lock.unlock()
        return locations
    }

    package func read(seqs: [UInt64]) throws -> [EventEnvelope] {
        lock.lock()
        let head = durable
        let locations: [(file: SegmentFile, offset: UInt64, seq: UInt64, path: String)?] = seqs.map { seq in
            guard seq >= 1, seq <= head, let index = segmentIndex(for: seq) else { return nil }
            let segment = segments[index]
            guard let offset = segment.offsets.offset(of: seq, firstSeq: segment.firstSeq) else { return nil }
            return (segment.file, offset, seq, segment.path)
        }
        lock.unlock()
        var result: [EventEnvelope] = []
        result.reserveCapacity(seqs.count)
        for location in locations {
            guard let location else { continue }
            result.append(
                try readRecord(location.file.fd, at: location.offset, expecting: location.seq, in: location.path))
        }
        return result
    }

    /// How many segments' offsets are read from their index file rather than held in memory.
    var mappedSegments: Int {
        lock.lock()
        defer { lock.unlock() }
        return segments.filter { if case .owned = $0.offsets { false } else { true } }.count
    }

    /// Calls `body` with every durable event in order, reading whole segments sequentially.
    package func scan(from firstSeq: UInt64 = 1, _ body: (EventEnvelope) throws -> Void) throws {
        lock.lock()
        let snapshot = segments
        let head = durable
        lock.unlock()
        for segment in snapshot {
            if segment.offsets.isEmpty { continue }
            if segment.end <= firstSeq { continue }
            let data = try segment.file.map()
            let from = segment.offsets.firstRecord(atOrAfter: firstSeq, firstSeq: segment.firstSeq)
            for slot in from..<segment.offsets.count {
                let (seq, offset) = segment.offsets.record(slot, firstSeq: segment.firstSeq)
                if seq > head { return }
                let start = Int(offset)
                guard let frame = RecordFormat.frame(in: data, at: start) else { break }
                // A sealed segment is not walked when the log opens: its records are checked here.
                guard RecordFormat.isIntact(frame, in: data) else {
                    throw EventLogError("\(segment.path) at byte \(start): a record's checksum does not match")
                }
                try body(
                    EventRecord.decode(
                        data.subdata(in: frame.body), expecting: seq, at: "\(segment.path) at byte \(start)"))
            }
        }
    }

    private func createSegment(firstSeq: UInt64) throws {
        let path = directory + "/" + String(format: "segment-%020llu.log", firstSeq)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EventLogError("cannot create \(path): \(String(cString: strerror(errno)))") }
        let written = RecordFormat.segmentHeader.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == RecordFormat.segmentHeader.count, fsyncEnabled ? fdatasync(fd) == 0 : true else {
            Glibc.close(fd)
            unlink(path)
            throw EventLogError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        syncDirectory()
        segments.append(
            Segment(
                firstSeq: firstSeq, path: path, file: SegmentFile(fd: fd), offsets: .owned([]),
                size: UInt64(RecordFormat.segmentHeader.count))
        )
    }

    private func syncDirectory() {
        guard fsyncEnabled else { return }
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            Glibc.close(fd)
        }
    }

    // MARK: - Writing

    private func writerLoop() {
        while true {
            lock.lock()
            while pending.isEmpty && !closed { lock.wait() }
            if pending.isEmpty && closed {
                writerDone = true
                lock.broadcast()
                lock.unlock()
                return
            }
            let batch = pending
            pending = []
            lock.unlock()
            write(batch)
        }
    }

    private func write(_ batch: [Pending]) {
        lock.lock()
        var segment = segments[segments.count - 1]
        lock.unlock()
        let firstSeq = segment.end
        if segment.size >= segmentBytes {
            // Every record of the segment is durable: its index is written before the next begins.
            if case .owned(let offsets) = segment.offsets,
                let sealed = seal(offsets, size: segment.size, path: segment.path)
            {
                lock.lock()
                segments[segments.count - 1].offsets = sealed
                lock.unlock()
            }
            do {
                try createSegmentLocked(firstSeq: firstSeq)
                lock.lock()
                segment = segments[segments.count - 1]
                lock.unlock()
            } catch {
                fail(batch, error)
                return
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(batch.reduce(0) { $0 + $1.bytes.count })
        var newOffsets: [UInt64] = []
        for item in batch {
            for offset in RecordFormat.offsets(item.bytes) {
                newOffsets.append(segment.size + UInt64(bytes.count + offset))
            }
            bytes += item.bytes
        }
        let start = ContinuousClock.now
        // A short write (the disk filled part-way) is continued: the retry reports why it stopped.
        var written = 0
        var failedErrno: Int32 = 0
        bytes.withUnsafeBytes { raw in
            while written < raw.count {
                let n = pwrite(
                    segment.fd, raw.baseAddress! + written, raw.count - written, off_t(segment.size) + off_t(written))
                if n > 0 {
                    written += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    failedErrno = n < 0 ? errno : EIO
                    return
                }
            }
        }
        if written == bytes.count && fsyncEnabled && fdatasync(segment.fd) != 0 { failedErrno = errno }
        guard failedErrno == 0 else {
            let reason = String(cString: strerror(failedErrno))
            _ = ftruncate(segment.fd, off_t(segment.size))
            fail(batch, EventLogError("writing the event log failed: \(reason)"))
            return
        }
        let elapsed = start.duration(to: .now)
        let count = newOffsets.count
        lock.lock()
        segments[segments.count - 1].offsets.append(contentsOf: newOffsets)
        segments[segments.count - 1].size += UInt64(bytes.count)
        durable += UInt64(count)
        let head = durable
        let reached = durableWaiters.filter { $0.seq <= head }
        durableWaiters.removeAll { $0.seq <= head }
        lock.unlock()
        for waiter in reached { waiter.promise.fulfill(.success(())) }
        stats.withLock { $0.record(events: count, took: elapsed) }
        if let hook = commitHook.withLock({ $0 }) {
            hook.call(batch.flatMap(\.envelopes), batch.flatMap { RecordFormat.bodies($0.bytes) })
        }
        for item in batch { item.promise.fulfill(.success(())) }
    }

    private func createSegmentLocked(firstSeq: UInt64) throws {
        lock.lock()
        defer { lock.unlock() }
        try createSegment(firstSeq: firstSeq)
    }

    /// A failed write takes everything queued with it: sequence numbers handed out after the last
    /// durable event are handed out again, so the log never has a gap.
    private func fail(_ batch: [Pending], _ error: any Error) {
        lock.lock()
        failure = (error as? EventLogError) ?? EventLogError("\(error)")
        failureCount += 1
        let queued = pending
        pending = []
        nextSeq = durable + 1
        let waiters = durableWaiters
        durableWaiters = []
        lock.unlock()
        for item in batch + queued { item.promise.fulfill(.failure(error)) }
        for waiter in waiters { waiter.promise.fulfill(.failure(error)) }
    }

    /// Failed writes so far: a reader that saw the same count before and after knows no event it
    /// was shown has been refused since.
    package var failures: Int {
        lock.lock()
        defer { lock.unlock() }
        return failureCount
    }

    /// Why the log refuses appends, when a write has failed and `recover()` has not yet succeeded.
    package var failed: EventLogError? {
        lock.lock()
        defer { lock.unlock() }
        return failure
    }

    /// After a failed write: checks that the log can take writes again (room for `headroom` more
    /// bytes is reserved and released, and the segment syncs), then accepts appends again.
    /// Throws, leaving the log refusing appends, while the fault persists.
    package func recover() throws { try recover(headroom: 64 << 10) }

    /// `recover()`, reserving `headroom` bytes as the probe.
    package func recover(headroom: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        guard failure != nil else { return }
        let segment = segments[segments.count - 1]
        // Cut whatever the failed write left past the last durable record first: records of it
        // could otherwise reappear behind shorter ones written later under the same numbers.
        guard ftruncate(segment.fd, off_t(segment.size)) == 0 else {
            throw EventLogError("the event log cannot be cut back: \(String(cString: strerror(errno)))")
        }
        let reserved = posix_fallocate(segment.fd, off_t(segment.size), off_t(headroom))
        _ = ftruncate(segment.fd, off_t(segment.size))
        guard reserved == 0 else {
            throw EventLogError("the event log still cannot grow: \(String(cString: strerror(reserved)))")
        }
        guard !fsyncEnabled || fdatasync(segment.fd) == 0 else {
            throw EventLogError("the event log still cannot sync: \(String(cString: strerror(errno)))")
        }
        failure = nil
    }

    // MARK: - Reading

    func segmentIndex(for seq: UInt64) -> Int? {
        var low = 0
        var high = segments.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if segments[mid].firstSeq <= seq {
                if mid == segments.count - 1 || segments[mid + 1].firstSeq > seq { return mid }
                low = mid + 1
            } else {
                high = mid - 1
            }
        }
        return nil
    }

    /// One record's JSON, checked: its checksum, and that it is the event the index says is there
    /// (its envelope's `seq`, the member after which only `type` and `version` follow, found from
    /// the end without decoding the event).
    func readRecordBody(_ fd: Int32, at offset: UInt64, expecting seq: UInt64, in path: String) throws -> [UInt8] {
        let body = try checkedRecord(fd, at: offset, in: path)
        guard Self.storedSeq(body) == seq else {
            throw EventLogError("the record at \(path) byte \(offset) is not event \(seq)")
        }
        return body
    }

    /// The JSON of the record at `offset`, its checksum checked.
    private func checkedRecord(_ fd: Int32, at offset: UInt64, in path: String) throws -> [UInt8] {
        let headerSize = RecordFormat.recordHeaderSize
        var header = [UInt8](repeating: 0, count: headerSize)
        guard header.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, headerSize, off_t(offset)) }) == headerSize
        else {
            throw EventLogError("cannot read the record at \(path) byte \(offset)")
        }
        let length = Int(header.loadLE32(at: 0))
        var body = [UInt8](repeating: 0, count: length)
        let got = body.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(offset) + off_t(headerSize)) }
        guard got == length, body.crc32() == header.loadLE32(at: 4) else {
            throw EventLogError("the record at \(path) byte \(offset) is damaged")
        }
        return body
    }

    /// The envelope's `"seq":N` in a stored event's JSON (keys sorted: only `type` and `version`
    /// come after it, so the last one is the envelope's, whatever the event's data holds).
    static func storedSeq(_ json: [UInt8]) -> UInt64? {
        let key = Array(#""seq":"#.utf8)
        var index = json.count - key.count
        while index >= 0 {
            if json[index] == key[0], Array(json[index..<(index + key.count)]) == key {
                var value: UInt64 = 0
                var position = index + key.count
                var digits = 0
                while position < json.count, json[position] >= 0x30, json[position] <= 0x39, digits < 20 {
                    value = value &* 10 &+ UInt64(json[position] - 0x30)
                    position += 1
                    digits += 1
                }
                return digits > 0 ? value : nil
            }
            index -= 1
        }
        return nil
    }

    /// One record, checked: its checksum, and that it is the event the index says is there.
    func readRecord(_ fd: Int32, at offset: UInt64, expecting seq: UInt64, in path: String) throws
        -> EventEnvelope
    {
        try EventRecord.decode(
            Data(try checkedRecord(fd, at: offset, in: path)), expecting: seq, at: "\(path) at byte \(offset)")
    }
}
