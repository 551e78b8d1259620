import EventLog
import Foundation
import Model
import TestSupport
import Testing

/// Runs the `accord` binary; returns its exit status, stdout and stderr.
func accord(_ arguments: [String], bin: String, environment: [String: String] = [:]) async throws -> (
    status: Int32, out: String, err: String
) {
    var env = ProcessInfo.processInfo.environment
    env["ACCORD_CONFIG"] = "/nonexistent"
    for (key, value) in environment { env[key] = value }
    return try await Child.run(bin + "/accord", arguments, environment: env)
}

extension DeploymentTests {
    /// Every `accord` command on a data folder produced by a real run, offline and through the
    /// Gateway: the two exports agree byte for byte; verify passes, notes a torn tail, reads an
    /// event of an old version, and fails with the offset of real damage.
    @Test func theToolingReadsARealRun() async throws {
        try await withDeployment { deployment in
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
            let started = try await accord(
                ["start", folder, "--arg", "name=cli", "--arg", "n=41", "--wait"], bin: bin, environment: env)
            #expect(started.status == 0, "\(started)")
            #expect(started.out.contains("[INFO ] Hello, cli 42"), "\(started.out)")
            #expect(started.out.contains("FINISHED"))
            let finishedID = try #require(
                started.out.split(separator: "\n").first?.split(separator: " ").last.map(String.init))

            let failing = try await deployment.startInstance(ZipBuilder.payload("main:\n- throw: \"planned\"\n"))
            _ = try await deployment.waitTerminal(failing)
            let waited = try await accord(["wait", failing], bin: bin, environment: env)
            #expect(waited.status == 1 && waited.out.contains("FAILED") && waited.out.contains("planned"), "\(waited)")

            let sleeper = try await deployment.startInstance(ZipBuilder.payload("main:\n- ${sleep.ms(60000)}\n"))
            try await deployment.waitForStatus(sleeper, "RUNNING")
            let stuck = try await accord(["scan", deployment.data, "--stuck", "--older-than", "0s"], bin: bin)
            #expect(stuck.out.contains("\(sleeper)  RUNNING"), "\(stuck)")
            #expect(!stuck.out.contains(failing))
            let status = try await accord(["status", sleeper, "--json"], bin: bin, environment: env)
            #expect(status.out.contains(#""status":"RUNNING""#), "\(status)")
            let killed = try await accord(["kill", sleeper], bin: bin, environment: env)
            #expect(killed.status == 0 && killed.out.contains("CANCELLED"), "\(killed)")

            // Offline and live exports are the same bytes.
            let offline = try await accord(["log", "export", deployment.data], bin: bin)
            let live = try await accord(["log", "export", "--url", deployment.url], bin: bin, environment: env)
            #expect(offline.status == 0 && live.status == 0)
            #expect(!offline.out.isEmpty && offline.out == live.out)
            let one = try await accord(["log", "export", deployment.data, "--instance", failing], bin: bin)
            #expect(one.out.split(separator: "\n").allSatisfy { $0.contains(failing) })
            #expect(one.out.contains("InstanceFailed"))

            // The story, whole and as it stood at RUNNING.
            let story = try await accord(["show", "--url", deployment.url, finishedID], bin: bin, environment: env)
            #expect(story.out.hasPrefix("instance \(finishedID): FINISHED"), "\(story)")
            #expect(
                story.out.contains("[INFO ] Hello, cli 42") && story.out.contains("main: log at processes/main.yml:2:3")
            )
            let lines = offline.out.split(separator: "\n").filter {
                $0.contains(finishedID) && $0.contains("InstanceStarted")
            }
            let runningSeq = try #require(
                lines.first.flatMap { line in
                    (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["seq"] as? Int
                })
            let then = try await accord(["show", deployment.data, finishedID, "--at", "\(runningSeq)"], bin: bin)
            #expect(then.out.hasPrefix("instance \(finishedID): RUNNING (as of #\(runningSeq)"), "\(then)")
            #expect(!then.out.contains("FINISHED"))

            await deployment.stopProcesses()
            let verified = try await accord(["log", "verify", deployment.data], bin: bin)
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
            RecordFormat.append(body: Data(old.utf8), to: &record)
            let handle = try #require(FileHandle(forWritingAtPath: segment))
            handle.seekToEndOfFile()
            handle.write(Data(record))
            let withOld = try await accord(["log", "verify", deployment.data, "--json"], bin: bin)
            #expect(withOld.status == 0 && withOld.out.contains(#""ok":true"#), "\(withOld)")
            let upcast = try await accord(["log", "export", deployment.data, "--from", "\(count + 1)"], bin: bin)
            #expect(upcast.out.contains(#""file":"processes/old.yml","flow":"main","line":7"#), "\(upcast)")
            #expect(upcast.out.contains(#""version":2"#))

            // A torn tail is noted, not failed.
            handle.write(Data([0x30, 0, 0, 0, 9]))
            try handle.close()
            let torn = try await accord(["log", "verify", deployment.data], bin: bin)
            #expect(torn.status == 0 && torn.out.contains("torn tail"), "\(torn)")
            // Every reader takes the log up to its torn tail, old-version event included.
            let tornShow = try await accord(["show", deployment.data, failing], bin: bin)
            #expect(
                tornShow.status == 0 && tornShow.out.contains("main: log at processes/old.yml:7, 0.042 ms, ok"),
                "\(tornShow)")
            let tornScan = try await accord(["scan", deployment.data, "--stuck", "--older-than", "0s"], bin: bin)
            #expect(tornScan.status == 0 && tornScan.out.contains("0 instance(s)"), "\(tornScan)")
            let tornRebuild = try await accord(["projections", "rebuild", deployment.data], bin: bin)
            #expect(tornRebuild.status == 0 && tornRebuild.out.contains("no differences"), "\(tornRebuild)")
            let tornImport = try await accord(["log", "import", "-", deployment.data + "/imported"], bin: bin)
            #expect(tornImport.status != 0)
            let tornExport = deployment.data + "/torn.jsonl"
            try await accord(["log", "export", deployment.data], bin: bin).out.write(
                toFile: tornExport, atomically: true, encoding: .utf8)
            let reimported = try await accord(["log", "import", tornExport, deployment.data + "/imported"], bin: bin)
            #expect(reimported.status == 0, "\(reimported)")
            #expect(try await accord(["log", "verify", deployment.data + "/imported"], bin: bin).out.hasSuffix("ok\n"))

            // Damage before the tail: exit 1 with the segment and offset.
            let first = try #require(reader.segments.first)
            let damage = try #require(FileHandle(forUpdatingAtPath: first))
            damage.seek(toFileOffset: 40)
            damage.write(Data("X".utf8))
            try damage.close()
            let broken = try await accord(["log", "verify", deployment.data], bin: bin)
            #expect(broken.status == 1, "\(broken)")
            #expect(broken.out.contains("FAILED: \(first) at byte 16: "), "\(broken)")
            #expect(broken.out.contains("intact records after it"), "\(broken)")
        }
    }
}

extension DeploymentTests {
    /// After a busy run, the read models rebuilt from the log alone are byte for byte what the
    /// Gateway serves (every status, history, log and the listing), and what the Scheduler's
    /// snapshot holds; an event the Gateway never saw shows up as a difference.
    @Test func rebuiltReadModelsMatchTheLiveOnes() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let flows = [
                "main:\n- log: \"one\\ntwo\"\n- set: {answer: 42}\n",
                "main:\n- throw: \"planned\"\n",
                "main:\n- ${sleep.ms(20000)}\n",
                "main:\n- script: sh\n  body: |\n    echo out; echo err >&2; sleep 0.2\n",
            ]
            var ids: [String] = []
            try await withThrowingTaskGroup(of: String.self) { group in
                for n in 0..<40 {
                    group.addTask {
                        let main =
                            #"{"entryPoint": "main", "out": ["answer"], "tags": ["t\#(n % 3)"]\#(n % 4 == 2 ? #", "timeout": 1"# : "")}"#
                        return try await deployment.startInstance(ZipBuilder.payload(flows[n % 4], main: main))
                    }
                }
                for try await id in group { ids.append(id) }
            }
            for id in ids.prefix(10) { _ = try await deployment.request("DELETE", "/api/v1/process/\(id)") }
            for id in ids { _ = try await deployment.waitTerminal(id) }

            let env = ["ACCORD_API_KEY": deployment.key]
            let live = try await accord(
                ["projections", "rebuild", deployment.data, "--url", deployment.url], bin: deployment.bin,
                environment: env)
            #expect(live.status == 0, "\(live)")
            #expect(live.out.contains("compared 40 instances") && live.out.contains("no differences"), "\(live)")

            await deployment.kill("scheduler", signal: SIGTERM)
            let withSnapshot = try await accord(["projections", "rebuild", deployment.data], bin: deployment.bin)
            #expect(
                withSnapshot.status == 0
                    && withSnapshot.out.contains("compared 40 statuses with the Scheduler's snapshot"),
                "\(withSnapshot)\n\(deployment.logTails())")

            // A log line the Gateway never saw (written behind the stopped Scheduler's back).
            let reader = try EventLogReader(directory: deployment.data + "/events")
            var count: UInt64 = 0
            _ = try reader.forEachRecord { _, _, _, _ in count += 1 }
            let extra = EventEnvelope(
                seq: count + 1, instanceID: try #require(InstanceID(ids[0])), at: .now(),
                event: .logAppended(LogAppended(lines: [LogLine(at: .now(), level: .info, text: "unseen")])))
            var record: [UInt8] = []
            RecordFormat.append(body: try EventCodec.encode(extra), to: &record)
            let lastSegment = try #require(reader.segments.last)
            let handle = try #require(FileHandle(forWritingAtPath: lastSegment))
            handle.seekToEndOfFile()
            handle.write(Data(record))
            try handle.close()
            let differs = try await accord(
                ["projections", "rebuild", deployment.data, "--url", deployment.url], bin: deployment.bin,
                environment: env)
            #expect(differs.status == 1, "\(differs)")
            #expect(
                differs.out.contains("DIFFERS: log of \(ids[0])") && differs.out.contains("1 difference(s)"),
                "\(differs)")
        }
    }
}

extension DeploymentTests {
    /// An export becomes a new data folder (numbering kept when it starts the log, renumbered when
    /// added after other events, each event marked with where it came from); a clash or a running
    /// Scheduler refuses the import and writes nothing.
    @Test func importBuildsADataFolderFromAnExport() async throws {
        try await withDeployment { deployment in
            try await deployment.startAll()
            let first = try await deployment.startInstance(helloZip("first"))
            let second = try await deployment.startInstance(helloZip("second"))
            _ = try await deployment.waitTerminal(first)
            _ = try await deployment.waitTerminal(second)
            let bin = deployment.bin
            let whole = deployment.data + "/whole.jsonl"
            let one = deployment.data + "/one.jsonl"
            try await accord(["log", "export", deployment.data], bin: bin).out.write(
                toFile: whole, atomically: true, encoding: .utf8)
            try await accord(["log", "export", deployment.data, "--instance", second], bin: bin).out.write(
                toFile: one, atomically: true, encoding: .utf8)

            // Into the running deployment's own folder: its Scheduler holds the log, nothing is written.
            let stranger = EventEnvelope(
                seq: 1, instanceID: InstanceID(), at: .now(),
                event: .instanceCancelled(InstanceCancelled(reason: "synthetic")))
            let strangerFile = deployment.data + "/stranger.jsonl"
            try (String(decoding: try EventCodec.encode(stranger), as: UTF8.self) + "\n").write(
                toFile: strangerFile, atomically: true, encoding: .utf8)
            let locked = try await accord(["log", "import", strangerFile, deployment.data], bin: bin)
            #expect(locked.status != 0 && locked.err.contains("in use by another process"), "\(locked)")

            let copy = deployment.data + "/copy"
            let imported = try await accord(["log", "import", whole, copy], bin: bin)
            #expect(imported.status == 0 && !imported.out.contains("renumbered"), "\(imported)")
            #expect(try await accord(["log", "verify", copy], bin: bin).status == 0)
            let original = try await accord(["show", deployment.data, second], bin: bin).out
            let copied = try await accord(["show", copy, second], bin: bin).out
            #expect(original == copied && copied.contains("Hello, second"), "\(copied)")

            let again = try await accord(["log", "import", one, copy], bin: bin)
            #expect(
                again.status != 0 && again.err.contains("already exist") && again.err.contains("nothing was imported"))

            // Where the numbers cannot stay (the second instance's events never start at #1, and they
            // interleave with the first's): renumbered from #1, marked, and still a sound log; then the
            // first instance added after them.
            let other = deployment.data + "/other"
            let renumbered = try await accord(["log", "import", one, other], bin: bin)
            #expect(renumbered.status == 0 && renumbered.out.contains("renumbered"), "\(renumbered)")
            let firstOnly = deployment.data + "/first.jsonl"
            try await accord(["log", "export", deployment.data, "--instance", first], bin: bin).out.write(
                toFile: firstOnly, atomically: true, encoding: .utf8)
            #expect(try await accord(["log", "import", firstOnly, other], bin: bin).status == 0)
            #expect(try await accord(["log", "verify", other], bin: bin).status == 0)
            let exported = try await accord(["log", "export", other, "--instance", second], bin: bin).out
            let seqs = exported.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["seq"] as? Int
            }
            #expect(seqs == Array(1...seqs.count), "\(seqs)")
            #expect(exported.split(separator: "\n").allSatisfy { $0.contains(#""importedFrom":"#) })

        }
    }
}
