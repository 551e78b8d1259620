import ArgumentParser
import Model
import Wire

/// `accord-runner`: interprets instances' flows, one after another, as the executor hands them over
/// on stdin (`RunnerFrame`), reporting on stdout (`RunnerMessage` lines). Started only by
/// `accord-executor`; it has no use of its own.
@main
struct RunnerMain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accord-runner", abstract: "Run instances sent on stdin (started by accord-executor).")

    @Option(help: "Instances to run before exiting.") var instances = 1

    func validate() throws {
        guard instances >= 1 else { throw ValidationError("--instances must be at least 1 (got \(instances))") }
    }

    func run() throws {
        throw ExitCode(Runner.serve(maxInstances: instances))
    }
}
