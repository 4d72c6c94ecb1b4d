/// The cluster as libslurm reports it (`slurm_load_jobs` with SHOW_DETAIL, `slurm_load_node`,
/// `slurm_load_partitions`), copied into plain values by SlurmBridge. Pure data: the engine
/// turns it into a planning snapshot and audits it.
public struct LiveState: Sendable, Equatable {
    public struct Job: Sendable, Equatable {
        public enum State: Sendable, Equatable { case pending, running, other }
        public var id: UInt32
        public var name: String?
        public var state: State
        public var partition: String?
        public var adminComment: String?
        public var startTime: Int64
        /// Node indices (into `nodes`) the job holds, ascending, and the matching
        /// `gres_detail_str` entries (`gpu:4(IDX:0-1,4-5)`).
        public var nodeIndices: [Int]
        public var gresDetail: [String]
        public var tresPerNode: String?
        public var tresPerSocket: String?
        public var socketsPerNode: Int?
        public var numNodes: Int
        public var numCPUs: Int
        /// Nodes the job must use (`-w`), as node indices; empty when not given.
        public var requiredNodeIndices: [Int]
        /// The job's owner (uid); nil when not known.
        public var userID: UInt32? = nil

        public init(id: UInt32, name: String? = nil, state: State, partition: String?, adminComment: String? = nil,
                    startTime: Int64, nodeIndices: [Int] = [], gresDetail: [String] = [], tresPerNode: String? = nil,
                    tresPerSocket: String? = nil, socketsPerNode: Int? = nil, numNodes: Int = 1, numCPUs: Int = 1,
                    requiredNodeIndices: [Int] = []) {
            self.requiredNodeIndices = requiredNodeIndices
            self.id = id
            self.name = name
            self.state = state
            self.partition = partition
            self.adminComment = adminComment
            self.startTime = startTime
            self.nodeIndices = nodeIndices
            self.gresDetail = gresDetail
            self.tresPerNode = tresPerNode
            self.tresPerSocket = tresPerSocket
            self.socketsPerNode = socketsPerNode
            self.numNodes = numNodes
            self.numCPUs = numCPUs
        }
    }

    public struct Node: Sendable, Equatable {
        public var name: String
        /// False when down, drained, failing, not responding or powered down.
        public var available: Bool
        public init(name: String, available: Bool) {
            self.name = name
            self.available = available
        }
    }

    public struct Partition: Sendable, Equatable {
        public var name: String
        public var priorityTier: Int
        /// False for PreemptMode=OFF: its jobs are never preempted.
        public var preemptable: Bool
        public var nodeIndices: [Int]
        public init(name: String, priorityTier: Int, preemptable: Bool, nodeIndices: [Int]) {
            self.name = name
            self.priorityTier = priorityTier
            self.preemptable = preemptable
            self.nodeIndices = nodeIndices
        }
    }

    public var jobs: [Job]
    public var nodes: [Node]
    public var partitions: [Partition]
    public var time: Int64

    public init(jobs: [Job], nodes: [Node], partitions: [Partition], time: Int64) {
        self.jobs = jobs
        self.nodes = nodes
        self.partitions = partitions
        self.time = time
    }

    /// Slurm's `node_inx` pairs (`start, end, start, end, ..., -1`) as indices, bounded.
    public static func expandIndexPairs(_ pairs: [Int32], nodeCount: Int) -> [Int] {
        var result: [Int] = []
        var i = 0
        while i + 1 < pairs.count, pairs[i] >= 0 {
            let low = Int(pairs[i]), high = Int(pairs[i + 1])
            if low <= high, high < nodeCount { result.append(contentsOf: low...high) }
            i += 2
        }
        return result
    }
}

/// Builds planning snapshots from the live state and the cluster's topology files.
public enum SnapshotBuilder {
    public struct Result: Sendable {
        public var snapshot: ClusterSnapshot
        /// Problems met (a job's GRES detail that does not parse, a node without topology).
        public var warnings: [String]
    }

    /// Running jobs become snapshot jobs (priority = their partition's PriorityTier, preemptible
    /// unless the partition has PreemptMode=OFF or the job is in a preemptor class); nodes
    /// without a known GPU layout are left out.
    public static func build(_ state: LiveState, topology: ClusterTopology, config: TopoAwareConfig?,
                             switches: SwitchTopology? = nil) -> Result {
        var warnings: [String] = []
        var layouts: [ClusterSnapshot.LayoutSpec] = []
        var layoutIndex: [ClusterSnapshot.LayoutSpec: Int] = [:]
        var snapshotNode: [Int: Int] = [:]  // live node index -> snapshot node index
        var nodes: [ClusterSnapshot.NodeState] = []
        let byName = Dictionary(topology.nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (i, node) in state.nodes.enumerated() {
            guard let known = byName[node.name] else { continue }
            let spec = ClusterSnapshot.LayoutSpec(known.table.topology)
            let layout = layoutIndex[spec] ?? {
                layouts.append(spec)
                layoutIndex[spec] = layouts.count - 1
                return layouts.count - 1
            }()
            snapshotNode[i] = nodes.count
            nodes.append(.init(name: node.name, layout: layout, available: node.available, leafSwitch: switches?.leafOf[node.name]))
        }
        let partitions = Dictionary(state.partitions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var jobs: [ClusterSnapshot.RunningJob] = []
        for job in state.jobs where job.state == .running {
            var allocations: [ClusterSnapshot.RunningJob.Allocation] = []
            for (position, liveNode) in job.nodeIndices.enumerated() {
                guard let node = snapshotNode[liveNode], position < job.gresDetail.count else { continue }
                do {
                    let gpus = try GresString.parse(job.gresDetail[position])
                        .filter { asciiLowercased($0.name) == "gpu" }
                        .reduce(GPUSet()) { $0.union($1.indices ?? GPUSet()) }
                    if !gpus.isEmpty { allocations.append(.init(node: node, gpus: gpus)) }
                } catch {
                    warnings.append("job \(job.id): GRES detail \(error)")
                }
            }
            guard !allocations.isEmpty else { continue }
            let partition = job.partition.flatMap { partitions[$0] }
            let classification = AdminCommentTag.parse(adminComment: job.adminComment)
            var preemptible = partition?.preemptable ?? true
            if case .preemptor = classification { preemptible = false }
            jobs.append(.init(id: job.id, name: job.name, partition: job.partition, priority: partition?.priorityTier ?? 0,
                              startTime: job.startTime, preemptible: preemptible, allocations: allocations))
        }
        return Result(snapshot: ClusterSnapshot(layouts: layouts, nodes: nodes, jobs: jobs, time: state.time), warnings: warnings)
    }

    /// The planning request of a pending job: GPUs per node from its GRES request, level and
    /// mode from its AdminComment tag (else the config's defaults), priority from its partition.
    public static func request(for job: LiveState.Job, in state: LiveState, config: TopoAwareConfig?) throws(SnapshotError) -> PreemptorRequest {
        let gpuRequest = GPURequest(tresPerNode: job.tresPerNode, tresPerSocket: job.tresPerSocket,
                                    maxNodes: job.numNodes, socketsPerNode: job.socketsPerNode)
        guard let perNode = try? gpuRequest.gpusPerNode(), perNode > 0 else {
            throw SnapshotError("job \(job.id) asks for no GPUs per node that the planner can read (tres_per_node=\(job.tresPerNode ?? "-"), tres_per_socket=\(job.tresPerSocket ?? "-"))")
        }
        var level = config?.defaultLevel ?? .nvlink
        var mode = config?.defaultMode ?? .guaranteed
        if case let .preemptor(_, tagLevel, tagMode, _)? = AdminCommentTag.parse(adminComment: job.adminComment) {
            level = tagLevel
            mode = tagMode
        }
        let partitions = (job.partition ?? "").split(separator: ",").map(String.init)
        let tiers = state.partitions.filter { partitions.contains($0.name) }
        var indices = Set(tiers.flatMap(\.nodeIndices))
        if !job.requiredNodeIndices.isEmpty {
            indices = indices.isEmpty ? Set(job.requiredNodeIndices) : indices.intersection(job.requiredNodeIndices)
        }
        let nodes = Set(indices.compactMap { state.nodes.indices.contains($0) ? state.nodes[$0].name : nil })
        let shape: RequestShape = (try? GresString.gpuCount(inTRES: job.tresPerSocket)) ?? 0 > 0 ? .perSocket : .perNode
        return PreemptorRequest(jobID: job.id, gpusPerNode: perNode, nodeCount: max(1, job.numNodes), level: level, mode: mode,
                                priority: tiers.map(\.priorityTier).max() ?? 0, shape: shape,
                                cpusPerNode: max(1, job.numCPUs / max(1, job.numNodes)),
                                candidateNodes: nodes.isEmpty ? nil : nodes)
    }
}


/// One running preemptor and how aligned its GPUs are.
public struct AuditEntry: Sendable, Equatable {
    public var jobID: UInt32
    public var name: String?
    public var className: String
    public var required: AffinityLevel
    public var mode: PlacementMode
    /// Node name and GPUs, per node.
    public var gpus: [(node: String, gpus: GPUSet)]
    public var reached: AffinityLevel
    public var aligned: Bool

    public static func == (a: AuditEntry, b: AuditEntry) -> Bool {
        a.jobID == b.jobID && a.className == b.className && a.required == b.required && a.mode == b.mode
            && a.reached == b.reached && a.gpus.map(\.node) == b.gpus.map(\.node) && a.gpus.map(\.gpus) == b.gpus.map(\.gpus)
    }
}

public enum Audit {
    /// Running jobs tagged as preemptors, with the alignment level of the GPUs they hold (the
    /// worst over their nodes).
    public static func preemptors(_ state: LiveState, topology: ClusterTopology) -> [AuditEntry] {
        let tables = Dictionary(topology.nodes.map { ($0.name, $0.table) }, uniquingKeysWith: { first, _ in first })
        var entries: [AuditEntry] = []
        for job in state.jobs where job.state == .running {
            guard case let .preemptor(className, level, mode, _)? = AdminCommentTag.parse(adminComment: job.adminComment) else {
                continue
            }
            var held: [(node: String, gpus: GPUSet)] = []
            var reached = AffinityLevel.nvlink
            for (position, liveNode) in job.nodeIndices.enumerated()
            where state.nodes.indices.contains(liveNode) && position < job.gresDetail.count {
                let name = state.nodes[liveNode].name
                let gpus = ((try? GresString.parse(job.gresDetail[position])) ?? [])
                    .filter { asciiLowercased($0.name) == "gpu" }
                    .reduce(GPUSet()) { $0.union($1.indices ?? GPUSet()) }
                held.append((name, gpus))
                if let table = tables[name] { reached = max(reached, table.alignment(of: gpus)) } else { reached = .node }
            }
            entries.append(AuditEntry(jobID: job.id, name: job.name, className: className, required: level, mode: mode,
                                      gpus: held, reached: reached, aligned: reached <= level))
        }
        return entries
    }
}
