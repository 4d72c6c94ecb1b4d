import ArgumentParser
import Foundation
import TopoEngine

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, each printed as a ratio to a baseline measured in the same run.",
        subcommands: [Topology.self])

    struct Topology: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time parsing topology files and building their affinity tables.",
            discussion: """
                Baseline: one pass over the file's bytes counting whitespace-separated tokens, the \
                least any parser of these formats must do. Prints the median of --iterations runs \
                per file. Build with -c release for meaningful numbers.
                """)

        @Argument(help: "nvidia-smi topo -m, rocm-smi --showtopo or gres.conf files.")
        var files: [String]

        @Option(help: "Runs per file (the median is printed).")
        var iterations: Int = 2000

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one file") }
            if iterations < 1 || iterations > 10_000_000 { throw ValidationError("--iterations must be 1...10000000") }
        }

        func run() throws {
            print("file                                       bytes   tokenize(us)  parse(us)  ratio  table(us)")
            for file in files {
                let text: String
                do { text = try readInput(file) } catch let error as CLIError { throw error.exit() }
                let format = TopoCommand.Input.detect(text)
                func parse() throws -> ParsedTopology {
                    switch format {
                    case .rocmSmi: return try RocmSmiTopo.parse(text, file: file)
                    case .gresConf:
                        let conf = try GresConf.parse(text, file: file)
                        return try NodeTopology.fromGresConf(conf, node: conf.nodeNames.first ?? "")
                    default: return try NvidiaSmiTopo.parse(text, file: file)
                    }
                }
                let parsed: ParsedTopology
                do { parsed = try parse() } catch { throw CLIError.input("\(error)").exit() }
                let baseline = median(iterations) { blackHole(countTokens(text)) }
                let parsing = median(iterations) { blackHole((try? parse())?.topology.gpuCount ?? 0) }
                let table = median(iterations) { blackHole((try? AffinityTable(parsed.topology))?.largestGroup.count ?? 0) }
                let name = (file as NSString).lastPathComponent
                let padded = name.count >= 42 ? name : name + String(repeating: " ", count: 42 - name.count)
                print(padded + String(format: " %6d %13.2f %10.2f %6.1f %10.2f", text.utf8.count,
                                      baseline, parsing, parsing / max(baseline, 0.001), table))
            }
        }

        /// Median wall time of `body` in microseconds.
        func median(_ runs: Int, _ body: () -> Void) -> Double {
            let clock = ContinuousClock()
            var samples: [Double] = []
            samples.reserveCapacity(runs)
            for _ in 0..<runs {
                let elapsed = clock.measure(body)
                samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
            }
            samples.sort()
            return samples[samples.count / 2]
        }

        func countTokens(_ text: String) -> Int {
            var tokens = 0
            var inToken = false
            for byte in text.utf8 {
                let blank = byte == 32 || byte == 9 || byte == 10 || byte == 13
                if !blank && !inToken { tokens += 1 }
                inToken = !blank
            }
            return tokens
        }
    }
}

/// Keeps a value alive so the optimizer cannot drop the work that produced it.
@inline(never)
func blackHole(_ value: Int) {
    if value == Int.min { print("") }
}
