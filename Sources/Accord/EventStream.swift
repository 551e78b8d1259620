import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One Server-Sent Event: its `event` name (`message` when none), `id` and joined `data` lines.
struct ServerSentEvent: Equatable, Sendable {
    var event = "message"
    var id: String?
    var data = ""
}

/// Splits a `text/event-stream` into events as its bytes arrive, in any pieces (the WHATWG
/// rules: fields up to a line end, an empty line dispatches, comments and unknown fields ignored).
struct ServerSentEventParser {
    private var buffer: [UInt8] = []
    private var pending = ServerSentEvent()
    private var hasData = false
    private var lastWasCR = false

    /// Every event that `bytes` completes.
    mutating func feed(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if byte == 0x0A && lastWasCR {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0D
            guard byte == 0x0A || byte == 0x0D else {
                buffer.append(byte)
                continue
            }
            let line = String(decoding: buffer, as: UTF8.self)
            buffer.removeAll(keepingCapacity: true)
            if line.isEmpty {
                if hasData { events.append(pending) }
                pending = ServerSentEvent(id: pending.id)
                hasData = false
                continue
            }
            if line.hasPrefix(":") { continue }
            let (field, value) = Self.field(line)
            switch field {
            case "event": pending.event = value
            case "id": pending.id = value
            case "data":
                pending.data += hasData ? "\n" + value : value
                hasData = true
            default: break
            }
        }
        return events
    }

    private static func field(_ line: String) -> (String, String) {
        guard let colon = line.firstIndex(of: ":") else { return (line, "") }
        var value = line[line.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        return (String(line[..<colon]), String(value))
    }
}

extension Client {
    /// A GET whose answer is read as it arrives: the status once the head is in, then each piece
    /// of the body. `idle` bounds the silence between pieces (the server's heartbeats keep a
    /// quiet stream alive).
    func stream(_ path: String, headers: [String: String], idle: TimeInterval = 60) throws -> AsyncThrowingStream<
        StreamPiece, any Error
    > {
        guard let target = URL(string: url + path) else { throw CLIError("bad URL \(url + path)") }
        var request = URLRequest(url: target)
        request.timeoutInterval = idle
        if let key { request.setValue(key, forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (pieces, continuation) = AsyncThrowingStream.makeStream(of: StreamPiece.self)
        let delegate = StreamDelegate(continuation)
        let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
        let task = session.dataTask(with: request)
        continuation.onTermination = { _ in
            task.cancel()
            session.finishTasksAndInvalidate()
        }
        task.resume()
        return pieces
    }
}

/// What a streamed answer delivers, in order: its status, then its body in pieces.
enum StreamPiece: Sendable {
    case status(Int)
    case body(Data)
}

private final class StreamDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Only URLSession's serial delegate queue touches this.
    private let continuation: AsyncThrowingStream<StreamPiece, any Error>.Continuation

    init(_ continuation: AsyncThrowingStream<StreamPiece, any Error>.Continuation) { self.continuation = continuation }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        continuation.yield(.status((response as? HTTPURLResponse)?.statusCode ?? 0))
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        continuation.yield(.body(data))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        if let error { continuation.finish(throwing: error) } else { continuation.finish() }
    }
}
