import ArgumentParser
import Foundation
import TopoEngine

/// `--format text|json`: every command renders one result value either way.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct FormatOption: ParsableArguments {
    @Option(help: "Output format: text or json (JSON keys sorted; the shapes are in docs/reference.md).")
    var format: OutputFormat = .text
}

/// Where topo_aware.conf is: the plugins' own rule (`ConfigPaths`), so the CLI reads what
/// slurmctld reads.
struct ConfigPathOption: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp(
        "topo_aware.conf to read.",
        discussion: "Default: $TOPO_AWARE_CONF, else topo_aware.conf beside $SLURM_CONF, else /etc/slurm/topo_aware.conf."))
    var path: String?

    /// The site's files: slurm.conf from `$SLURM_CONF`, the others beside it, topo_aware.conf
    /// from `--config` or `$TOPO_AWARE_CONF` when given.
    func paths() -> ConfigPaths {
        let environment = ProcessInfo.processInfo.environment
        return ConfigPaths(slurmConf: environment["SLURM_CONF"],
                           topoAwareOverride: path ?? environment[ConfigPaths.topoAwareVariable])
    }

    func resolved() -> String { paths().topoAwareConf }

    /// Reads and parses the file; on failure prints `file:line:column: message` and exits 1.
    func load() throws -> ParsedConfig {
        let path = resolved()
        let text = try readInput(path)
        do {
            return try TopoAwareConfig.parse(text, file: path)
        } catch {
            throw CLIError.input(error.description)
        }
    }
}

/// A checked input that is wrong: message to stderr, exit status 1.
enum CLIError: Error, CustomStringConvertible {
    case input(String)
    var description: String {
        switch self {
        case let .input(message): message
        }
    }
}

extension CLIError {
    /// Prints the message to stderr and exits with status 1 (ArgumentParser's ExitCode).
    func exit() -> ExitCode {
        FileHandle.standardError.write(Data("topo-preempt: \(description)\n".utf8))
        return ExitCode(1)
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func printError(_ line: String, newline: Bool = true) {
    FileHandle.standardError.write(Data("\(line)\(newline ? "\n" : "")".utf8))
}

/// Left-aligns `text` in a column of `width` characters (at least one space after it).
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

/// The site's files when no topo_aware.conf option applies (`$SLURM_CONF`, the rest beside it).
func sitePaths() -> ConfigPaths {
    let environment = ProcessInfo.processInfo.environment
    return ConfigPaths(slurmConf: environment["SLURM_CONF"], topoAwareOverride: environment[ConfigPaths.topoAwareVariable])
}

/// `--slurm-release VERSION`: the Slurm release whose GPU pick the planner and the stock model
/// follow (`SlurmRelease.gpuPick`); default: the release this tool is built against.
struct SlurmReleaseOption: ParsableArguments {
    @Option(name: .customLong("slurm-release"), help: ArgumentHelp(
        "The Slurm release modelled (e.g. 24.11.5).",
        discussion: "Its stock GPU pick changed in 24.05. Default: the release this tool is built against."))
    var text: String?

    /// The given release, else `fallback`.
    func release(or fallback: SlurmRelease) throws -> SlurmRelease {
        guard let text else { return fallback }
        guard let release = SlurmRelease(text) else {
            throw ValidationError("--slurm-release: '\(text)' is not a Slurm release such as 24.11.5")
        }
        return release
    }
}
