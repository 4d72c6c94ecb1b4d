/// GPU topology of one node as Slurm knows it: gres.conf `Links=`/`Cores=`, and, when the
/// node's slurm.conf line is known, its socket layout.
extension NodeTopology {
    /// Builds the topology of `node` from its gres.conf GPU lines (in file order, which is
    /// Slurm's device numbering for `Links=`).
    ///
    /// Pairs with `Links=` > 0 are NVLink peers; other pairs are only known to share a socket
    /// when both GPUs' `Cores=` start in one socket (`CoresPerSocket` of the slurm.conf node), or,
    /// with no slurm.conf line, when they have identical `Cores=` lists.
    public static func fromGresConf(_ conf: GresConf, node: String,
                                    slurmNode: SlurmNodeSpec? = nil) throws(TextDiagnostic) -> ParsedTopology {
        try fromGresEntries(conf.gpuEntries(for: node), file: conf.file, node: node, slurmNode: slurmNode)
    }

    /// As `fromGresConf`, from the node's GPU lines already selected (in file order).
    public static func fromGresEntries(_ entries: [GresConfEntry], file: String, node: String,
                                       slurmNode: SlurmNodeSpec? = nil) throws(TextDiagnostic) -> ParsedTopology {
        func fail(_ line: Int, _ message: String) -> TextDiagnostic {
            TextDiagnostic(file: file, location: SourceLocation(line: line, column: 1), message: message)
        }
        guard !entries.isEmpty else {
            throw fail(1, "no Name=gpu lines for node \(printable(node))")
        }
        var gpus: [GPUInfo] = []
        var links: [[Int]?] = []
        var lines: [Int] = []
        for entry in entries {
            let devices = entry.deviceCount
            guard gpus.count + devices <= GPUSet.capacity else {
                throw fail(entry.line, "node \(printable(node)) has more than \(GPUSet.capacity) GPUs")
            }
            for d in 0..<devices {
                gpus.append(GPUInfo(index: gpus.count, cpus: entry.cores,
                                    file: d < entry.files.count ? entry.files[d] : nil, type: entry.type))
                links.append(entry.links)
                lines.append(entry.line)
            }
        }
        let count = gpus.count
        var paths = Array(repeating: Array(repeating: GPUPath.unknown, count: count), count: count)
        var warnings: [TextDiagnostic] = []
        for i in 0..<count {
            guard let row = links[i] else { continue }
            if row.count != count {
                warnings.append(fail(lines[i], "Links= of GPU \(i) has \(row.count) values but node \(node) has \(count) GPUs"))
            }
            if let selfIndex = row.firstIndex(of: -1), selfIndex != i {
                warnings.append(fail(lines[i], "Links= of GPU \(i) marks position \(selfIndex) as itself (-1)"))
            }
            for j in 0..<min(count, row.count) where j != i && row[j] > 0 {
                paths[i][j] = .gpuLink(links: row[j])
            }
        }
        for (i, j) in NodeTopology.asymmetricPairs(paths) {
            warnings.append(fail(lines[i], "Links= of GPUs \(i) and \(j) disagree (\(paths[i][j].gresLinkCount) vs \(paths[j][i].gresLinkCount)); using the smaller"))
        }
        var topology: NodeTopology
        do { topology = try NodeTopology(gpus: gpus, paths: paths) } catch {
            throw fail(entries[0].line, error.description)
        }
        if let perSocket = slurmNode?.coresPerSocket {
            topology.assignSockets(coresPerSocket: perSocket)
        } else {
            topology.assignSocketsByIdenticalCores()
        }
        return ParsedTopology(source: .gresConf, topology: topology, gpuNames: (0..<count).map { "GPU\($0)" },
                              otherDevices: [], warnings: warnings)
    }

    /// Without a socket layout: GPUs with identical CPU lists are taken to share a socket.
    mutating func assignSocketsByIdenticalCores() {
        var sockets: [[Int]: Int] = [:]
        for i in gpus.indices {
            guard let cpus = gpus[i].cpus else { continue }
            if let socket = sockets[cpus] {
                gpus[i].socket = socket
            } else {
                sockets[cpus] = sockets.count
                gpus[i].socket = sockets[cpus]
            }
        }
    }
}

/// The GPU topology of every node of a cluster, from slurm.conf and gres.conf, with nodes of one
/// layout sharing one `AffinityTable`.
public struct ClusterTopology: Sendable {
    public struct Node: Sendable {
        public var name: String
        public var table: AffinityTable
        /// GPUs slurm.conf declares (`Gres=gpu:N`), when known.
        public var declaredGPUs: Int?
        /// Where the node's `Links=` contradict themselves (asymmetric pairs, rows of the wrong
        /// length, -1 off the diagonal): its table reads them conservatively, but a planner that
        /// must be right about NVLink leaves such a node alone.
        public var linkProblems: [TextDiagnostic] = []
    }

    public var nodes: [Node]
    public var warnings: [TextDiagnostic]
    /// Distinct layouts (AffinityTables computed).
    public var layoutCount: Int

    /// Nodes from slurm.conf with GPUs in `Gres=`, their topology from gres.conf. A node whose
    /// gres.conf lines are missing or broken is left out with a warning (it keeps stock Slurm
    /// behaviour).
    public init(slurmNodes: [SlurmNodeSpec], gresConf: GresConf) {
        var catalog = AffinityCatalog()
        var nodes: [Node] = []
        var warnings: [TextDiagnostic] = []
        let index = gresConf.gpuEntryIndex()
        for spec in slurmNodes where spec.gpuCount > 0 {
            for name in spec.names {
                do {
                    let parsed = try NodeTopology.fromGresEntries(index.byNode[name] ?? index.global, file: gresConf.file,
                                                                  node: name, slurmNode: spec)
                    warnings += parsed.warnings
                    let table = try catalog.table(for: parsed.topology)
                    nodes.append(Node(name: name, table: table, declaredGPUs: spec.gpuCount, linkProblems: parsed.warnings))
                } catch let error as TextDiagnostic {
                    warnings.append(error)
                } catch {
                    warnings.append(TextDiagnostic(file: gresConf.file, location: SourceLocation(line: 1, column: 1),
                                                   message: "node \(name): \(error)"))
                }
            }
        }
        self.nodes = nodes
        self.warnings = warnings
        layoutCount = catalog.count
    }

    /// The largest aligned group at `level` over all nodes (0 when no node is known).
    public func largestGroup(at level: AffinityLevel) -> Int {
        nodes.map { $0.table.largestGroup(at: level) }.max() ?? 0
    }
}
