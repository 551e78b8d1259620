import Certificates
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Transport

/// `tls+tcp://` links with certificates on both sides: a peer with a certificate the deployment's
/// CA signed gets through; one signed by another CA, or with none, gets no connection at all, and
/// its dialer counts the refusal.
@Suite struct TLSTests {
    /// Certificates of one deployment (scheduler, executor) and of another (an intruder's).
    private func certificates() throws -> (ours: String, theirs: String) {
        let root = temporaryDirectory()
        _ = try DeploymentCertificates.initialize(directory: root + "/ours", components: ["scheduler", "executor"])
        _ = try DeploymentCertificates.initialize(directory: root + "/theirs", components: ["executor"])
        return (root + "/ours", root + "/theirs")
    }

    private func url() -> String { "tls+tcp://127.0.0.1:\(Deployment.freePort())" }

    @Test func peersOfOneDeploymentTalkOverMutualTLS() async throws {
        let (ours, _) = try certificates()
        defer { cleanUp(URL(fileURLWithPath: ours).deletingLastPathComponent().path) }
        let address = url()
        let server = try NNGSocket(.rep, tls: TLSIdentity(directory: ours, component: "scheduler"))
        try server.listen(address)
        let serving = Task { await server.serve(workers: 2) { $0 + [0xFF] } }
        let client = try NNGSocket(.req, tls: TLSIdentity(directory: ours, component: "executor"))
        try client.dial(address)
        #expect(try await client.request([7], timeout: Liveness.deadline) == [7, 0xFF])
        #expect(client.dialerAuthFailures() == 0, "\(client.transportDiagnosis())\n\(server.transportDiagnosis())")
        client.close()
        server.close()
        await serving.value
    }

    @Test func aPeerWithoutTheDeploymentsCertificateGetsNothing() async throws {
        let (ours, theirs) = try certificates()
        defer { cleanUp(URL(fileURLWithPath: ours).deletingLastPathComponent().path) }
        let address = url()
        let server = try NNGSocket(.rep, tls: TLSIdentity(directory: ours, component: "scheduler"))
        try server.listen(address)
        let served = Counter()
        let serving = Task {
            await server.serve(workers: 2) { request in
                served.add()
                return request
            }
        }
        // Signed by another CA: refused in the handshake, and it says so in its counts.
        let intruder = try NNGSocket(.req, tls: TLSIdentity(directory: theirs, component: "executor"))
        try intruder.dial(address)
        await #expect(throws: NNGError.self) { _ = try await intruder.request([1], timeout: .milliseconds(1500)) }
        #expect(intruder.dialerAuthFailures() > 0)
        // Plain TCP to a TLS port: no handshake, nothing served.
        let plain = try NNGSocket(.req)
        try plain.dial(address.replacingOccurrences(of: "tls+tcp://", with: "tcp://"))
        await #expect(throws: NNGError.self) { _ = try await plain.request([2], timeout: .milliseconds(500)) }
        #expect(served.value == 0)
        // And the listener's side says so (the watchdog reports it from nng's counts, once a second).
        let reported = await eventually(within: .seconds(10)) {
            EndpointWatchdog.recent.withLock { recent in
                recent.contains { if case .tlsRefused(address, _) = $0.event { true } else { false } }
            }
        }
        #expect(reported, "\(server.transportDiagnosis())")
        intruder.close()
        plain.close()
        server.close()
        await serving.value
    }

    @Test func aTLSAddressWithoutCertificatesIsRefusedAtOnce() throws {
        let socket = try NNGSocket(.rep)
        defer { socket.close() }
        #expect(throws: NNGError.self) { try socket.listen(url()) }
        #expect(throws: NNGError.self) {
            try NNGSocket(.req, tls: TLSIdentity(directory: "/nonexistent", component: "x"))
        }
    }
}

private final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// `--tls` and `--insecure-transport`: which links a component may use.
@Suite struct TransportOptionsTests {
    @Test func tcpBecomesTLSOrIsRefusedUnlessPlaintextIsAskedFor() throws {
        let urls = ["ipc:///run/a.ipc", "tcp://10.0.0.2:7000"]
        #expect(
            try TransportOptions.resolve(urls, tls: true, insecure: false) == [
                "ipc:///run/a.ipc", "tls+tcp://10.0.0.2:7000",
            ])
        #expect(try TransportOptions.resolve(urls, tls: false, insecure: true) == urls)
        #expect(throws: (any Error).self) { try TransportOptions.resolve(urls, tls: false, insecure: false) }
        #expect(throws: (any Error).self) {
            try TransportOptions.resolve(["tls+tcp://h:1"], tls: false, insecure: true)
        }
        #expect(try TransportOptions.resolve(["ipc:///x"], tls: false, insecure: false) == ["ipc:///x"])
    }

    /// Every Scheduler's address, comma-separated: each is resolved, none may be empty or plaintext.
    @Test func aListOfSchedulersIsResolvedAddressByAddress() throws {
        #expect(
            try TransportOptions.resolve(["tcp://a:7000,tcp://b:7000"], tls: true, insecure: false) == [
                "tls+tcp://a:7000,tls+tcp://b:7000"
            ])
        #expect(throws: (any Error).self) {
            try TransportOptions.resolve(["tcp://a:7000,"], tls: true, insecure: false)
        }
        #expect(throws: (any Error).self) {
            try TransportOptions.resolve(["ipc:///x,tcp://b:7000"], tls: false, insecure: false)
        }
    }
}
