import CYAML
import Model

/// A place in a flow file, 1-based.
package struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    var file: String
    var line: Int
    var column: Int

    package var description: String { "\(file):\(line):\(column)" }
}

/// A YAML document as a tree, every node with its location (libyaml's marks).
package indirect enum YAMLNode: Sendable {
    /// A scalar and whether it was quoted (quoted scalars are always strings).
    case scalar(String, quoted: Bool, SourceLocation)
    case sequence([YAMLNode], SourceLocation)
    /// Keys in document order.
    case mapping([(key: YAMLNode, value: YAMLNode)], SourceLocation)

    package var location: SourceLocation {
        switch self {
        case .scalar(_, _, let l), .sequence(_, let l), .mapping(_, let l): l
        }
    }

    /// The scalar's text, or nil for a collection.
    var text: String? {
        if case .scalar(let text, _, _) = self { return text }
        return nil
    }
}

/// A YAML problem with the file, line and column, as the flow's failure message shows it.
package struct YAMLError: Error, CustomStringConvertible {
    package var location: SourceLocation
    var reason: String

    package var description: String { "\(location): \(reason)" }
}

/// Builds `YAMLNode` trees from libyaml's event stream.
package enum YAMLLoader {
    /// Parses the first document of `text`; an empty document is `nil`.
    static func load(_ text: String, file: String) throws(YAMLError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLError(
                location: SourceLocation(file: file, line: 1, column: 1), reason: "the YAML parser could not start")
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { buffer throws(YAMLError) in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var builder = Builder(file: file)
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    let mark = parser.problem_mark
                    let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
                    let context = parser.context.map { String(cString: $0) + ": " } ?? ""
                    throw YAMLError(
                        location: SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1),
                        reason: "YAML syntax error: \(context)\(problem)")
                }
                defer { yaml_event_delete(&event) }
                let done = try builder.consume(&event)
                if done { return builder.root }
            }
        }
    }

    /// Deepest nesting accepted: the compiler and the interpreter walk trees recursively.
    static let maxDepth = 128
    /// Most nodes a document may stand for, aliases expanded (a "billion laughs" document would
    /// otherwise expand exponentially when compiled).
    static let maxNodes = 1_000_000

    private struct Builder {
        enum Kind {
            case sequence([YAMLNode])
            case mapping([(key: YAMLNode, value: YAMLNode)], pendingKey: YAMLNode?, names: Set<String>)
        }

        struct Frame {
            var kind: Kind
            var location: SourceLocation
            var anchor: String?
            /// Nodes in this subtree so far, aliases expanded.
            var weight = 1
        }

        let file: String
        var stack: [Frame] = []
        var anchors: [String: (node: YAMLNode, weight: Int)] = [:]
        var root: YAMLNode?
        var total = 0

        init(file: String) { self.file = file }

        mutating func consume(_ event: inout yaml_event_t) throws(YAMLError) -> Bool {
            let location = SourceLocation(
                file: file, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return true
            case YAML_DOCUMENT_END_EVENT:
                return true
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(
                    decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
                let quoted = scalar.style != YAML_PLAIN_SCALAR_STYLE
                let node = YAMLNode.scalar(text, quoted: quoted, location)
                if let anchor = scalar.anchor { anchors[String(cString: anchor)] = (node, 1) }
                try add(node, weight: 1, at: location)
            case YAML_ALIAS_EVENT:
                let name = String(cString: event.data.alias.anchor)
                guard let (node, weight) = anchors[name] else {
                    throw YAMLError(location: location, reason: "unknown alias '*\(name)'")
                }
                try add(node, weight: weight, at: location)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                guard stack.count < YAMLLoader.maxDepth else {
                    throw YAMLError(location: location, reason: "nested deeper than \(YAMLLoader.maxDepth) levels")
                }
                let isSequence = event.type == YAML_SEQUENCE_START_EVENT
                let anchor =
                    (isSequence ? event.data.sequence_start.anchor : event.data.mapping_start.anchor)
                    .map { String(cString: $0) }
                let kind: Kind = isSequence ? .sequence([]) : .mapping([], pendingKey: nil, names: [])
                stack.append(Frame(kind: kind, location: location, anchor: anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { return false }
                let node: YAMLNode
                switch frame.kind {
                case .sequence(let items): node = .sequence(items, frame.location)
                case .mapping(let pairs, _, _): node = .mapping(pairs, frame.location)
                }
                if let anchor = frame.anchor { anchors[anchor] = (node, frame.weight) }
                try add(node, weight: frame.weight, counted: true, at: location)
            default:
                break
            }
            return false
        }

        /// Adds a finished node to the enclosing collection. `counted`: its weight is in `total` already.
        private mutating func add(
            _ node: YAMLNode, weight: Int, counted: Bool = false, at location: SourceLocation
        ) throws(YAMLError) {
            if !counted {
                total += weight
                guard total <= YAMLLoader.maxNodes else {
                    throw YAMLError(
                        location: location,
                        reason: "the document stands for more than \(YAMLLoader.maxNodes) values (aliases expanded)")
                }
            }
            guard var top = stack.popLast() else {
                root = node
                return
            }
            top.weight += weight
            switch top.kind {
            case .sequence(var items):
                top.kind = .sequence([])
                items.append(node)
                top.kind = .sequence(items)
            case .mapping(var pairs, let pendingKey, var names):
                top.kind = .sequence([])
                if let key = pendingKey {
                    if let name = key.text {
                        guard names.insert(name).inserted else {
                            throw YAMLError(location: key.location, reason: "duplicate key '\(name)'")
                        }
                    }
                    pairs.append((key, node))
                    top.kind = .mapping(pairs, pendingKey: nil, names: names)
                } else {
                    top.kind = .mapping(pairs, pendingKey: node, names: names)
                }
            }
            stack.append(top)
        }
    }
}
