import ArgumentParser
import Foundation
import TopoEngine

struct TopoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topo",
        abstract: "GPU topology: show affinity groups, generate and check gres.conf.",
        subcommands: [Show.self, GresConfCommand.self, Check.self])

    enum InputFormat: String, ExpressibleByArgument, CaseIterable {
        case auto, nvidiaSmi = "nvidia-smi", rocmSmi = "rocm-smi", gresConf = "gres-conf"
    }

    /// A topology source: `nvidia-smi topo -m` or `rocm-smi --showtopo` text, or gres.conf.
    struct Input: ParsableArguments {
        @Argument(help: "Topology text (nvidia-smi topo -m, rocm-smi --showtopo) or gres.conf; - for stdin.")
        var file: String

        @Option(name: .customLong("input-format"), help: "auto, nvidia-smi, rocm-smi or gres-conf.")
        var inputFormat: InputFormat = .auto

        @Option(name: .customLong("slurm-conf"), help: "slurm.conf, for the node's socket layout (gres.conf input).")
        var slurmConf: String?

        @Option(help: "Node to read from gres.conf (default: the first node it names).")
        var node: String?

        @Option(name: .customLong("cores-per-socket"),
                help: "CPUs per socket, to group GPUs by socket from their CPU affinity (nvidia-smi input).")
        var coresPerSocket: Int?

        func validate() throws {
            if let coresPerSocket, coresPerSocket < 1 { throw ValidationError("--cores-per-socket must be at least 1") }
        }

        func load() throws -> ParsedTopology {
            let text = try readInput(file)
            let name = file == "-" ? "<stdin>" : file
            var format = inputFormat
            if format == .auto { format = Self.detect(text) }
            do {
                var parsed: ParsedTopology
                switch format {
                case .rocmSmi: parsed = try RocmSmiTopo.parse(text, file: name)
                case .gresConf:
                    let conf = try GresConf.parse(text, file: name)
                    var nodes: [SlurmNodeSpec] = []
                    if let slurmConf {
                        nodes = try SlurmConfNodes.parse(try readInput(slurmConf), file: slurmConf)
                    }
                    let node = self.node ?? conf.nodeNames.first ?? ""
                    parsed = try NodeTopology.fromGresConf(conf, node: node,
                                                           slurmNode: nodes.first { $0.names.contains(node) })
                default: parsed = try NvidiaSmiTopo.parse(text, file: name)
                }
                if let coresPerSocket { parsed.topology.assignSockets(coresPerSocket: coresPerSocket) }
                return parsed
            } catch let error as TextDiagnostic {
                throw CLIError.input(error.description)
            }
        }

        /// rocm-smi tables, gres.conf words, else nvidia-smi.
        static func detect(_ text: String) -> InputFormat {
            if text.contains("between two GPUs") { return .rocmSmi }
            for line in text.split(separator: "\n") {
                let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard let first = words.first, !first.hasPrefix("#") else { continue }
                let key = first.lowercased()
                if key.hasPrefix("name=") || key.hasPrefix("nodename=") || key.hasPrefix("autodetect=") { return .gresConf }
            }
            return .nvidiaSmi
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show GPUs, their links and the affinity groups at every level.",
            discussion: """
                Levels from the tightest: nvlink (direct GPU links: NVLink or XGMI), pcie-switch, \
                host-bridge, numa, socket, node. A group holds GPUs that are pairwise at that level \
                or closer; the alignment of a GPU set is the tightest level with one group holding it.
                """)

        @OptionGroup var input: Input
        @OptionGroup var output: FormatOption

        func run() throws {
            let parsed: ParsedTopology
            let table: AffinityTable
            do {
                parsed = try input.load()
                table = try AffinityTable(parsed.topology)
            } catch let error as CLIError {
                throw error.exit()
            } catch {
                throw CLIError.input("\(input.file): \(error)").exit()
            }
            for warning in parsed.warnings { printError("warning: \(warning)") }
            let report = TopologyReport(parsed: parsed, table: table, file: input.file)
            switch output.format {
            case .json: try printJSON(report)
            case .text: print(report.text(table: table, parsed: parsed), terminator: "")
            }
        }
    }

    struct GresConfCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gres-conf",
            abstract: "Write gres.conf GPU lines (File, Cores, Links) from nvidia-smi or rocm-smi topology text.")

        @Argument(help: "nvidia-smi topo -m or rocm-smi --showtopo output; - for stdin.")
        var file: String

        @Option(name: .customLong("input-format"), help: "auto, nvidia-smi or rocm-smi.")
        var inputFormat: InputFormat = .auto

        @Option(name: .customLong("node-name"), help: "NodeName= for every line (a Slurm host list, e.g. gpu[01-16]).")
        var nodeName: String?

        @Option(name: .customLong("file-pattern"),
                help: "Device path, %d = device number (default /dev/nvidia%d, AMD /dev/dri/renderD%d from 128).")
        var filePattern: String?

        @Option(name: .customLong("file-base"), help: "Number of the first device in --file-pattern.")
        var fileBase: Int?

        @Option(help: "Type= for every line (e.g. a100).")
        var type: String?

        func validate() throws {
            if inputFormat == .gresConf { throw ValidationError("gres-conf reads nvidia-smi or rocm-smi output, not gres.conf") }
            for (name, value) in [("--node-name", nodeName), ("--type", type), ("--file-pattern", filePattern)] {
                if let value, value.isEmpty || value.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "#" }) {
                    throw ValidationError("\(name) must be one word without spaces or '#'")
                }
            }
            if let fileBase, fileBase < 0 { throw ValidationError("--file-base must not be negative") }
        }

        func run() throws {
            let parsed: ParsedTopology
            do {
                let text = try readInput(file)
                let name = file == "-" ? "<stdin>" : file
                var format = inputFormat
                if format == .auto { format = Input.detect(text) }
                if format == .gresConf { throw CLIError.input("\(name): this is gres.conf already; give nvidia-smi or rocm-smi output") }
                do {
                    parsed = format == .rocmSmi ? try RocmSmiTopo.parse(text, file: name) : try NvidiaSmiTopo.parse(text, file: name)
                } catch {
                    throw CLIError.input(error.description)
                }
            } catch let error as CLIError {
                throw error.exit()
            }
            for warning in parsed.warnings { printError("warning: \(warning)") }
            let output = GresConfGenerator.generate(
                parsed, source: file == "-" ? "<stdin>" : (file as NSString).lastPathComponent,
                options: .init(nodeName: nodeName, filePattern: filePattern, fileBase: fileBase, type: type))
            print(output.text, terminator: "")
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check gres.conf: Links= symmetry and completeness, Cores=, GPU counts against slurm.conf.",
            discussion: """
                Without a file, checks the site's gres.conf and slurm.conf (beside $SLURM_CONF, else \
                /etc/slurm). With --topology, also compares Links= and Cores= with the machine's \
                nvidia-smi or rocm-smi output. Exit status 1 when an error is found.
                """)

        @Argument(help: "gres.conf to check (default: beside slurm.conf).")
        var file: String?

        @Option(name: .customLong("slurm-conf"), help: "slurm.conf, for node GPU counts and socket layout.")
        var slurmConf: String?

        @Option(help: "nvidia-smi topo -m or rocm-smi --showtopo output of the nodes' machine type.")
        var topology: String?

        @OptionGroup var output: FormatOption

        func run() throws {
            let gresPath = file ?? sitePaths().gresConf
            let slurmPath = slurmConf ?? (file == nil ? sitePaths().slurmConf : nil)
            let findings: [GresConfFinding]
            do {
                let conf: GresConf
                var nodes: [SlurmNodeSpec] = []
                var reference: ParsedTopology?
                do {
                    conf = try GresConf.parse(try readInput(gresPath), file: gresPath)
                    if let slurmPath { nodes = try SlurmConfNodes.parse(try readInput(slurmPath), file: slurmPath) }
                    if let topology {
                        let text = try readInput(topology)
                        reference = Input.detect(text) == .rocmSmi
                            ? try RocmSmiTopo.parse(text, file: topology) : try NvidiaSmiTopo.parse(text, file: topology)
                    }
                } catch let error as TextDiagnostic {
                    throw CLIError.input(error.description)
                }
                findings = GresConfChecker.check(conf, slurmNodes: nodes, slurmFile: slurmPath ?? "slurm.conf",
                                                 topology: reference)
            } catch let error as CLIError {
                throw error.exit()
            }
            let errors = findings.filter { $0.severity == .error }.count
            switch output.format {
            case .json:
                try printJSON(CheckReport(file: gresPath, slurmConf: slurmPath, topology: topology,
                                          findings: findings.map(CheckReport.Finding.init), errors: errors,
                                          warnings: findings.count - errors))
            case .text:
                for finding in findings { print(finding) }
                print("\(gresPath): \(errors) error(s), \(findings.count - errors) warning(s)")
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }
}

/// JSON shape of `topo check` (documented in docs/reference.md).
struct CheckReport: Encodable {
    struct Finding: Encodable {
        var severity: String
        var file: String
        var line: Int
        var message: String
        init(_ finding: GresConfFinding) {
            severity = finding.severity.rawValue
            file = finding.file
            line = finding.line
            message = finding.message
        }
    }

    var file: String
    var slurmConf: String?
    var topology: String?
    var findings: [Finding]
    var errors: Int
    var warnings: Int
}

/// JSON shape of `topo show` (documented in docs/reference.md).
struct TopologyReport: Encodable {
    struct GPU: Encodable {
        var index: Int
        var name: String
        var cpus: String?
        var numaNode: Int?
        var socket: Int?
        var file: String?
    }

    var file: String
    var source: String
    var gpus: [GPU]
    var otherDevices: [String]
    /// paths[i][j] as nvidia-smi prints it (NV#, PIX, ...), "X" on the diagonal, "-" unknown.
    var paths: [[String]]
    /// level name → groups (GPU index lists).
    var groups: [String: [[Int]]]
    var largestGroup: [String: Int]
    var warnings: [String]

    init(parsed: ParsedTopology, table: AffinityTable, file: String) {
        self.file = file
        source = parsed.source.rawValue
        let topology = parsed.topology
        gpus = topology.gpus.map { gpu in
            GPU(index: gpu.index, name: parsed.gpuNames.indices.contains(gpu.index) ? parsed.gpuNames[gpu.index] : "GPU\(gpu.index)",
                cpus: gpu.cpus.map { RangeList.format($0) }, numaNode: gpu.numaNode, socket: gpu.socket, file: gpu.file)
        }
        otherDevices = parsed.otherDevices
        paths = topology.gpus.indices.map { i in
            topology.gpus.indices.map { j in i == j ? "X" : topology.paths[i][j].description }
        }
        var groups: [String: [[Int]]] = [:]
        var largest: [String: Int] = [:]
        for level in AffinityLevel.allCases {
            groups[level.name] = table.groups(at: level).map(\.gpus.indices)
            largest[level.name] = table.largestGroup(at: level)
        }
        self.groups = groups
        largestGroup = largest
        warnings = parsed.warnings.map(\.description)
    }

    func text(table: AffinityTable, parsed: ParsedTopology) -> String {
        var out = "\(file): \(source), \(gpus.count) GPU(s)"
        if !otherDevices.isEmpty { out += ", other devices: \(otherDevices.joined(separator: " "))" }
        out += "\n\n"
        // Link matrix with affinity columns.
        let width = max(5, gpus.map(\.name.count).max() ?? 4) + 1
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(1, n - s.count)) }
        out += pad("", width) + gpus.map { pad($0.name, width) }.joined() + "CPUs / NUMA / socket\n"
        for (i, gpu) in gpus.enumerated() {
            out += pad(gpu.name, width) + paths[i].map { pad($0, width) }.joined()
            out += [gpu.cpus ?? "-", gpu.numaNode.map(String.init) ?? "-", gpu.socket.map(String.init) ?? "-"].joined(separator: " / ")
            out += "\n"
        }
        // Tree: each distinct GPU set once, labelled with every level it is a group at.
        var levelsOf: [GPUSet: [AffinityLevel]] = [:]
        for level in AffinityLevel.allCases {
            for group in table.groups(at: level) { levelsOf[group.gpus, default: []].append(level) }
        }
        let sets = levelsOf.keys.sorted { a, b in a.count != b.count ? a.count > b.count : a.indices.lexicographicallyPrecedes(b.indices) }
        var children: [GPUSet: [GPUSet]] = [:]
        for set in sets where set != table.topology.allGPUs {
            // Parent: the smallest strict superset among the groups.
            let parent = sets.filter { $0 != set && set.isSubset(of: $0) }.min { $0.count < $1.count } ?? table.topology.allGPUs
            children[parent, default: []].append(set)
        }
        out += "\naffinity groups (a group is listed under the smallest group holding it):\n"
        func render(_ set: GPUSet, _ depth: Int) {
            let levels = (levelsOf[set] ?? []).map(\.name).joined(separator: "/")
            out += String(repeating: "  ", count: depth + 1) + "{\(set)} \(levels)\n"
            for child in (children[set] ?? []).sorted(by: { $0.indices.lexicographicallyPrecedes($1.indices) }) {
                render(child, depth + 1)
            }
        }
        render(table.topology.allGPUs, 0)
        out += "\nlargest aligned group: "
        out += AffinityLevel.allCases.map { "\($0.name) \(table.largestGroup(at: $0))" }.joined(separator: ", ") + "\n"
        return out
    }
}

/// Reads a file, or stdin for "-", as UTF-8 (invalid bytes replaced); at most 16 MiB.
func readInput(_ path: String) throws -> String {
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file"
            throw CLIError.input("\(path): cannot read: \(reason)")
        }
        defer { try? handle.close() }
        data = (try? handle.read(upToCount: 16 << 20)) ?? Data()
    }
    return String(decoding: data, as: UTF8.self)
}
