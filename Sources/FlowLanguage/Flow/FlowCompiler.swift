import Model

/// Turns YAML trees into flows, rejecting unknown step keys and wrong shapes with their location.
package enum FlowCompiler {
    /// Task names that may be used in the short form `- name: value`.
    static let shortTasks: Set<String> = ["log", "sleep", "throw"]

    /// Compiles every flow of one file into `flows`; a flow name defined twice is an error.
    static func add(_ root: YAMLNode, to flows: inout [String: Flow]) throws(FlowDefinitionError) {
        guard case .mapping(let pairs, _) = root else {
            throw FlowDefinitionError(
                location: root.location, reason: "a flow file must be a mapping of flow names to lists of steps")
        }
        for (key, value) in pairs {
            guard let name = key.text else {
                throw FlowDefinitionError(location: key.location, reason: "a flow name must be a string")
            }
            if let existing = flows[name] {
                throw FlowDefinitionError(
                    location: key.location, reason: "flow '\(name)' is defined twice (first at \(existing.location))")
            }
            flows[name] = Flow(name: name, steps: try steps(value, what: "flow '\(name)'"), location: key.location)
        }
    }

    static func steps(_ node: YAMLNode, what: String) throws(FlowDefinitionError) -> [Step] {
        guard case .sequence(let items, _) = node else {
            throw FlowDefinitionError(location: node.location, reason: "\(what) must be a list of steps")
        }
        guard !items.isEmpty else {
            throw FlowDefinitionError(location: node.location, reason: "\(what) has no steps")
        }
        var result: [Step] = []
        for item in items { result.append(try step(item)) }
        return result
    }

    package static func step(_ node: YAMLNode) throws(FlowDefinitionError) -> Step {
        let location = node.location
        switch node {
        case .scalar(let text, _, _):
            if text.hasPrefix("${") {
                return Step(kind: .expr(try template(text, location), out: nil, error: nil), location: location)
            }
            guard !text.isEmpty else { throw FlowDefinitionError(location: location, reason: "an empty step") }
            switch text {
            case "return", "end": return Step(kind: .returnFlow, location: location)
            case "exit": return Step(kind: .exitProcess, location: location)
            default: break
            }
            return Step(kind: .call(.string(text), input: nil, out: [], withItems: nil, error: nil), location: location)
        case .sequence:
            throw FlowDefinitionError(location: location, reason: "a step must be a string or a mapping, not a list")
        case .mapping(let pairs, _):
            return try mappingStep(pairs, location)
        }
    }

    private static func mappingStep(
        _ pairs: [(key: YAMLNode, value: YAMLNode)], _ location: SourceLocation
    ) throws(FlowDefinitionError) -> Step {
        var fields: [String: YAMLNode] = [:]
        var keyLocations: [String: SourceLocation] = [:]
        var order: [String] = []
        for (key, value) in pairs {
            guard let name = key.text else {
                throw FlowDefinitionError(location: key.location, reason: "a step key must be a string")
            }
            fields[name] = value
            keyLocations[name] = key.location
            order.append(name)
        }
        let label = try fields["name"].map { node throws(FlowDefinitionError) in try string(node, "name") }
        let retry = try fields["retry"].map { node throws(FlowDefinitionError) in try retryPolicy(node) }

        func allow(_ keyword: String, _ allowed: Set<String>) throws(FlowDefinitionError) {
            for key in order where key != keyword && key != "name" && key != "retry" && !allowed.contains(key) {
                throw FlowDefinitionError(
                    location: keyLocations[key] ?? location, reason: "unknown key '\(key)' in a '\(keyword)' step")
            }
        }
        func optionalSteps(_ key: String) throws(FlowDefinitionError) -> [Step]? {
            guard let node = fields[key] else { return nil }
            return try steps(node, what: "'\(key)'")
        }

        let kind: StepKind
        if let node = fields["expr"] {
            try allow("expr", ["out", "error"])
            guard let text = node.text else {
                throw FlowDefinitionError(location: node.location, reason: "'expr' must be a string")
            }
            kind = .expr(
                try template(text, node.location),
                out: try fields["out"].map { n throws(FlowDefinitionError) in try string(n, "out") },
                error: try optionalSteps("error"))
        } else if let node = fields["call"] {
            try allow("call", ["in", "out", "withItems", "error"])
            var out: [String] = []
            if let outNode = fields["out"] {
                switch outNode {
                case .scalar(let text, _, _): out = [text]
                case .sequence(let items, _):
                    for item in items { out.append(try string(item, "out")) }
                case .mapping:
                    throw FlowDefinitionError(
                        location: outNode.location, reason: "'out' must be a name or a list of names")
                }
            }
            kind = .call(
                try value(node), input: try fields["in"].map { n throws(FlowDefinitionError) in try value(n) },
                out: out,
                withItems: try fields["withItems"].map { n throws(FlowDefinitionError) in try value(n) },
                error: try optionalSteps("error"))
        } else if let node = fields["if"] {
            try allow("if", ["then", "else"])
            guard let then = try optionalSteps("then") else {
                throw FlowDefinitionError(location: node.location, reason: "an 'if' step needs 'then'")
            }
            kind = .ifThen(try value(node), then: then, otherwise: try optionalSteps("else") ?? [])
        } else if let node = fields["switch"] {
            if case .sequence(let branches, _) = node {
                try allow("switch", [])
                var compiled: [(condition: Value, steps: [Step])] = []
                for branch in branches {
                    guard case .mapping(let branchPairs, let branchLocation) = branch else {
                        throw FlowDefinitionError(
                            location: branch.location, reason: "a switch branch must have 'expr' and 'steps'")
                    }
                    var condition: Value?
                    var body: [Step]?
                    for (key, value) in branchPairs {
                        switch key.text {
                        case "expr": condition = try self.value(value)
                        case "steps": body = try steps(value, what: "a switch branch")
                        default:
                            throw FlowDefinitionError(
                                location: key.location, reason: "unknown key '\(key.text ?? "?")' in a switch branch")
                        }
                    }
                    guard let condition, let body else {
                        throw FlowDefinitionError(
                            location: branchLocation, reason: "a switch branch must have 'expr' and 'steps'")
                    }
                    compiled.append((condition, body))
                }
                kind = .switchConditions(compiled)
            } else {
                var cases: [(key: String, steps: [Step])] = []
                for key in order where !["switch", "default", "name", "retry"].contains(key) {
                    cases.append((key, try steps(fields[key]!, what: "case '\(key)'")))
                }
                kind = .switchValue(try value(node), cases: cases, otherwise: try optionalSteps("default"))
            }
        } else if fields["subprocess"] != nil {
            try allow("subprocess", ["steps", "errors"])
            guard let body = try optionalSteps("steps") else {
                throw FlowDefinitionError(location: location, reason: "a 'subprocess' step needs 'steps'")
            }
            var handlers: [ErrorHandler] = []
            if let errors = fields["errors"] {
                guard case .sequence(let items, _) = errors else {
                    throw FlowDefinitionError(location: errors.location, reason: "'errors' must be a list of handlers")
                }
                for item in items {
                    guard case .mapping(let handlerPairs, let handlerLocation) = item else {
                        throw FlowDefinitionError(
                            location: item.location, reason: "an error handler must be a mapping with 'call'")
                    }
                    var ref: String?
                    var call: Value?
                    var input: Value?
                    for (key, value) in handlerPairs {
                        switch key.text {
                        case "ref": ref = try string(value, "ref")
                        case "call": call = try self.value(value)
                        case "in": input = try self.value(value)
                        default:
                            throw FlowDefinitionError(
                                location: key.location, reason: "unknown key '\(key.text ?? "?")' in an error handler")
                        }
                    }
                    guard let call else {
                        throw FlowDefinitionError(location: handlerLocation, reason: "an error handler needs 'call'")
                    }
                    handlers.append(ErrorHandler(ref: ref, call: call, input: input))
                }
            }
            kind = .subprocess(body, handlers: handlers)
        } else if let node = fields["try"] ?? fields[":"] ?? fields["::"] {
            let keyword = fields["try"] != nil ? "try" : (fields[":"] != nil ? ":" : "::")
            try allow(keyword, ["error"])
            kind = .group(try steps(node, what: "'\(keyword)'"), error: try optionalSteps("error"))
        } else if let node = fields["set"] {
            try allow("set", [])
            guard case .mapping(let setPairs, _) = node else {
                throw FlowDefinitionError(location: node.location, reason: "'set' must be a mapping of names to values")
            }
            var assignments: [(path: String, value: Value)] = []
            for (key, value) in setPairs { assignments.append((try string(key, "set"), try self.value(value))) }
            kind = .set(assignments)
        } else if let node = fields["return"] {
            try allow("return", [])
            kind = isNull(node) ? .returnFlow : .fail(try value(node))
        } else if let node = fields["end"] {
            try allow("end", [])
            kind = isNull(node) ? .returnFlow : .fail(try value(node))
        } else if fields["exit"] != nil {
            try allow("exit", [])
            kind = .exitProcess
        } else if let node = fields["suspend"] {
            try allow("suspend", [])
            guard !isNull(node) else {
                throw FlowDefinitionError(
                    location: node.location, reason: "'suspend' needs the name of the event to wait for")
            }
            kind = .suspend(try value(node))
        } else if let node = fields["task"] {
            try allow("task", ["in", "out"])
            kind = .task(
                try string(node, "task"), input: try fields["in"].map { n throws(FlowDefinitionError) in try value(n) },
                out: try fields["out"].map { n throws(FlowDefinitionError) in try string(n, "out") })
        } else if let node = fields["script"] {
            try allow("script", ["body"])
            let target = try string(node, "script")
            if let body = fields["body"] {
                kind = .script(language: target, body: try string(body, "body"), path: nil)
            } else {
                kind = .script(language: "sh", body: nil, path: target)
            }
        } else if let node = fields["log"] {
            try allow("log", [])
            kind = .log(try value(node))
        } else if let name = order.first(where: { shortTasks.contains($0) }) {
            try allow(name, ["out"])
            kind = .task(
                name, input: try value(fields[name]!),
                out: try fields["out"].map { n throws(FlowDefinitionError) in try string(n, "out") })
        } else {
            let key = order.first ?? "?"
            throw FlowDefinitionError(location: keyLocations[key] ?? location, reason: "unknown step '\(key)'")
        }
        return Step(kind: kind, location: location, label: label, retry: retry)
    }

    private static func retryPolicy(_ node: YAMLNode) throws(FlowDefinitionError) -> RetryPolicy {
        guard case .mapping(let pairs, _) = node else {
            throw FlowDefinitionError(
                location: node.location, reason: "'retry' must be a mapping with 'times' and 'delay'")
        }
        var times: Value = .int(1)
        var delay: Value = .int(0)
        for (key, value) in pairs {
            switch key.text {
            case "times": times = try self.value(value)
            case "delay": delay = try self.value(value)
            default:
                throw FlowDefinitionError(location: key.location, reason: "unknown key '\(key.text ?? "?")' in 'retry'")
            }
        }
        return RetryPolicy(times: times, delayMillis: delay)
    }

    private static func isNull(_ node: YAMLNode) -> Bool {
        if case .scalar(let text, let quoted, _) = node, !quoted, ["", "~", "null", "Null", "NULL"].contains(text) {
            return true
        }
        return false
    }

    private static func string(_ node: YAMLNode, _ key: String) throws(FlowDefinitionError) -> String {
        guard let text = node.text else {
            throw FlowDefinitionError(location: node.location, reason: "'\(key)' must be a string")
        }
        return text
    }

    private static func template(_ text: String, _ location: SourceLocation) throws(FlowDefinitionError) -> Template {
        do {
            return try Template.parse(text)
        } catch {
            throw FlowDefinitionError(location: location, reason: "bad expression: \(error)")
        }
    }

    /// A YAML value as a flow value; strings keep their `${...}` to be evaluated when used, but are
    /// parsed now so that a bad expression is a definition error.
    static func value(_ node: YAMLNode) throws(FlowDefinitionError) -> Value {
        switch node {
        case .scalar(let text, let quoted, let location):
            if Template.hasExpression(text) { _ = try template(text, location) }
            return quoted ? .string(text) : resolvePlain(text)
        case .sequence(let items, _):
            var values: [Value] = []
            for item in items { values.append(try value(item)) }
            return .list(values)
        case .mapping(let pairs, _):
            var map = OrderedMap()
            for (key, item) in pairs { map[key.text ?? ""] = try value(item) }
            return .map(map)
        }
    }

    /// YAML 1.2 core schema for plain scalars.
    static func resolvePlain(_ text: String) -> Value {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        default: break
        }
        if let int = Int64(text) { return .int(int) }
        if let first = text.first, first.isNumber || first == "-" || first == "+" || first == ".",
            text.allSatisfy({ $0.isNumber || "+-.eE".contains($0) }), let double = Double(text)
        {
            return .double(double)
        }
        return .string(text)
    }
}
