/// What slurmctld's state looks like to preempt/topo_aware for one preemptor: copied by the C
/// side of the plugin from `job_record_t`, node and GRES state into flat arrays, then into these
/// values by SlurmBridge. Nothing here is trusted: `PreemptController` validates every field.
public struct ControllerSnapshot: Sendable, Equatable {
    public struct Node: Sendable, Equatable {
        public var name: String
        /// False when the node cannot take jobs (down, drained, failing, not responding).
        public var available: Bool
        /// GPUs Slurm counts on the node (its GRES state); 0 when it has none.
        public var gpuCount: Int
        /// GPUs Slurm holds allocated on the node, for running and completing jobs alike.
        public var allocated: GPUSet

        public init(name: String, available: Bool, gpuCount: Int, allocated: GPUSet) {
            self.name = name
            self.available = available
            self.gpuCount = gpuCount
            self.allocated = allocated
        }
    }

    /// A running job holding GPUs.
    public struct Job: Sendable, Equatable {
        public var id: UInt32
        /// Its preemption priority under the base policy (partition PriorityTier or QOS priority).
        public var basePriority: Int
        /// The base policy lets this preemptor preempt it (and its PreemptMode can free GPUs).
        public var eligible: Bool
        public var startTime: Int64
        /// Node index and GPUs held there.
        public var allocations: [Allocation]

        public struct Allocation: Sendable, Equatable {
            public var node: Int
            public var gpus: GPUSet
            public init(node: Int, gpus: GPUSet) {
                self.node = node
                self.gpus = gpus
            }
        }

        /// Slurm already signalled it for preemption (in its GraceTime, or requeueing): its
        /// GPUs are being freed, whichever preemptor it was chosen for.
        public var draining: Bool

        public init(id: UInt32, basePriority: Int, eligible: Bool, startTime: Int64, allocations: [Allocation],
                    draining: Bool = false) {
            self.id = id
            self.basePriority = basePriority
            self.eligible = eligible
            self.startTime = startTime
            self.allocations = allocations
            self.draining = draining
        }
    }

    /// The pending job Slurm asks about.
    public struct Preemptor: Sendable, Equatable {
        public var id: UInt32
        /// Its base-policy priority (ranks preemptors when plans compete for GPUs).
        public var basePriority: Int
        /// Slurm's job priority (the tie-break between preemptors of one base priority).
        public var jobPriority: Int
        public var gpusPerNode: Int
        public var nodeCount: Int
        /// `--gpus-per-socket` with one socket: Slurm counts free GPUs per socket.
        public var perSocket: Bool
        public var cpusPerNode: Int
        public var adminComment: String?
        public var partitions: [String]
        public var qos: String?
        /// Node indices the job may run on (partition, `-w`, `-x`); nil: every node.
        public var candidateNodes: [Int]?
        /// Node indices named by `-w` when fewer than `nodeCount` (each must be one of the job's
        /// nodes); named nodes as many as the job's are its `candidateNodes` instead.
        public var requiredNodes: [Int]
        /// `--segment` (topology/block); 0: none.
        public var segmentSize: Int
        /// `--consolidate-segments`, `--spread-segments`.
        public var segmentPlacement: SegmentPlacement

        public init(id: UInt32, basePriority: Int, jobPriority: Int = 0, gpusPerNode: Int, nodeCount: Int = 1,
                    perSocket: Bool = false, cpusPerNode: Int = 1, adminComment: String? = nil,
                    partitions: [String] = [], qos: String? = nil, candidateNodes: [Int]? = nil,
                    requiredNodes: [Int] = [], segmentSize: Int = 0, segmentPlacement: SegmentPlacement = []) {
            self.segmentPlacement = segmentPlacement
            self.requiredNodes = requiredNodes
            self.segmentSize = max(0, segmentSize)
            self.id = id
            self.basePriority = basePriority
            self.jobPriority = jobPriority
            self.gpusPerNode = gpusPerNode
            self.nodeCount = nodeCount
            self.perSocket = perSocket
            self.cpusPerNode = cpusPerNode
            self.adminComment = adminComment
            self.partitions = partitions
            self.qos = qos
            self.candidateNodes = candidateNodes
        }
    }

    public var time: Int64
    /// PreemptExemptTime in seconds (0: none).
    public var exemptSeconds: Int64
    public var nodes: [Node]
    public var jobs: [Job]
    public var preemptor: Preemptor
    /// Owners of kept plans (`PreemptController.planOwners`) that are still pending.
    public var pendingOwners: Set<UInt32>
    /// The release slurmctld runs (the plugin's build release): its GPU pick is the one planned on.
    public var slurm: SlurmRelease

    public init(time: Int64, exemptSeconds: Int64 = 0, nodes: [Node], jobs: [Job], preemptor: Preemptor,
                pendingOwners: Set<UInt32> = [], slurm: SlurmRelease = .debianBookworm) {
        self.slurm = slurm
        self.time = time
        self.exemptSeconds = exemptSeconds
        self.nodes = nodes
        self.jobs = jobs
        self.preemptor = preemptor
        self.pendingOwners = pendingOwners
    }
}

/// The GPU layouts of the cluster's nodes, by node name, as the planner's snapshot wants them.
/// Built once per topology (re)load.
public struct ControllerTopology: Sendable {
    public var layouts: [ClusterSnapshot.LayoutSpec]
    public var gpuCounts: [Int]
    public var layoutOfNode: [String: Int]
    /// Nodes left to the base policy because their gres.conf `Links=` contradict themselves,
    /// with the first problem found (file:line: message), in node order.
    public var leftOut: [(node: String, problem: String)] = []
    /// Each node's base block (topology.conf of `topology/block`), when the site has blocks:
    /// multi-node plans keep a job inside one block where they can.
    public var blockOfNode: [String: String] = [:]
    /// The levels of those blocks (where Slurm may place a job of so many nodes).
    public var blockLevels: BlockLevels?

    /// Each node's leaf switch (topology.conf of `topology/tree`): multi-node plans prefer the
    /// nodes of one leaf switch.
    public var leafSwitchOfNode: [String: String] = [:]

    /// Takes the blocks of topology.conf (nil: none).
    public mutating func setBlocks(_ blocks: BlockTopology?) {
        blockOfNode = blocks?.blockOfNode ?? [:]
        blockLevels = blocks?.blockLevels
    }
    /// Which load of the topology files this is (the loader numbers them): what the planner
    /// derived from an earlier load is derived again.
    public var generation: UInt64 = 0

    public init(layouts: [ClusterSnapshot.LayoutSpec], gpuCounts: [Int], layoutOfNode: [String: Int]) {
        self.layouts = layouts
        self.gpuCounts = gpuCounts
        self.layoutOfNode = layoutOfNode
    }

    public init(_ cluster: ClusterTopology) {
        var layouts: [ClusterSnapshot.LayoutSpec] = []
        var gpuCounts: [Int] = []
        var index: [ClusterSnapshot.LayoutSpec: Int] = [:]
        var layoutOfNode: [String: Int] = [:]
        for node in cluster.nodes {
            if let problem = node.linkProblems.first {
                leftOut.append((node.name, problem.description))
                continue
            }
            let spec = ClusterSnapshot.LayoutSpec(node.table.topology)
            let layout = index[spec] ?? {
                layouts.append(spec)
                gpuCounts.append(node.table.topology.gpuCount)
                index[spec] = layouts.count - 1
                return layouts.count - 1
            }()
            layoutOfNode[node.name] = layout
        }
        self.layouts = layouts
        self.gpuCounts = gpuCounts
        self.layoutOfNode = layoutOfNode
    }
}
