import Foundation
import ProcessSupport

/// Where an instance's code runs: a runner and every process its scripts start.
///
/// Sandboxed (the default), each runner runs under bubblewrap, as an unprivileged user that is
/// neither root nor the executor's, in PID, mount and IPC namespaces of its own (and an empty
/// network namespace with `--no-network`). It sees read-only system folders (`/usr`, `/etc`, the
/// Swift runtime the runner links), a fresh `/proc` of its own namespace, a minimal `/dev`, a
/// private `/tmp`, and one read-write folder: its own home under the executor's work folder.
/// Nothing of the data folder, the sockets, other instances or the server's processes is mounted
/// or visible; its environment is built from scratch. A runner whose instance started a process
/// exits with it, and its namespaces, `/tmp` and home go with it; only an instance that ran no
/// process (the interpreter alone, which writes nothing outside the instance's working folder,
/// removed after it) hands its runner on (see docs/decisions/0010).
struct Sandbox: Sendable {
    enum Mode: Sendable, Equatable {
        /// bubblewrap (run by the executor, as root), the runner run as `uid`/`gid` (dropped to by
        /// `setpriv` inside).
        case bubblewrap(uid: uid_t, gid: gid_t, network: Bool)
        /// `--unsandboxed`: instances run as the executor's own user and see what it sees.
        case none
    }

    let mode: Mode
    /// Read-only binds besides the system folders: the runner binary and the runtime it links.
    let readOnly: [String]

    /// bubblewrap's path (`--bwrap`; Debian's by default).
    var bubblewrap = "/usr/bin/bwrap"
    static let setpriv = "/usr/bin/setpriv"

    /// The environment every runner starts with (and its scripts inherit): nothing of the
    /// executor's, no `ACCORD_*`, no keys.
    static func environment(home: String) -> [String: String] {
        [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "USER": "accord", "LOGNAME": "accord",
        ]
    }

    /// `command` wrapped so that it runs inside this sandbox with `home` as its one writable folder
    /// (also its working folder).
    func wrap(_ command: [String], home: String) -> [String] {
        guard case .bubblewrap(let uid, let gid, let network) = mode else { return command }
        // bubblewrap (run by root) makes the namespaces and mounts with root's rights, so the
        // folders it binds need not be reachable by the sandbox user; then `setpriv` inside drops
        // to the sandbox user with no capabilities and no way back (no new privileges: a setuid
        // binary gains nothing).
        var argv = [
            bubblewrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--hostname", "accord",
            "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
        ]
        if !network { argv.append("--unshare-net") }
        // The folders leading to each bind are made searchable explicitly: bubblewrap would make
        // them with the executor's umask, and a 077 one leaves them closed to the sandbox user.
        let binds = readOnly.filter { !$0.hasPrefix("/usr/") }
        for folder in Self.ancestors(of: binds + [home]) { argv += ["--perms", "0755", "--dir", folder] }
        for path in binds { argv += ["--ro-bind", path, path] }
        argv += ["--bind", home, home, "--chdir", home, "--clearenv"]
        for (key, value) in Self.environment(home: home).sorted(by: { $0.key < $1.key }) {
            argv += ["--setenv", key, value]
        }
        argv += [
            "--", Self.setpriv, "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--inh-caps=-all",
            "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]
        return argv + command
    }

    /// Every folder above `paths` (outermost first, each once), without `/` and the system folders
    /// the sandbox already has.
    static func ancestors(of paths: [String]) -> [String] {
        var seen: Set<String> = ["/usr", "/etc", "/tmp", "/proc", "/dev"]
        var folders: [String] = []
        for path in paths {
            var current = ""
            for part in path.split(separator: "/").dropLast() {
                current += "/" + part
                if seen.insert(current).inserted { folders.append(current) }
            }
        }
        return folders
    }

    /// The sandbox for `runner`: the runner binary and the folders of the shared libraries this
    /// executor has loaded from outside `/usr` (the Swift runtime, built by the same toolchain as
    /// the runner) are bound read-only.
    static func make(_ mode: Mode, runner: String, bubblewrap: String) -> Sandbox {
        var folders: Set<String> = []
        // Read to the end: procfs files report a size of 0, so a read of "the whole file" sees nothing.
        if let maps = try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd()
            .map({ String(decoding: $0, as: UTF8.self) })
        {
            for line in maps.split(separator: "\n") {
                guard let slash = line.firstIndex(of: "/") else { continue }
                let path = String(line[slash...])
                guard path.hasSuffix(".so") || path.contains(".so."), !path.hasPrefix("/usr/") else { continue }
                folders.insert((path as NSString).deletingLastPathComponent)
            }
        }
        return Sandbox(mode: mode, readOnly: [runner] + folders.sorted(), bubblewrap: bubblewrap)
    }

    /// Makes `path`, a runner's home: empty, readable by its owner only, owned by the sandbox user.
    func makeHome(_ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        if case .bubblewrap(let uid, let gid, _) = mode, chown(path, uid, gid) != 0 {
            throw SpawnError("cannot give \(path) to the sandbox user \(uid): \(String(cString: strerror(errno)))")
        }
    }

    /// Starts `/bin/sh -c 'exit 0'` in a sandbox with a home of its own under `workRoot`: throws with
    /// bubblewrap's own words when this system cannot make one (not root, no bubblewrap, a kernel
    /// that refuses namespaces), so that the executor refuses to start rather than run instances
    /// unprotected.
    func check(workRoot: String) throws {
        guard case .bubblewrap(let uid, _, _) = mode else { return }
        guard getuid() == 0 else {
            throw SpawnError(
                """
                the sandbox needs root (to run instances as user \(uid) in namespaces of their own); \
                run the executor as root, or pass --unsandboxed to run instances as this user, unprotected
                """)
        }
        for tool in [bubblewrap, Self.setpriv] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw SpawnError("\(tool) is missing (Debian: apt-get install bubblewrap util-linux)")
        }
        let home = workRoot + "/sandbox-check"
        try makeHome(home)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let child = try Spawn.start(
            wrap(["/bin/sh", "-c", "exit 0"], home: home), environment: Self.environment(home: home), stdin: .null,
            output: .merged, ownProcessGroup: true)
        let said = (try? FileHandle(fileDescriptor: child.stdout, closeOnDealloc: true).readToEnd()) ?? nil
        let status = Spawn.wait(child.pid)
        guard status == 0 else {
            let words = String(decoding: said ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw SpawnError("the sandbox cannot be set up here: \(words.isEmpty ? "exit status \(status)" : words)")
        }
    }
}
