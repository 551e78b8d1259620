import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// The deployment over `tcp://` links made mutual TLS by `--tls` with `accord certs init`'s
    /// certificates: an instance runs end to end; an executor whose certificate another CA signed
    /// is refused and says why in its log; plaintext TCP is refused without --insecure-transport.
    @Test func linksBetweenHostsAreMutualTLS() async throws {
        try await withDeployment { deployment in
            let certs = deployment.data + "/certs"
            let made = try await accord(["certs", "init", certs], bin: deployment.bin)
            #expect(made.status == 0 && made.out.contains("executor-key.pem"), "\(made.err)")
            let again = try await accord(["certs", "init", certs], bin: deployment.bin)
            #expect(again.status != 0 && again.err.contains("exists already"), "a second CA is refused: \(again.err)")
            let ports = (0..<4).map { _ in Deployment.freePort() }
            let commands = "tcp://127.0.0.1:\(ports[0])"
            let events = "tcp://127.0.0.1:\(ports[1])"
            let executors = "tcp://127.0.0.1:\(ports[2])"
            deployment.schedulerArguments = [
                "--commands", commands, "--events", events, "--executors", executors, "--tls", certs,
            ]
            deployment.gatewayArguments += ["--scheduler", commands, "--events", events, "--tls", certs]
            deployment.executorArguments = [
                "--scheduler", executors, "--listen", "tcp://127.0.0.1:\(ports[3])", "--tls", certs,
            ]
            try await deployment.startAll()
            let id = try await deployment.startInstance(helloZip())
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "FINISHED")
            let schedulerLog = try String(contentsOfFile: deployment.logPath("scheduler"), encoding: .utf8)
            #expect(schedulerLog.contains("links between hosts use mutual TLS"), "\(schedulerLog.suffix(2000))")

            // An executor with a certificate of another deployment's CA.
            let theirs = deployment.data + "/their-certs"
            #expect(try await accord(["certs", "init", theirs], bin: deployment.bin).status == 0)
            let intruderLog = deployment.data + "/logs/intruder.log"
            let intruder = try Child(
                deployment.bin + "/accord-executor",
                [
                    "serve", "--data", deployment.data, "--name", "intruder", "--scheduler", executors, "--listen",
                    "tcp://127.0.0.1:\(Deployment.freePort())", "--tls", theirs,
                ] + (getuid() == 0 ? [] : ["--unsandboxed"]), output: intruderLog)
            defer { intruder.signal(SIGKILL) }
            let refused = await eventually(within: .seconds(20)) {
                let text = (try? String(contentsOfFile: intruderLog, encoding: .utf8)) ?? ""
                return text.contains("refused the TLS handshake")
            }
            #expect(refused, "\((try? String(contentsOfFile: intruderLog, encoding: .utf8)) ?? "")")
            let (_, metrics) = try await deployment.request("GET", "/metrics")
            #expect(
                String(decoding: metrics, as: UTF8.self).contains("accord_executors_count 1"),
                "only the deployment's own executor is registered")
            #expect(!schedulerLogNow(deployment).contains("intruder"), "the intruder never registered")
            let told = await eventually(within: .seconds(10)) {
                schedulerLogNow(deployment).contains(
                    "refused connections without a certificate of this deployment's CA")
            }
            #expect(told, "the scheduler says it refused someone: \(schedulerLogNow(deployment).suffix(1500))")

            // An executor the Scheduler never answered stops at once when told to, not by its deadline.
            intruder.signal(SIGTERM)
            #expect(await intruder.exit(within: Liveness.deadline) != nil, "the intruder did not stop")
            let stopped = (try? String(contentsOfFile: intruderLog, encoding: .utf8)) ?? ""
            #expect(
                stopped.contains("executor stopped") && !stopped.contains("graceful stop took over"),
                "\(stopped.suffix(800))")

            // Plaintext TCP only when asked for by name.
            let plain = try await Child.run(
                deployment.bin + "/accord-scheduler",
                ["--data", deployment.data + "/plain", "--commands", "tcp://127.0.0.1:\(Deployment.freePort())"])
            #expect(plain.status != 0 && (plain.out + plain.err).contains("--insecure-transport"), "\(plain)")
        }
    }

    private func schedulerLogNow(_ deployment: Deployment) -> String {
        (try? String(contentsOfFile: deployment.logPath("scheduler"), encoding: .utf8)) ?? ""
    }
}
