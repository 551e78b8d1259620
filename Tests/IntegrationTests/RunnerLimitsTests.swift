import Foundation
import TestSupport
import Testing

extension DeploymentTests {
    /// Whether this executor enforces per-instance limits with control groups; the tests that
    /// need them say so and stop where the system does not allow them (not root, no cgroups).
    private func controlGroupsEnforced(_ deployment: Deployment) -> Bool {
        let log = (try? String(contentsOfFile: deployment.logPath("executor"), encoding: .utf8)) ?? ""
        if log.contains("per-instance limits enforced with control groups") { return true }
        print("note: no control groups here; the per-instance process and memory tests do not apply")
        return false
    }

    /// A script that tries to start 300 processes gets no more than the instance's limit; another
    /// instance runs meanwhile; when the first one times out, all of its processes are gone.
    @Test func aForkBombStaysInsideItsInstance() async throws {
        try await withDeployment { deployment in
            deployment.executorArguments = ["--max-processes", "40"]
            try await deployment.startAll()
            guard controlGroupsEnforced(deployment) else { return }
            let bomb = try await deployment.startInstance(
                ZipBuilder.payload(
                    "main:\n- script: sh\n  body: |\n    i=0\n    while [ $i -lt 300 ]; do sleep 61 & i=$((i + 1)); done\n    wait\n",
                    main: #"{"entryPoint": "main", "timeout": 4}"#))
            try await deployment.waitForStatus(bomb, "RUNNING")
            try await Task.sleep(for: .seconds(2))
            let running = HostProcesses.pids(commandLine: "sleep 61").count
            #expect(running > 0 && running <= 40, "\(running) processes of the instance")
            let other = try await deployment.startInstance(helloZip())
            #expect(try await deployment.waitTerminal(other)["status"] as? String == "FINISHED")
            #expect(try await deployment.waitTerminal(bomb)["status"] as? String == "TIMED_OUT")
            try await Task.sleep(for: .seconds(1))
            #expect(HostProcesses.pids(commandLine: "sleep 61").count == 0)
        }
    }

    /// A process that leaves the instance's process group (`setsid`) still ends with the instance.
    @Test func aDaemonThatLeftTheProcessGroupDiesWithTheInstance() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            guard controlGroupsEnforced(deployment) else { return }
            let id = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- script: sh\n  body: setsid sleep 62 > /dev/null 2>&1 < /dev/null &\n"))
            #expect(try await deployment.waitTerminal(id)["status"] as? String == "FINISHED")
            try await Task.sleep(for: .seconds(1))
            #expect(HostProcesses.pids(commandLine: "sleep 62").count == 0)
        }
    }

    /// Memory beyond the instance's limit ends the script that took it; open files are limited.
    @Test func memoryAndOpenFilesAreLimited() async throws {
        try await withDeployment { deployment in
            deployment.executorArguments = ["--max-memory-bytes", "\(256 << 20)", "--max-open-files", "64"]
            try await deployment.startAll()
            let files = try await deployment.startInstance(
                ZipBuilder.payload("main:\n- script: sh\n  body: ulimit -n\n"))
            #expect(try await deployment.waitTerminal(files)["status"] as? String == "FINISHED")
            #expect(try await deployment.log(files).contains("[INFO ] 64"))
            guard controlGroupsEnforced(deployment) else { return }
            let hog = try await deployment.startInstance(
                ZipBuilder.payload(
                    "main:\n- script: python3\n  body: |\n    chunks = [bytearray(64 << 20) for _ in range(16)]\n    print('allocated', len(chunks))\n"
                ))
            let final = try await deployment.waitTerminal(hog)
            #expect(final["status"] as? String == "FAILED", "\(final)")
            #expect(!(try await deployment.log(hog)).contains("allocated 16"))
        }
    }
}
