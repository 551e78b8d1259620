import Foundation
import Model
import Wire

extension InstanceLimits {
    /// Applied by the runner to itself, so every script it starts inherits them.
    func applyRlimits() {
        var files = rlimit(rlim_cur: rlim_t(maxOpenFiles), rlim_max: rlim_t(maxOpenFiles))
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &files)
        var core = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &core)
    }
}
