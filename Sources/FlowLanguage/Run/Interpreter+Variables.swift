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
