import Archive
import FlowLanguage
import Foundation

/// A suspended flow's state, as the runner stores it and reads it back on any runner: one ZIP
/// holding `continuation.json` (where the flow stands, its variables) and, when the flow had made
/// its working folder, `work.zip` (that folder as it was).
enum Suspension {
    static let continuationEntry = "continuation.json"
    static let workEntry = "work.zip"

    /// The state of `continuation`; `workDir` when the flow had made it. Throws when the folder
    /// holds more than `maxBytes` (a state too large to keep is refused, not cut).
    static func archive(_ continuation: Continuation, workDir: String?, maxBytes: Int) throws -> [UInt8] {
        var state = ZipWriter()
        state.add(continuationEntry, Array(try JSONEncoder().encode(continuation)))
        if let workDir {
            var work = ZipWriter()
            do {
                try work.addDirectory(workDir, maxBytes: maxBytes)
            } catch {
                throw FlowFailure(message: "cannot suspend: the working folder cannot be kept (\(error))")
            }
            state.add(workEntry, work.build())
        }
        return state.build()
    }

    /// Where a suspended flow stands, and its working folder's archive if it had one.
    static func read(_ bytes: [UInt8], limits: ZipLimits) throws -> (Continuation, work: ZipArchive?) {
        let state = try ZipArchive(
            bytes: bytes, limits: ZipLimits(maxEntries: 2, maxUnpackedBytes: limits.maxUnpackedBytes))
        guard let entry = state.entry(continuationEntry) else {
            throw FlowFailure(message: "the suspended state has no \(continuationEntry)")
        }
        let continuation = try JSONDecoder().decode(Continuation.self, from: Data(try state.contents(of: entry)))
        let work = try state.entry(workEntry).map { try ZipArchive(bytes: try state.contents(of: $0), limits: limits) }
        return (continuation, work)
    }

    /// A process the flow started that still runs, in words: one in the runner's process group
    /// that is neither the runner nor one of its ancestors (a sandbox's init is both in the group
    /// and above the runner). A suspended flow keeps no process, so suspending then is refused.
    static func liveProcess() -> String? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        var processes: [Int32: (parent: Int32, group: Int32, name: String)] = [:]
        for entry in entries {
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm)": state, ppid, pgrp.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, fields[0] != "Z", let parent = Int32(fields[1]), let group = Int32(fields[2])
            else { continue }
            processes[pid] = (parent, group, String(stat[stat.index(after: open)..<close]))
        }
        var above: Set<Int32> = []
        var current = getpid()
        while let process = processes[current], above.insert(current).inserted, process.parent > 0 {
            current = process.parent
        }
        let group = getpgrp()
        guard let (pid, process) = processes.first(where: { $0.value.group == group && !above.contains($0.key) })
        else { return nil }
        return "a process the flow started still runs (pid \(pid): \(process.name)); wait for it or stop it first"
    }
}
