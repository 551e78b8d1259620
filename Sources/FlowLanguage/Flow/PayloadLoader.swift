import Archive
import Foundation
import Model

/// Reads a payload's flows (`processes/` and `flows/`, any depth) and `concord.yml` straight from
/// the archive: an instance that never touches its working folder never has one written.
package struct PayloadLoader {
    /// Every flow, by name.
    package var flows: [String: Flow] = [:]
    /// `concord.yml`'s default arguments.
    package var defaultArguments: Value = .map(OrderedMap())
    /// `concord.yml`'s entry point.
    package var entryPoint: String?

    package init(archive: ZipArchive) throws {
        for name in ["concord.yml", ".concord.yml"] {
            guard let entry = archive.entry(name) else { continue }
            let text = String(decoding: try archive.contents(of: entry), as: UTF8.self)
            guard let root = try YAMLLoader.load(text, file: name) else { break }
            try loadProjectFile(root)
            break
        }
        for folder in ["processes/", "flows/"] {
            let files = archive.entries.filter {
                !$0.isDirectory && $0.path.hasPrefix(folder)
                    && ($0.path.hasSuffix(".yml") || $0.path.hasSuffix(".yaml"))
            }
            // In the order of their paths within the folder, as a listing of the folder would give.
            for entry in files.sorted(by: { $0.path < $1.path }) {
                let text = String(decoding: try archive.contents(of: entry), as: UTF8.self)
                guard let root = try YAMLLoader.load(text, file: entry.path) else { continue }
                try FlowCompiler.add(root, to: &flows)
            }
        }
    }

    private mutating func loadProjectFile(_ root: YAMLNode) throws {
        guard case .mapping(let pairs, _) = root else {
            throw FlowDefinitionError(location: root.location, reason: "concord.yml must be a mapping")
        }
        for (key, value) in pairs {
            switch key.text {
            case "flows":
                try FlowCompiler.add(value, to: &flows)
            case "entryPoint":
                entryPoint = value.text
            case "configuration", "variables":
                guard case .mapping(let sections, _) = value else {
                    throw FlowDefinitionError(location: value.location, reason: "'\(key.text ?? "")' must be a mapping")
                }
                for (section, content) in sections {
                    switch section.text {
                    case "arguments":
                        let arguments = try FlowCompiler.value(content)
                        guard case .map = arguments else {
                            throw FlowDefinitionError(
                                location: content.location, reason: "'arguments' must be a mapping")
                        }
                        defaultArguments = Self.merge(defaultArguments, arguments)
                    // Older project files keep the entry point beside the arguments.
                    case "entryPoint" where entryPoint == nil: entryPoint = content.text
                    default: continue
                    }
                }
            default:
                continue
            }
        }
    }

    /// Deep merge: `override` wins; maps merge key by key.
    package static func merge(_ base: Value, _ override: Value) -> Value {
        guard case .map(let left) = base, case .map(let right) = override else { return override }
        var merged = left
        for key in right.keys { merged[key] = merge(left[key] ?? .null, right[key]!) }
        return .map(merged)
    }
}
