/// The GPU request of a submission, as Slurm's `job_desc_msg_t` carries it.
public struct GPURequest: Sendable, Equatable {
    /// `--gres`/`--gpus-per-node`: e.g. `gres:gpu:4`, `gres:gpu:a100:2,gres:mps:100`.
    public var tresPerNode: String?
    /// `--gpus-per-socket`.
    public var tresPerSocket: String?
    /// `--gpus`.
    public var tresPerJob: String?
    /// `--gpus-per-task`.
    public var tresPerTask: String?
    /// `-N` bounds; nil when not given.
    public var minNodes: Int?
    public var maxNodes: Int?
    /// `--sockets-per-node`; nil when not given.
    public var socketsPerNode: Int?

    public init(tresPerNode: String? = nil, tresPerSocket: String? = nil, tresPerJob: String? = nil,
                tresPerTask: String? = nil, minNodes: Int? = nil, maxNodes: Int? = nil, socketsPerNode: Int? = nil) {
        self.tresPerNode = tresPerNode
        self.tresPerSocket = tresPerSocket
        self.tresPerJob = tresPerJob
        self.tresPerTask = tresPerTask
        self.minNodes = minNodes
        self.maxNodes = maxNodes
        self.socketsPerNode = socketsPerNode
    }

    /// GPUs the job needs on each node it runs on, when the request says so unambiguously.
    public func gpusPerNode() throws(GresString.Failure) -> Int? {
        if try GresString.gpuCount(inTRES: tresPerTask) > 0 { return nil }
        let socket = try GresString.gpuCount(inTRES: tresPerSocket)
        if socket > 0 { return socketsPerNode == 1 ? socket : nil }
        let node = try GresString.gpuCount(inTRES: tresPerNode)
        if node > 0 { return node }
        let job = try GresString.gpuCount(inTRES: tresPerJob)
        if job > 0 { return maxNodes == 1 ? job : nil }
        return 0
    }
}

/// What the cluster's topology allows, summarised for job_submit: per level the largest aligned
/// group any node has, and whether each level's groups are exactly one socket's GPUs.
public struct TopologySummary: Sendable, Equatable {
    /// Largest group per level (index = `AffinityLevel.rawValue`), over all GPU nodes.
    public var largestGroup: [Int]
    /// Per level: on every GPU node the groups at this level are exactly the GPUs of each
    /// socket (as Slurm binds them through gres.conf `Cores=`), so `--gpus-per-socket` aligns.
    public var socketLevel: [Bool]
    /// GPU nodes summarised.
    public var nodeCount: Int
    /// Example groups of the first node, for messages: level → "0-3 4-7".
    public var exampleGroups: [String]

    public init(_ cluster: ClusterTopology, socketsKnown: (String) -> Bool = { _ in true }) {
        largestGroup = AffinityLevel.allCases.map { cluster.largestGroup(at: $0) }
        nodeCount = cluster.nodes.count
        exampleGroups = AffinityLevel.allCases.map { level in
            cluster.nodes.first?.table.groups(at: level).map { "{\($0.gpus)}" }.joined(separator: " ") ?? ""
        }
        socketLevel = AffinityLevel.allCases.map { level in
            guard !cluster.nodes.isEmpty, level != .node else { return false }
            return cluster.nodes.allSatisfy { node in
                guard socketsKnown(node.name) else { return false }
                let topology = node.table.topology
                var bySocket: [Int: GPUSet] = [:]
                for gpu in topology.gpus {
                    guard let socket = gpu.socket else { return false }
                    bySocket[socket, default: GPUSet()].insert(gpu.index)
                }
                guard bySocket.count > 1 else { return false }  // one socket: shaping adds nothing
                let groups = Set(node.table.groups(at: level).map(\.gpus))
                return groups == Set(bySocket.values)
            }
        }
    }

    public func largestGroup(at level: AffinityLevel) -> Int { largestGroup[level.rawValue] }

    /// The cluster's topology and its summary from slurm.conf and gres.conf. Sockets count as
    /// known (for shaping) only on nodes whose slurm.conf line gives `CoresPerSocket`, the
    /// layout Slurm itself binds `Cores=` with.
    public static func build(slurmNodes: [SlurmNodeSpec], gresConf: GresConf) -> (summary: TopologySummary, cluster: ClusterTopology) {
        let cluster = ClusterTopology(slurmNodes: slurmNodes, gresConf: gresConf)
        let exact = Set(slurmNodes.filter { $0.coresPerSocket != nil }.flatMap(\.names))
        return (TopologySummary(cluster, socketsKnown: { exact.contains($0) }), cluster)
    }
}

/// What job_submit does with a preemptor's GPU request given the cluster's topology.
public enum TopologyDecision: Sendable, Equatable {
    /// Leave the request as it is.
    case unchanged
    /// No node can ever give this many GPUs aligned at the required level (guaranteed mode).
    case reject(message: String)
    /// Rewrite `--gres=gpu[:type]:N` to `--gpus-per-socket=N --sockets-per-node=1`.
    case shape(ShapedRequest)
}

public struct ShapedRequest: Sendable, Equatable {
    /// New `tres_per_node` (the request's other GRES), nil when nothing else was asked.
    public var tresPerNode: String?
    /// New `tres_per_socket`, e.g. `gres/gpu:4` (`gres:gpu:4` on Slurm 22.05).
    public var tresPerSocket: String
    public var socketsPerNode: Int
    public var gpus: Int
    /// Recorded in AdminComment: `gpus-per-socket:4`.
    public var tag: String
    /// Shown to the sbatch user.
    public var notice: String
}

/// How a Slurm release writes a GRES in TRES strings (`tres_per_node`, `tres_per_socket`):
/// `gres:gpu:4` up to 22.05, `gres/gpu:4` from 23.02. Slurm converts the old form only for
/// messages from older clients, before job_submit runs, so the plugin writes its release's form.
/// The release's value comes from the C compatibility layer (`CSlurmShim_tres_gres_prefix`).
public enum TRESSyntax: Sendable, Equatable {
    /// `gres:gpu:4` (Slurm 22.05).
    case colon
    /// `gres/gpu:4` (Slurm 23.02 and later).
    case slash

    /// `gres:` or `gres/`.
    public var gresPrefix: String { self == .colon ? "gres:" : "gres/" }

    /// The syntax whose GRES prefix is `prefix`; nil for anything else.
    public init?(gresPrefix prefix: String) {
        switch prefix {
        case "gres:": self = .colon
        case "gres/": self = .slash
        default: return nil
        }
    }
}

/// Applies the topology to a classified submission. Pure and total: any request it cannot read
/// is left unchanged (stock Slurm decides), never rejected for being unusual.
public struct TopologyPolicy: Sendable {
    public var summary: TopologySummary
    public var shapeRequests: Bool
    /// The form shaped requests are written in (the running Slurm release's).
    public var tresSyntax: TRESSyntax

    public init(summary: TopologySummary, shapeRequests: Bool, tresSyntax: TRESSyntax) {
        self.summary = summary
        self.shapeRequests = shapeRequests
        self.tresSyntax = tresSyntax
    }

    public func decide(_ classification: JobClassification, _ request: GPURequest) -> TopologyDecision {
        guard case let .preemptor(_, level, mode, _) = classification, mode == .guaranteed,
              summary.nodeCount > 0,
              let perNode = try? request.gpusPerNode(), perNode > 0
        else { return .unchanged }
        let largest = summary.largestGroup(at: level)
        if perNode > largest {
            let nodeLargest = summary.largestGroup(at: .node)
            guard perNode <= nodeLargest else {
                return .reject(message: "topo_aware: \(perNode) GPUs per node: no node of this cluster has more than \(nodeLargest) GPUs")
            }
            var message = "topo_aware: \(perNode) GPUs per node can never be \(level.name)-aligned on this cluster: "
                + "the largest \(level.name) group has \(largest) GPU\(largest == 1 ? "" : "s")"
            let example = summary.exampleGroups[level.rawValue]
            if !example.isEmpty { message += " (\(example) on each node)" }
            message += ". Ask for at most \(largest) GPU\(largest == 1 ? "" : "s") per node"
            if let fits = AffinityLevel.allCases.first(where: { summary.largestGroup(at: $0) >= perNode }) {
                message += ", or use --gpu-affinity=\(fits.name)"
            }
            message += " or --gpu-affinity=best-effort"
            return .reject(message: message)
        }
        // From Slurm 23.02, `-c N` also arrives as tres_per_task `cpu=N`: only GPUs per task
        // (`--gpus-per-task`) leave the request as it is.
        guard shapeRequests, summary.socketLevel[level.rawValue], request.socketsPerNode == nil || request.socketsPerNode == 1,
              request.tresPerSocket == nil, request.tresPerJob == nil,
              (try? GresString.gpuCount(inTRES: request.tresPerTask)) == 0,
              let node = request.tresPerNode
        else { return .unchanged }
        // Exactly one GPU entry, `gres:gpu:N`, `gres/gpu:TYPE:N`, ...; other GRES stay per node.
        var gpuEntries: [Substring] = []
        var others: [Substring] = []
        for item in node.split(separator: ",") {
            let body = item.hasPrefix("gres:") || item.hasPrefix("gres/") ? item.dropFirst(5) : item
            if body == "gpu" || body.hasPrefix("gpu:") { gpuEntries.append(body) } else { others.append(item) }
        }
        guard gpuEntries.count == 1, let entry = gpuEntries.first else { return .unchanged }
        // `gpu:N` or `gpu:TYPE:N` only: anything else (Slurm 24.11+ accepts `gpu:1:2:3`) is
        // left as Slurm read it.
        let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return .unchanged }
        let typePart = parts.count == 3 ? ":\(parts[1])" : ""
        let tres = "\(tresSyntax.gresPrefix)gpu\(typePart):\(perNode)"
        let groups = summary.exampleGroups[level.rawValue]
        return .shape(ShapedRequest(
            tresPerNode: others.isEmpty ? nil : others.joined(separator: ","),
            tresPerSocket: tres, socketsPerNode: 1, gpus: perNode,
            tag: "gpus-per-socket:\(perNode)",
            notice: "topo_aware: GPU request shaped to --gpus-per-socket=\(perNode) --sockets-per-node=1: "
                + "the \(level.name) groups \(groups) are one socket each, so the job waits for (or preempts for) aligned GPUs"))
    }
}
