import Foundation

/// The processes of this host, read from `/proc` (an instance's processes are found this way: in
/// its sandbox they have PIDs of their own and cannot write where a test could read).
package enum HostProcesses {
    /// The PIDs whose command line (arguments joined by spaces) begins with `prefix`.
    package static func pids(commandLine prefix: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            let cmdline = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            return String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).hasPrefix(prefix)
        }
    }
}
