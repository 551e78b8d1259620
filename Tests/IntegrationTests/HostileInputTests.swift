import Foundation
import TestSupport
import Testing

/// Bad, huge and slow input against the real binaries: each is refused or cut off, and the
/// deployment carries on serving.
extension DeploymentTests {
    /// A process that writes far more than the log cap keeps running to its end; its log stops at
    /// the cap with one marker line.
    @Test func aChattyInstanceIsCappedAndCarriesOn() async throws {
        try await withDeployment { deployment in
            deployment.executorArguments = ["--max-log-bytes", "200000"]
            try await deployment.startAll()
            let zip = ZipBuilder.payload(
                """
                main:
                - script: sh
                  body: |
                    i=0
                    while [ $i -lt 5000 ]; do
                      echo "line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                      i=$((i + 1))
                    done
                    echo done=yes >> "$ACCORD_OUT"
                - log: "after ${done}"
                """)
            let id = try await deployment.startInstance(zip)
            let final = try await deployment.waitTerminal(id)
            #expect(final["status"] as? String == "FINISHED", "\(final)")
            let log = try await deployment.log(id)
            #expect(log.utf8.count < 200_000 + 400, "log is \(log.utf8.count) bytes")
            #expect(log.utf8.count > 150_000, "log is \(log.utf8.count) bytes")
            #expect(log.components(separatedBy: "reached its limit of 200000 bytes").count == 2)
            #expect(!log.contains("line 4999"))
            #expect(!log.contains("after yes"))
        }
    }

    /// A client trickling its body is cut off at the read deadline; the gateway keeps answering.
    @Test func aSlowBodyIsCutOff() async throws {
        try await withDeployment { deployment in
            deployment.gatewayArguments += ["--request-read-timeout", "2"]
            try await deployment.startAll()
            let fd = try connect(port: deployment.port)
            defer { close(fd) }
            let head =
                "POST /api/v1/process HTTP/1.1\r\nHost: x\r\nAuthorization: \(deployment.key)\r\n"
                + "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
            #expect(send(fd, head) > 0)
            let started = ContinuousClock.now
            var closedAt: Duration?
            for _ in 0..<20 {
                // A send refused (the reset already arrived) is the cut-off too.
                if send(fd, "x") <= 0 || peerClosed(fd) {
                    closedAt = started.duration(to: .now)
                    break
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(closedAt != nil, "the slow client was never cut off")
            if let closedAt { #expect(closedAt < .seconds(5)) }
            let (status, _) = try await deployment.request("GET", "/api/v1/server/ping")
            #expect(status == 200)
        }
    }

    /// A body over `--max-body-bytes`, announced by Content-Length or sent chunked, is answered 413
    /// with the JSON error body, and nothing is recorded (it was a 500, "the server failed to
    /// handle the request", for 70 MiB against the default 64 MiB).
    @Test func anOversizedBodyIs413WhateverItsFraming() async throws {
        try await withDeployment { deployment in
            deployment.gatewayArguments += ["--max-body-bytes", "\(1 << 20)"]
            try await deployment.startAll()
            let chunk = String(repeating: "z", count: 64 << 10)
            let head =
                "POST /api/v1/process HTTP/1.1\r\nHost: x\r\nAuthorization: \(deployment.key)\r\n"
                + "Content-Type: application/octet-stream\r\n"
            for framing in ["Content-Length: \(3 << 20)\r\n", "Transfer-Encoding: chunked\r\n"] {
                let fd = try connect(port: deployment.port)
                defer { close(fd) }
                #expect(send(fd, head + framing + "\r\n") > 0)
                let chunked = framing.hasPrefix("Transfer")
                // 3 MiB against a 1 MiB limit; the server may answer and close before all of it is sent.
                for _ in 0..<48 {
                    let piece = chunked ? String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n" : chunk
                    if send(fd, piece) <= 0 { break }
                }
                if chunked { _ = send(fd, "0\r\n\r\n") }
                let response = receiveAll(fd)
                #expect(response.hasPrefix("HTTP/1.1 413"), "\(framing): \(response.prefix(300))")
                #expect(response.contains("larger than the configured limit"), "\(framing): \(response.prefix(300))")
            }
            let (_, listing) = try await deployment.request("GET", "/api/v2/process?limit=10")
            #expect(String(decoding: listing, as: UTF8.self) == "[]")
        }
    }

    /// Headers beyond the bounds are refused before any handler runs.
    @Test func oversizedHeadersAreRefused() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let fd = try connect(port: deployment.port)
            defer { close(fd) }
            let huge = String(repeating: "a", count: 100 << 10)
            _ = send(fd, "GET /api/v1/server/ping HTTP/1.1\r\nHost: x\r\nX-Big: \(huge)\r\n\r\n")
            let answer = receiveAll(fd)
            #expect(answer.isEmpty || answer.hasPrefix("HTTP/1.1 4"), "\(answer.prefix(200))")
            let (status, _) = try await deployment.request("GET", "/api/v1/server/ping")
            #expect(status == 200)
        }
    }
}

private func connect(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard result == 0 else { throw TestFailure("could not connect to port \(port)") }
    return fd
}

private func send(_ fd: Int32, _ text: String) -> Int {
    Array(text.utf8).withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}

/// True once the server has closed its side (a read returns end of file or a reset).
private func peerClosed(_ fd: Int32) -> Bool {
    var pollfd = Foundation.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&pollfd, 1, 0) > 0 else { return false }
    var byte: UInt8 = 0
    return recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) <= 0
}

/// Everything the server sends until it closes or falls silent for 3 s.
private func receiveAll(_ fd: Int32) -> String {
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        var pollfd = Foundation.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollfd, 1, 3000) > 0 else { break }
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { break }
        received += buffer[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
}
