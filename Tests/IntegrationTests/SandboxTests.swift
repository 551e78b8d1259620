import Foundation
import TestSupport
import Testing

/// Hostile flows, each trying one escape from its sandbox, on a real deployment.
///
/// Every destructive command is guarded inside the flow itself: it runs only where the script is
/// not root and is in a PID namespace of its own (its PID 1 is bubblewrap). Without the sandbox the
/// guard stops the script with "UNGUARDED" (and the test fails), so a missing defence can never
/// harm the machine running the tests.
@Suite(.serialized) struct SandboxTests {
    /// The guard every destructive step of these flows runs behind.
    static let guardLine = #"[ "$(id -u)" != 0 ] && [ "$(cat /proc/1/comm)" = bwrap ] || { echo UNGUARDED; exit 97; }"#

    /// Runs `body` against a started deployment whose executor has `arguments`; as anyone but root
    /// (the executor then runs --unsandboxed) it says so and runs nothing.
    private func withSandboxedDeployment(
        executorArguments arguments: [String] = [], _ body: (Deployment) async throws -> Void
    ) async throws {
        guard sandboxed() else { return }
        try await withDeployment { deployment in
            deployment.executorArguments = arguments
            try await deployment.startAll()
            try await body(deployment)
        }
    }

    private func sandboxed() -> Bool {
        guard getuid() == 0 else {
            print("note: not root, so the executor runs --unsandboxed; the sandbox tests do not apply")
            return false
        }
        return true
    }

    private func script(_ body: String) -> [UInt8] {
        let indented = body.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }
        return ZipBuilder.payload("main:\n- script: sh\n  body: |\n" + indented.joined(separator: "\n") + "\n")
    }

    private func run(_ deployment: Deployment, _ body: String) async throws -> (status: String, log: String) {
        let id = try await deployment.startInstance(script(body))
        let status = try await deployment.waitTerminal(id)["status"] as? String ?? "?"
        return (status, try await deployment.log(id))
    }

    private func executorLog(_ deployment: Deployment) -> String {
        (try? String(contentsOfFile: deployment.logPath("executor"), encoding: .utf8)) ?? ""
    }

    /// The deployment still answers, starts and finishes instances, and its data folder is whole.
    private func expectUnharmed(_ deployment: Deployment) async throws {
        for name in ["events", "payloads", "run", "keys"] {
            #expect(FileManager.default.fileExists(atPath: deployment.data + "/" + name), "\(name) is gone")
        }
        for component in ["gateway", "scheduler", "executor"] {
            if let pid = deployment.pid(component) { #expect(kill(pid, 0) == 0, "the \(component) is gone") }
        }
        let after = try await deployment.startInstance(ZipBuilder.payload("main:\n- log: still here\n"))
        #expect(try await deployment.waitTerminal(after)["status"] as? String == "FINISHED")
    }

    @Test func aFlowSeesNothingOfTheServer() async throws {
        try await withSandboxedDeployment { deployment in
            let gateway = deployment.pid("gateway") ?? 1
            let data = deployment.data
            let (status, log) = try await run(
                deployment,
                """
                echo "uid=$(id -u)"
                cat \(data)/keys >/dev/null 2>&1 && echo SAW-KEYS
                ls \(data)/payloads >/dev/null 2>&1 && echo SAW-PAYLOADS
                ls \(data)/events >/dev/null 2>&1 && echo SAW-EVENTS
                ls \(data)/run >/dev/null 2>&1 && echo SAW-SOCKETS
                cat /proc/\(gateway)/environ >/dev/null 2>&1 && echo SAW-ENVIRON
                kill -0 \(gateway) 2>/dev/null && echo CAN-SIGNAL
                echo "processes=$(ls /proc | grep -c '^[0-9]')"
                env | grep -q '^ACCORD_[A-Z]*=' && env | grep '^ACCORD_' | grep -v '^ACCORD_OUT=' && echo SAW-ACCORD-ENV
                env | grep -q '\(deployment.key)' && echo SAW-KEY
                echo written > /tmp/own && cat /tmp/own
                touch /usr/evil 2>/dev/null && echo WROTE-USR
                touch /etc/evil 2>/dev/null && echo WROTE-ETC
                echo end
                """)
            #expect(status == "FINISHED", "\(log)")
            #expect(log.contains("uid=65534"), "\(log)")
            for leak in [
                "SAW-KEYS", "SAW-PAYLOADS", "SAW-EVENTS", "SAW-SOCKETS", "SAW-ENVIRON", "CAN-SIGNAL", "SAW-ACCORD-ENV",
                "SAW-KEY", "WROTE-USR", "WROTE-ETC",
            ] {
                #expect(!log.contains(leak), "\(leak): \(log)")
            }
            // bubblewrap, the runner, the shell, and the shell's own commands: nothing of the host.
            let processes = log.split(separator: "\n").first { $0.contains("processes=") }.flatMap {
                Int($0.split(separator: "=").last ?? "")
            }
            #expect((processes ?? 99) < 10, "\(log)")
            #expect(log.contains("written"), "its own /tmp is writable: \(log)")
            try await expectUnharmed(deployment)
        }
    }

    @Test func killingEverythingInOneInstanceLeavesTheOthersRunning() async throws {
        try await withSandboxedDeployment { deployment in
            let survivor = try await deployment.startInstance(script("sleep 3\necho survived"))
            try await deployment.waitForStatus(survivor, "RUNNING")
            let (_, log) = try await run(deployment, "\(Self.guardLine)\nkill -9 -1\necho after-kill")
            #expect(!log.contains("UNGUARDED"), "\(log)")
            #expect(try await deployment.waitTerminal(survivor)["status"] as? String == "FINISHED")
            #expect(try await deployment.log(survivor).contains("survived"))
            try await expectUnharmed(deployment)
        }
    }

    @Test func removingTheDataFolderRemovesNothing() async throws {
        try await withSandboxedDeployment { deployment in
            let before = try await deployment.startInstance(ZipBuilder.payload("main:\n- log: before\n"))
            #expect(try await deployment.waitTerminal(before)["status"] as? String == "FINISHED")
            let (_, log) = try await run(
                deployment,
                "\(Self.guardLine)\nrm -rf \(deployment.data) \"$HOME/..\" /tmp/* 2>&1 | tail -3\necho removed")
            #expect(!log.contains("UNGUARDED"), "\(log)")
            #expect(try await deployment.status(before)["status"] as? String == "FINISHED")
            try await expectUnharmed(deployment)
        }
    }

    @Test func anotherInstancesFilesAndProcessesAreOutOfReach() async throws {
        try await withSandboxedDeployment { deployment in
            let victim = try await deployment.startInstance(
                script("echo private > secret.txt\necho \"home=$HOME\"\nsleep 3\ncat secret.txt"))
            // Its home, once it has said where that is (it then sleeps for 3 s, still running).
            var victimLog = ""
            let said = try await eventually {
                victimLog = try await deployment.log(victim)
                return victimLog.contains("home=")
            }
            #expect(said, "\(victimLog)")
            let homeLine = try #require(victimLog.split(separator: "\n").first { $0.contains("home=") }, "\(victimLog)")
            let home = String(homeLine[homeLine.range(of: "home=")!.upperBound...])
            let (_, log) = try await run(
                deployment,
                """
                \(Self.guardLine)
                cat \(home)/*/work/secret.txt 2>/dev/null && echo READ-OTHER
                ls "$HOME/.." | grep -v "$(basename "$HOME")" && echo SAW-OTHER-HOMES
                pkill -9 sleep; echo "pkill=$?"
                """)
            #expect(!log.contains("UNGUARDED"), "\(log)")
            #expect(!log.contains("READ-OTHER"), "\(log)")
            #expect(!log.contains("SAW-OTHER-HOMES"), "\(log)")
            #expect(try await deployment.waitTerminal(victim)["status"] as? String == "FINISHED")
            #expect(try await deployment.log(victim).contains("private"))
        }
    }

    @Test func withoutNetworkAnInstanceReachesNothing() async throws {
        try await withSandboxedDeployment(executorArguments: ["--no-network"]) { deployment in
            let probe = """
                python3 -c 'import socket; socket.create_connection(("127.0.0.1", \(deployment.port)), 2); print("CONNECTED")' 2>&1 | tail -1
                """
            let (_, isolated) = try await run(deployment, probe)
            #expect(!isolated.contains("CONNECTED"), "\(isolated)")
            await deployment.kill("executor")
            deployment.executorArguments = []
            try deployment.start("executor")
            let (_, networked) = try await run(deployment, probe)
            #expect(networked.contains("CONNECTED"), "the network stays on by default: \(networked)")
        }
    }

    @Test func anExecutorThatCannotSandboxRefusesToStart() async throws {
        guard sandboxed() else { return }
        try await withDeployment { deployment in
            deployment.executorArguments = ["--bwrap", "/bin/false"]
            try deployment.start("executor")
            let refused = await eventually { executorLog(deployment).contains("the sandbox cannot be set up here") }
            #expect(refused, "\(deployment.logTails())")
            #expect(await eventually { deployment.pid("executor").map { kill($0, 0) != 0 } ?? true })

            await deployment.kill("executor")
            deployment.executorArguments = ["--unsandboxed"]
            try deployment.start("executor")
            let warned = await eventually { executorLog(deployment).contains("INSTANCES ARE NOT SANDBOXED") }
            #expect(warned, "\(deployment.logTails())")
        }
    }
}
