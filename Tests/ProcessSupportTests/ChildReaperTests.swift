import Foundation
import Support
import TestSupport
import Testing

@testable import ProcessSupport

/// The reaper reports the exits of the children spawned through it, and never reaps a child that
/// other code in the process spawned and waits for itself (a script step's shell, a test's
/// `Process`): that owner would see `ECHILD` and read a failed script as a successful one.
@Suite struct ChildReaperTests {
    @Test func aChildSpawnedElsewhereIsLeftToItsOwner() async throws {
        // A child spawned without the reaper, already exited (a zombie) when the reaper next waits.
        var foreign: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] =
            ["/bin/sh", "-c", "exit 3"].map { (text: String) in strdup(text) } + [nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&foreign, "/bin/sh", nil, nil, argv, environ) == 0)
        var info = siginfo_t()
        #expect(waitid(P_PID, id_t(foreign), &info, WEXITED | WNOWAIT) == 0)

        let own = try startWatched("exit 5")
        defer { [own.stdin, own.stdout, own.stderr].forEach { close($0) } }
        let ownStatus = try #require(await exitStatus(of: own.pid), "the reaper never reported its own child")
        #expect((ownStatus >> 8) & 0xFF == 5)

        var status: Int32 = 0
        #expect(waitpid(foreign, &status, 0) == foreign, "the reaper took the other child: \(errno)")
        #expect((status >> 8) & 0xFF == 3)
    }

    @Test func manyChildrenAreEachReportedOnce() async throws {
        let statuses = try await withThrowingTaskGroup(of: (Int32, Int32).self) { group in
            for code in Int32(0)..<40 {
                let child = try startWatched("exit \(code)")
                [child.stdin, child.stdout, child.stderr].forEach { close($0) }
                group.addTask {
                    let status = try #require(await exitStatus(of: child.pid))
                    return (code, (status >> 8) & 0xFF)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.count == 40)
        #expect(statuses.allSatisfy { $0.0 == $0.1 }, "\(statuses.filter { $0.0 != $0.1 })")
    }

    /// Starts `sh -c script` the way the executor starts a runner: watched by the reaper.
    private func startWatched(_ script: String) throws -> Spawn.Child {
        try Spawn.start(
            ["/bin/sh", "-c", script], stdin: .pipe, output: .separate, ownProcessGroup: true,
            start: ChildReaper.shared.spawning)
    }

    /// The wait status the reaper reports for `pid`, or nil if it reports none within `limit`.
    private func exitStatus(of pid: pid_t, within limit: Duration = Liveness.deadline) async -> Int32? {
        let reported = Promise<Int32>()
        ChildReaper.shared.onExit(pid) { reported.fulfill(.success($0)) }
        return await withTaskGroup(of: Int32?.self) { group in
            group.addTask { try? await reported.value() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
