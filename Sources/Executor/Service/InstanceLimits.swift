import Foundation
import Logging
import Model
import Wire

/// The control-group directories of one executor: `<mount>/<the executor's own group>/accord-<name>/`
/// per controller, with one child directory per runner: a runner runs one instance at a time and
/// only takes another when the last one started no process, so its groups hold one instance's
/// processes at a time.
final class InstanceGroups: Sendable {
    /// One controller's base directory and the names of its limit files.
    struct Controller: Sendable {
        let base: String
        let limitFile: String
        let kind: Kind
        enum Kind: Sendable { case pids, memory }
    }

    let controllers: [Controller]

    private init(controllers: [Controller]) { self.controllers = controllers }

    /// Finds writable `pids` and `memory` controllers and makes this executor's base directories;
    /// nil (with the reason) when there are none, as in many containers.
    /// `scope` (the executor's working folder) tells apart executors of the same name in different
    /// deployments on one host: each sweeps only its own leftovers.
    static func detect(executorName: String, scope: String, root: String = "/sys/fs/cgroup") -> (
        InstanceGroups?, String
    ) {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8) else {
            return (nil, "/proc/self/cgroup is not readable")
        }
        var found: [Controller] = []
        let safeName = executorName.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        var hash: UInt32 = 2_166_136_261
        for byte in scope.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let leaf = "accord-" + String(safeName) + "-" + String(hash, radix: 16)
        var unifiedPath: String?
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let names = parts[1].split(separator: ",").map(String.init)
            let path = String(parts[2])
            if parts[1].isEmpty { unifiedPath = path }
            for (name, file, kind) in [
                ("pids", "pids.max", Controller.Kind.pids), ("memory", "memory.limit_in_bytes", .memory),
            ] where names.contains(name) {
                let base = "\(root)/\(name)\(path == "/" ? "" : path)/\(leaf)"
                if makeBase(base, limitFile: file) { found.append(Controller(base: base, limitFile: file, kind: kind)) }
            }
        }
        if found.isEmpty, let path = unifiedPath {
            // cgroup v2: controllers must be enabled for the children of the executor's group.
            let own = root + (path == "/" ? "" : path)
            let available = (try? String(contentsOfFile: own + "/cgroup.controllers", encoding: .utf8)) ?? ""
            let wanted = ["pids", "memory"].filter { available.split(separator: " ").map(String.init).contains($0) }
            let base = own + "/" + leaf
            if !wanted.isEmpty,
                write(wanted.map { "+" + $0 }.joined(separator: " "), to: own + "/cgroup.subtree_control"),
                makeBase(base, limitFile: nil),
                write(wanted.map { "+" + $0 }.joined(separator: " "), to: base + "/cgroup.subtree_control")
            {
                if wanted.contains("pids") { found.append(Controller(base: base, limitFile: "pids.max", kind: .pids)) }
                if wanted.contains("memory") {
                    found.append(Controller(base: base, limitFile: "memory.max", kind: .memory))
                }
            }
        }
        guard !found.isEmpty else {
            return (nil, "no writable pids or memory control group under \(root)")
        }
        let groups = InstanceGroups(controllers: found)
        groups.sweepLeftovers()
        return (groups, found.map(\.base).joined(separator: ", "))
    }

    private static func makeBase(_ base: String, limitFile: String?) -> Bool {
        if mkdir(base, 0o755) != 0 && errno != EEXIST { return false }
        var info = stat()
        return stat(base + "/cgroup.procs", &info) == 0
    }

    @discardableResult
    static func write(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return Array(text.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == text.utf8.count
    }

    /// The directories of one runner (and so of the instances it runs in turn), made with the
    /// limits of one instance (one per controller; v2 shares one).
    func create(_ name: String, limits: InstanceLimits) -> InstanceGroup {
        var directories: [String] = []
        for controller in controllers {
            let directory = controller.base + "/" + name
            if !directories.contains(directory) {
                guard mkdir(directory, 0o755) == 0 || errno == EEXIST else { continue }
                directories.append(directory)
            }
            let value = controller.kind == .pids ? limits.maxProcesses : limits.maxMemoryBytes
            InstanceGroups.write("\(value)", to: directory + "/" + controller.limitFile)
            if controller.kind == .memory && controller.limitFile == "memory.limit_in_bytes" {
                // v1: no swapping around the limit where the kernel offers the knob.
                InstanceGroups.write("\(value)", to: directory + "/memory.memsw.limit_in_bytes")
            }
        }
        return InstanceGroup(directories: directories)
    }

    /// Instance groups a crashed executor left behind: whatever still runs in them is killed.
    private func sweepLeftovers() {
        for controller in controllers {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: controller.base)) ?? []
            for name in names where name.hasPrefix("runner-") || InstanceID(name) != nil {
                InstanceGroup(directories: [controller.base + "/" + name]).killAllAndRemove()
            }
        }
    }
}

/// One runner's control groups.
struct InstanceGroup: Sendable {
    let directories: [String]

    /// Moves `pid` (the runner, before it is given an instance) into every group.
    func add(_ pid: pid_t) -> Bool {
        directories.allSatisfy { InstanceGroups.write("\(pid)", to: $0 + "/cgroup.procs") }
    }

    func processes() -> [pid_t] {
        var pids: Set<pid_t> = []
        for directory in directories {
            let text = (try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") { if let pid = pid_t(line) { pids.insert(pid) } }
        }
        return Array(pids)
    }

    /// Kills everything in the groups, whatever process group or session it moved to (a `setsid`
    /// daemon included), then removes them. Bounded: a process that cannot be killed (stuck in
    /// the kernel) leaves its group for the next sweep.
    func killAllAndRemove() {
        for _ in 0..<50 {
            let pids = processes()
            if pids.isEmpty { break }
            for pid in pids { _ = kill(pid, SIGKILL) }
            usleep(10_000)
        }
        for directory in directories { rmdir(directory) }
    }
}

extension Logger {
    func limitsReport(_ groups: InstanceGroups?, _ detail: String, _ limits: InstanceLimits) {
        if groups != nil {
            info(
                "per-instance limits enforced with control groups",
                metadata: [
                    "groups": "\(detail)", "max.processes": "\(limits.maxProcesses)",
                    "max.memory.bytes": "\(limits.maxMemoryBytes)", "max.open.files": "\(limits.maxOpenFiles)",
                ])
        } else {
            warning(
                "per-instance process and memory limits are NOT enforced (no control groups); open-file limits are",
                metadata: ["reason": "\(detail)"])
        }
    }
}
