import Foundation
import TestSupport
import Testing

@testable import Events

/// Runs the `accord` binary; returns its exit status, stdout and stderr.
func accord(_ arguments: [String], bin: String, environment: [String: String] = [:]) throws -> (
    status: Int32, out: String, err: String
) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: bin + "/accord")
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["ACCORD_CONFIG"] = "/nonexistent"
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self)
    )
}

extension DeploymentTests {
    /// Every `accord` command on a data folder produced by a real run, offline and through the
    /// Gateway: the two exports agree byte for byte; verify passes, notes a torn tail, reads an
    /// event of an old version, and fails with the offset of real damage.
    @Test func theToolingReadsARealRun() async throws {
        let deployment = try Deployment()
        defer { deployment.stop() }
        try await deployment.startAll()
        let env = ["ACCORD_URL": deployment.url, "ACCORD_API_KEY": deployment.key]
        let bin = deployment.bin

        // A folder to start with the client: processes/ and a _main.json, arguments from --arg.
        let folder = deployment.data + "/project"
        try FileManager.default.createDirectory(atPath: folder + "/processes", withIntermediateDirectories: true)
        try "main:\n- log: \"Hello, ${name} ${n + 1}\"\n".write(
            toFile: folder + "/processes/main.yml", atomically: true, encoding: .utf8)
        try #"{"entryPoint": "main", "arguments": {"name": "file"}}"#.write(
            toFile: folder + "/_main.json", atomically: true, encoding: .utf8)
        let started = try accord(
            ["start", folder, "--arg", "name=cli", "--arg", "n=41", "--wait"], bin: bin, environment: env)
        #expect(started.status == 0, "\(started)")
        #expect(started.out.contains("[INFO ] Hello, cli 42"), "\(started.out)")
        #expect(started.out.contains("FINISHED"))
        let finishedID = try #require(
            started.out.split(separator: "\n").first?.split(separator: " ").last.map(String.init))

        let failing = try await deployment.startInstance(ZipBuilder.payload("main:\n- throw: \"planned\"\n"))
        _ = try await deployment.waitTerminal(failing)
        let waited = try accord(["wait", failing], bin: bin, environment: env)
        #expect(waited.status == 1 && waited.out.contains("FAILED") && waited.out.contains("planned"), "\(waited)")

        let sleeper = try await deployment.startInstance(ZipBuilder.payload("main:\n- ${sleep.ms(60000)}\n"))
        try await deployment.waitForStatus(sleeper, "RUNNING")
        let stuck = try accord(["scan", deployment.data, "--stuck", "--older-than", "0s"], bin: bin)
        #expect(stuck.out.contains("\(sleeper)  RUNNING"), "\(stuck)")
        #expect(!stuck.out.contains(failing))
        let status = try accord(["status", sleeper, "--json"], bin: bin, environment: env)
        #expect(status.out.contains(#""status":"RUNNING""#), "\(status)")
        let killed = try accord(["kill", sleeper], bin: bin, environment: env)
        #expect(killed.status == 0 && killed.out.contains("CANCELLED"), "\(killed)")

        // Offline and live exports are the same bytes.
        let offline = try accord(["log", "export", deployment.data], bin: bin)
        let live = try accord(["log", "export", "--url", deployment.url], bin: bin, environment: env)
        #expect(offline.status == 0 && live.status == 0)
        #expect(!offline.out.isEmpty && offline.out == live.out)
        let one = try accord(["log", "export", deployment.data, "--instance", failing], bin: bin)
        #expect(one.out.split(separator: "\n").allSatisfy { $0.contains(failing) })
        #expect(one.out.contains("InstanceFailed"))

        // The story, whole and as it stood at RUNNING.
        let story = try accord(["show", "--url", deployment.url, finishedID], bin: bin, environment: env)
        #expect(story.out.hasPrefix("instance \(finishedID): FINISHED"), "\(story)")
        #expect(
            story.out.contains("[INFO ] Hello, cli 42") && story.out.contains("main: log at processes/main.yml:2:3"))
        let lines = offline.out.split(separator: "\n").filter {
            $0.contains(finishedID) && $0.contains("InstanceStarted")
        }
        let runningSeq = try #require(
            lines.first.flatMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["seq"] as? Int
            })
        let then = try accord(["show", deployment.data, finishedID, "--at", "\(runningSeq)"], bin: bin)
        #expect(then.out.hasPrefix("instance \(finishedID): RUNNING (as of #\(runningSeq)"), "\(then)")
        #expect(!then.out.contains("FINISHED"))

        deployment.stopProcesses()
        let verified = try accord(["log", "verify", deployment.data], bin: bin)
        #expect(verified.status == 0 && verified.out.hasSuffix("ok\n"), "\(verified)")
        #expect(
            verified.out.contains("FINISHED 1") && verified.out.contains("FAILED 1")
                && verified.out.contains("CANCELLED 1"))

        // An event of the old version, appended as version 1 wrote it: read through its upcaster.
        let reader = try EventLogReader(directory: deployment.data + "/events")
        let segment = try #require(reader.segments.last)
        var count: UInt64 = 0
        _ = try reader.forEachRecord { _, _, _, _ in count += 1 }
        let old =
            #"{"at":1764380000100,"data":{"steps":[{"durationMicros":42,"flow":"main","location":"processes/old.yml:7","outcome":"ok","startedAt":1764380000150,"step":"log"}]},"instanceId":"\#(failing)","seq":\#(count + 1),"type":"StepsRecorded","version":1}"#
        var record: [UInt8] = []
        FileEventLog.appendRecord(body: Data(old.utf8), to: &record)
        let handle = try #require(FileHandle(forWritingAtPath: segment))
        handle.seekToEndOfFile()
        handle.write(Data(record))
        let withOld = try accord(["log", "verify", deployment.data, "--json"], bin: bin)
        #expect(withOld.status == 0 && withOld.out.contains(#""ok":true"#), "\(withOld)")
        let upcast = try accord(["log", "export", deployment.data, "--from", "\(count + 1)"], bin: bin)
        #expect(upcast.out.contains(#""file":"processes/old.yml","flow":"main","line":7"#), "\(upcast)")
        #expect(upcast.out.contains(#""version":2"#))

        // A torn tail is noted, not failed.
        handle.write(Data([0x30, 0, 0, 0, 9]))
        try handle.close()
        let torn = try accord(["log", "verify", deployment.data], bin: bin)
        #expect(torn.status == 0 && torn.out.contains("torn tail"), "\(torn)")

        // Damage before the tail: exit 1 with the segment and offset.
        let first = try #require(reader.segments.first)
        let damage = try #require(FileHandle(forUpdatingAtPath: first))
        damage.seek(toFileOffset: 40)
        damage.write(Data("X".utf8))
        try damage.close()
        let broken = try accord(["log", "verify", deployment.data], bin: bin)
        #expect(broken.status == 1, "\(broken)")
        #expect(broken.out.contains("FAILED: \(first) at byte 16: "), "\(broken)")
        #expect(broken.out.contains("intact records after it"), "\(broken)")
    }
}
