import CYAML

/// A place in a flow file, 1-based.
struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    var file: String
    var line: Int
    var column: Int

    var description: String { "\(file):\(line):\(column)" }
}

/// A YAML document as a tree, every node with its location (libyaml's marks).
indirect enum YAMLNode: Sendable {
    /// A scalar and whether it was quoted (quoted scalars are always strings).
    case scalar(String, quoted: Bool, SourceLocation)
    case sequence([YAMLNode], SourceLocation)
    /// Keys in document order.
    case mapping([(key: YAMLNode, value: YAMLNode)], SourceLocation)

    var location: SourceLocation {
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
struct YAMLError: Error, CustomStringConvertible {
    var location: SourceLocation
    var reason: String

    var description: String { "\(location): \(reason)" }
}

/// Builds `YAMLNode` trees from libyaml's event stream.
enum YAMLLoader {
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

    private struct Builder {
        enum Frame {
            case sequence([YAMLNode], SourceLocation, anchor: String?)
            case mapping([(key: YAMLNode, value: YAMLNode)], pendingKey: YAMLNode?, SourceLocation, anchor: String?)
        }

        let file: String
        var stack: [Frame] = []
        var anchors: [String: YAMLNode] = [:]
        var root: YAMLNode?
        var documentDone = false

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
                if let anchor = scalar.anchor { anchors[String(cString: anchor)] = node }
                try add(node)
            case YAML_ALIAS_EVENT:
                let name = String(cString: event.data.alias.anchor)
                guard let node = anchors[name] else {
                    throw YAMLError(location: location, reason: "unknown alias '*\(name)'")
                }
                try add(node)
            case YAML_SEQUENCE_START_EVENT:
                let anchor = event.data.sequence_start.anchor.map { String(cString: $0) }
                stack.append(.sequence([], location, anchor: anchor))
            case YAML_MAPPING_START_EVENT:
                let anchor = event.data.mapping_start.anchor.map { String(cString: $0) }
                stack.append(.mapping([], pendingKey: nil, location, anchor: anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let frame = stack.popLast() else { return false }
                switch frame {
                case .sequence(let items, let l, let anchor):
                    let node = YAMLNode.sequence(items, l)
                    if let anchor { anchors[anchor] = node }
                    try add(node)
                case .mapping(let pairs, _, let l, let anchor):
                    let node = YAMLNode.mapping(pairs, l)
                    if let anchor { anchors[anchor] = node }
                    try add(node)
                }
            default:
                break
            }
            return false
        }

        private mutating func add(_ node: YAMLNode) throws(YAMLError) {
            guard let top = stack.popLast() else {
                root = node
                return
            }
            switch top {
            case .sequence(var items, let l, let anchor):
                items.append(node)
                stack.append(.sequence(items, l, anchor: anchor))
            case .mapping(var pairs, let pendingKey, let l, let anchor):
                if let key = pendingKey {
                    if let name = key.text, pairs.contains(where: { $0.key.text == name }) {
                        throw YAMLError(location: key.location, reason: "duplicate key '\(name)'")
                    }
                    pairs.append((key, node))
                    stack.append(.mapping(pairs, pendingKey: nil, l, anchor: anchor))
                } else {
                    stack.append(.mapping(pairs, pendingKey: node, l, anchor: anchor))
                }
            }
        }
    }
}
