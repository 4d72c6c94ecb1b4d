import ArgumentParser
import Foundation

/// `topo-preempt exporter ARGS...`: runs topo-preempt-exporter (the program beside this one,
/// else $PATH's) with the same arguments. The exporter is a program of its own so that this
/// tool, built against each Slurm release, carries no HTTP server.
struct ExporterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exporter",
        abstract: "Serve decisions and GPU fragmentation as Prometheus metrics (runs topo-preempt-exporter).",
        discussion: "All arguments go to topo-preempt-exporter; `topo-preempt exporter --help` lists them.")

    @Argument(parsing: .captureForPassthrough, help: "topo-preempt-exporter's arguments.")
    var arguments: [String] = []

    func run() throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var candidates = [me.deletingLastPathComponent().appendingPathComponent("topo-preempt-exporter").path]
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            candidates.append("\(dir)/topo-preempt-exporter")
        }
        guard let program = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CLIError.input("topo-preempt-exporter is neither beside this program nor on $PATH").exit()
        }
        // Replaces this process; returns only when the program cannot be run.
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        execv(program, argv)
        throw CLIError.input("\(program): \(String(cString: strerror(errno)))").exit()
    }
}
