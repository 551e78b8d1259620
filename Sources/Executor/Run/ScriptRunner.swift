import Events
import Foundation

/// `- script:` steps: runs a shell, bash or python3 body (or a script file from the payload) in the
/// working folder. Output goes to the log line by line; `KEY=value` lines written to `$ACCORD_OUT`
/// set variables. The script stays in the runner's process group, so a stop kills it too.
enum ScriptRunner {
    static func run(language: String, body: String?, path: String?, in interpreter: Interpreter) throws {
        let interpreterPath: String
        switch language {
        case "sh": interpreterPath = "/bin/sh"
        case "bash": interpreterPath = "/bin/bash"
        case "python3", "python": interpreterPath = "/usr/bin/env"
        default: throw FlowFailure(message: "script language '\(language)' is not supported (sh, bash, python3)")
        }
        let outFile = interpreter.workDir + "/.accord-out-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: outFile) }
        _ = FileManager.default.createFile(atPath: outFile, contents: nil)

        var arguments: [String] = []
        if interpreterPath == "/usr/bin/env" { arguments.append("python3") }
        if let body {
            arguments += ["-c", body]
        } else if let path {
            let full = path.hasPrefix("/") ? path : interpreter.workDir + "/" + path
            guard FileManager.default.fileExists(atPath: full) else {
                throw FlowFailure(message: "script '\(path)' does not exist in the payload")
            }
            arguments.append(full)
        }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in interpreter.scope.values {
            switch value {
            case .string, .int, .double, .bool: environment[key] = value.javaString
            default: break
            }
        }
        environment["ACCORD_OUT"] = outFile

        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreterPath)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: interpreter.workDir)
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw FlowFailure(message: "the script could not start: \(error.localizedDescription)")
        }
        var pending = Data()
        let handle = pipe.fileHandleForReading
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let newline = pending.firstIndex(of: 0x0A) {
                interpreter.log(.info, String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        if !pending.isEmpty { interpreter.log(.info, String(decoding: pending, as: UTF8.self)) }
        process.waitUntilExit()
        if let data = FileManager.default.contents(atPath: outFile) {
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                interpreter.assign(String(line[..<equals]), .string(String(line[line.index(after: equals)...])))
            }
        }
        guard process.terminationStatus == 0 else {
            throw FlowFailure(message: "the script exited with status \(process.terminationStatus)")
        }
    }
}
