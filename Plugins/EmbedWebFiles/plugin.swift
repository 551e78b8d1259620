import Foundation
import PackagePlugin

/// Compiles the Gateway's web files (`Sources/Gateway/Web`: the OpenAPI document and the console)
/// into the binary, so a Gateway is one file to deploy and can never serve a document or a page
/// from another version. Rebuilt whenever one of the files changes.
@main
struct EmbedWebFiles: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let web = target.directoryURL.appending(path: "Web")
        var inputs: [URL] = []
        if let walker = FileManager.default.enumerator(at: web, includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let url as URL in walker
            where (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true {
                inputs.append(url)
            }
        }
        inputs.sort { $0.path < $1.path }
        let output = context.pluginWorkDirectoryURL.appending(path: "WebFiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) web files into \(target.name)",
                executable: try context.tool(named: "EmbedFiles").url,
                arguments: [web.path, output.path] + inputs.map(\.path),
                inputFiles: inputs, outputFiles: [output])
        ]
    }
}
