import JSON
import Model

extension Interpreter {
    /// Arguments (the request's over `concord.yml`'s, merged deeply), `${...}` argument values
    /// evaluated against the other arguments, then the built-in variables.
    package func prepareVariables(
        arguments requestArguments: [String: JSONValue], defaults: Value, instanceID: InstanceID, workDir: String
    ) throws {
        var requested = OrderedMap()
        for key in requestArguments.keys.sorted() { requested[key] = Value(json: requestArguments[key]!) }
        let merged = PayloadLoader.merge(defaults, .map(requested))
        guard case .map(let arguments) = merged else { return }
        for key in arguments.keys { scope.values[key] = arguments[key] }
        let id = Value.string(instanceID.description)
        scope.values["txId"] = id
        scope.values["instanceId"] = id
        scope.values["workDir"] = .string(workDir)
        scope.values["__attr_localPath"] = .string(workDir)
        for key in arguments.keys {
            guard case .string(let text) = arguments[key]!, Template.hasExpression(text) else { continue }
            do {
                scope.values[key] = try resolve(.string(text))
            } catch {
                throw FlowFailure(message: "argument '\(key)': \(error)", step: "arguments")
            }
        }
    }
}

extension Interpreter {
    /// A handler's run: the variables its instance ended with, as they were (nothing in them is
    /// resolved again), with this run's own id variables and working folder.
    package func restoreVariables(_ values: [String: JSONValue], instanceID: InstanceID, workDir: String) {
        for key in values.keys.sorted() { scope.values[key] = Value(json: values[key]!) }
        let id = Value.string(instanceID.description)
        scope.values["txId"] = id
        scope.values["instanceId"] = id
        scope.values["workDir"] = .string(workDir)
        scope.values["__attr_localPath"] = .string(workDir)
    }

    /// Every variable of the flow's outermost scope, as JSON: what a handler starts with.
    package var variablesJSON: [String: JSONValue] { scope.values.mapValues(\.json) }
}

extension FlowFailure {
    /// `lastError` as flows see it, as JSON.
    package var lastErrorJSON: JSONValue { asValue.json }
}
