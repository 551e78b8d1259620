import Foundation
import Model
import ProcessSupport

/// `- script:` steps: runs a shell, bash or python3 body (or a script file from the payload) in the
/// working folder. Output goes to the log line by line; `KEY=value` lines written to `$ACCORD_OUT`
/// set variables. The script is spawned inside the runner's process group (Foundation's `Process`
/// would give it a group of its own), so a stop kills it and everything it started.
package enum ScriptRunner {
    package static func run(language: String, body: String?, path: String?, in interpreter: Interpreter) throws {
        var command: [String]
        switch language {
        case "sh": command = ["/bin/sh"]
        case "bash": command = ["/bin/bash"]
        case "python3", "python": command = ["/usr/bin/env", "python3"]
        default: throw FlowFailure(message: "script language '\(language)' is not supported (sh, bash, python3)")
        }
        try interpreter.ensureWorkDir()
        if let body {
            command += ["-c", body]
        } else if let path {
            let full = path.hasPrefix("/") ? path : interpreter.workDir + "/" + path
            guard FileManager.default.fileExists(atPath: full) else {
                throw FlowFailure(message: "script '\(path)' does not exist in the payload")
            }
            command.append(full)
        }
        let outFile = interpreter.workDir + "/.accord-out-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: outFile) }
        _ = FileManager.default.createFile(atPath: outFile, contents: nil)
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in interpreter.scope.values {
            switch value {
            case .string, .int, .double, .bool: environment[key] = value.javaString
            default: break
            }
        }
        environment["ACCORD_OUT"] = outFile

        var lastLine: String?
        // Whatever the script leaves behind must die with this runner: it serves no other instance.
        interpreter.startedProcesses = true
        let status = try spawnAndStream(command, environment: environment, directory: interpreter.workDir) { line in
            interpreter.log(.info, line)
            if !line.allSatisfy(\.isWhitespace) { lastLine = line }
        }
        if let data = FileManager.default.contents(atPath: outFile) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                interpreter.assign(String(line[..<equals]), .string(String(line[line.index(after: equals)...])))
            }
        }
        guard status == 0 else {
            // The script's last words are usually why: they become `lastError.cause`.
            throw FlowFailure(message: "the script exited with status \(status)", cause: lastLine.map(Value.string))
        }
    }

    /// Runs `command` with stdout and stderr merged into one pipe, calling `line` for each line;
    /// returns the exit status (128 + signal when killed by one).
    private static func spawnAndStream(
        _ command: [String], environment: [String: String], directory: String, line: (String) -> Void
    ) throws -> Int32 {
        // In the runner's own process group (a stop kills the group), reaped below by this thread.
        let child: Spawn.Child
        do {
            child = try Spawn.start(
                command, environment: environment, directory: directory, stdin: .null, output: .merged,
                ownProcessGroup: false)
        } catch {
            throw FlowFailure(message: "the script could not start: \(error)")
        }
        let output = child.stdout
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buffer[0..<n]
            var start = 0
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                line(String(decoding: pending[start..<newline], as: UTF8.self))
                start = newline + 1
            }
            pending.removeSubrange(..<start)
            // A line that never ends is passed on in pieces: nothing here grows without bound.
            if pending.count >= LogBudget.defaultMaxLineBytes {
                line(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            }
        }
        close(output)
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        return Spawn.wait(child.pid)
    }
}
