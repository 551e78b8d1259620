import Events
import Foundation

/// Reads a working folder's flows (`processes/` and `flows/`, any depth) and `concord.yml`.
struct PayloadLoader {
    /// Every flow, by name.
    var flows: [String: Flow] = [:]
    /// `concord.yml`'s default arguments.
    var defaultArguments: Value = .map(OrderedMap())
    /// `concord.yml`'s entry point.
    var entryPoint: String?

    init(workDir: String) throws {
        let fm = FileManager.default
        for name in ["concord.yml", ".concord.yml"] {
            let path = workDir + "/" + name
            guard let data = fm.contents(atPath: path) else { continue }
            guard let root = try YAMLLoader.load(String(decoding: data, as: UTF8.self), file: name) else { break }
            try loadProjectFile(root)
            break
        }
        for folder in ["processes", "flows"] {
            let base = workDir + "/" + folder
            guard let enumerator = fm.enumerator(atPath: base) else { continue }
            var files: [String] = []
            while let relative = enumerator.nextObject() as? String {
                if relative.hasSuffix(".yml") || relative.hasSuffix(".yaml") { files.append(relative) }
            }
            for relative in files.sorted() {
                let display = folder + "/" + relative
                guard let data = fm.contents(atPath: base + "/" + relative) else { continue }
                guard let root = try YAMLLoader.load(String(decoding: data, as: UTF8.self), file: display) else {
                    continue
                }
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
    static func merge(_ base: Value, _ override: Value) -> Value {
        guard case .map(let left) = base, case .map(let right) = override else { return override }
        var merged = left
        for key in right.keys { merged[key] = merge(left[key] ?? .null, right[key]!) }
        return .map(merged)
    }
}
