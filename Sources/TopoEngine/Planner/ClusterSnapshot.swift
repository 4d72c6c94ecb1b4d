/// What the planner sees of the cluster at one moment: node layouts, nodes and running jobs.
/// Built by SlurmBridge from slurmctld's state, or decoded from JSON for offline use
/// (`topo-preempt plan --snapshot FILE`; the JSON shape is documented in docs/reference.md).
public struct ClusterSnapshot: Sendable, Codable, Equatable {
    /// Distinct node layouts; nodes refer to them by index.
    public var layouts: [LayoutSpec]
    public var nodes: [NodeState]
    public var jobs: [RunningJob]
    /// Seconds since the epoch at which the snapshot was taken (work lost is measured to it).
    public var time: Int64
    /// The Slurm release the cluster runs: its GPU pick is what the planner and the stock model
    /// predict (JSON `"slurm": "24.11.5"`; absent: 22.05.8, Debian bookworm's).
    public var slurm: SlurmRelease
    /// topology/block's levels (JSON `"blockLevels": {"order": ["b1", "b2"], "baseNodes": 4,
    /// "levels": [1, 2]}`); nil with blocks on nodes: Slurm's defaults for them.
    public var blockLevels: BlockLevels?

    public init(layouts: [LayoutSpec], nodes: [NodeState], jobs: [RunningJob], time: Int64,
                slurm: SlurmRelease = .debianBookworm, blockLevels: BlockLevels? = nil) {
        self.layouts = layouts
        self.nodes = nodes
        self.jobs = jobs
        self.time = time
        self.slurm = slurm
        self.blockLevels = blockLevels
    }

    enum CodingKeys: String, CodingKey { case layouts, nodes, jobs, time, slurm, blockLevels }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        layouts = try c.decode([LayoutSpec].self, forKey: .layouts)
        nodes = try c.decode([NodeState].self, forKey: .nodes)
        jobs = try c.decode([RunningJob].self, forKey: .jobs)
        time = try c.decode(Int64.self, forKey: .time)
        slurm = try c.decodeIfPresent(SlurmRelease.self, forKey: .slurm) ?? .debianBookworm
        blockLevels = try c.decodeIfPresent(BlockLevels.self, forKey: .blockLevels)
    }

    /// A node layout in JSON-friendly form: the link matrix as `nvidia-smi topo -m` cells and
    /// each GPU's socket (from gres.conf `Cores=` and slurm.conf `CoresPerSocket`).
    public struct LayoutSpec: Sendable, Codable, Hashable {
        /// `paths[i][j]`: `NV4`, `PIX`, `PXB`, `PHB`, `NODE`, `SYS`, `-` (unknown), `X` on the diagonal.
        public var paths: [[String]]
        public var sockets: [Int?]?
        public var numaNodes: [Int?]?

        public init(paths: [[String]], sockets: [Int?]? = nil, numaNodes: [Int?]? = nil) {
            self.paths = paths
            self.sockets = sockets
            self.numaNodes = numaNodes
        }

        public init(_ topology: NodeTopology) {
            paths = topology.gpus.indices.map { i in topology.gpus.indices.map { j in i == j ? "X" : topology.paths[i][j].description } }
            sockets = topology.gpus.map(\.socket)
            numaNodes = topology.gpus.map(\.numaNode)
        }

        /// The topology this describes; an error names the cell or list that is wrong.
        public func topology() throws(SnapshotError) -> NodeTopology {
            let n = paths.count
            guard n > 0, n <= GPUSet.capacity, paths.allSatisfy({ $0.count == n }) else {
                throw SnapshotError("layout paths must be a square matrix of 1 to \(GPUSet.capacity) GPUs")
            }
            var matrix = Array(repeating: Array(repeating: GPUPath.unknown, count: n), count: n)
            for i in 0..<n {
                for j in 0..<n where i != j {
                    let cell = paths[i][j]
                    guard let path = cell == "-" ? .unknown : NvidiaSmiTopo.parseCell(cell) else {
                        throw SnapshotError("layout paths[\(i)][\(j)]: unknown link '\(printable(cell))'")
                    }
                    matrix[i][j] = path
                }
            }
            if let sockets, sockets.count != n { throw SnapshotError("layout sockets must list \(n) GPUs") }
            if let numaNodes, numaNodes.count != n { throw SnapshotError("layout numaNodes must list \(n) GPUs") }
            let gpus = (0..<n).map { GPUInfo(index: $0, numaNode: numaNodes?[$0] ?? nil, socket: sockets?[$0] ?? nil) }
            do { return try NodeTopology(gpus: gpus, paths: matrix) } catch {
                throw SnapshotError("layout: \(error)")
            }
        }
    }

    public struct NodeState: Sendable, Codable, Equatable {
        public var name: String
        public var layout: Int
        /// False for nodes Slurm would not start jobs on (down, drained, not responding).
        public var available: Bool
        /// GPUs in use by jobs the snapshot does not list (e.g. other users' jobs outside the
        /// planner's view); jobs' own GPUs are added to these.
        public var otherAllocated: GPUSet?
        /// The node's leaf switch in topology.conf, when the site has one.
        public var leafSwitch: String?
        /// The node's base block in topology.conf (`topology/block`: one multi-node NVLink
        /// domain), when the site has one.
        public var block: String?
        /// CPUs Slurm allocates on the node (CPUTot less specialised cores); nil: CPUs are not
        /// a constraint the planner checks.
        public var cpus: Int?
        /// Memory Slurm allocates on the node, MB (RealMemory less MemSpecLimit) where memory is
        /// a consumable resource (SelectTypeParameters=CR_*_Memory); nil: not a constraint.
        public var memoryMB: Int64?
        /// CPUs and memory (MB) held by jobs the snapshot does not list (jobs without GPUs, jobs
        /// Slurm is already draining); the listed jobs' own are added to these.
        public var otherCPUs: Int?
        public var otherMemoryMB: Int64?

        public init(name: String, layout: Int, available: Bool = true, otherAllocated: GPUSet? = nil, leafSwitch: String? = nil,
                    block: String? = nil, cpus: Int? = nil, memoryMB: Int64? = nil, otherCPUs: Int? = nil, otherMemoryMB: Int64? = nil) {
            self.name = name
            self.layout = layout
            self.available = available
            self.otherAllocated = otherAllocated
            self.leafSwitch = leafSwitch
            self.block = block
            self.cpus = cpus
            self.memoryMB = memoryMB
            self.otherCPUs = otherCPUs
            self.otherMemoryMB = otherMemoryMB
        }

        /// `available` may be left out of JSON (true).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            layout = try c.decode(Int.self, forKey: .layout)
            available = try c.decodeIfPresent(Bool.self, forKey: .available) ?? true
            otherAllocated = try c.decodeIfPresent(GPUSet.self, forKey: .otherAllocated)
            leafSwitch = try c.decodeIfPresent(String.self, forKey: .leafSwitch)
            block = try c.decodeIfPresent(String.self, forKey: .block)
            cpus = try c.decodeIfPresent(Int.self, forKey: .cpus)
            memoryMB = try c.decodeIfPresent(Int64.self, forKey: .memoryMB)
            otherCPUs = try c.decodeIfPresent(Int.self, forKey: .otherCPUs)
            otherMemoryMB = try c.decodeIfPresent(Int64.self, forKey: .otherMemoryMB)
        }
    }

    public struct RunningJob: Sendable, Codable, Equatable {
        public var id: UInt32
        public var name: String?
        public var partition: String?
        /// Preemption priority: the partition's PriorityTier (preempt/partition_prio) or the
        /// QOS priority; a preemptor may only preempt jobs of lower priority.
        public var priority: Int
        public var startTime: Int64
        /// Whether the base policy lets this job be preempted at all (preemptible class,
        /// PreemptMode not OFF). Exempt jobs are false here.
        public var preemptible: Bool
        /// Seconds a preempted job keeps running (GraceTime) before it is requeued.
        public var graceTime: Int
        /// GPUs by node index.
        public var allocations: [Allocation]

        public struct Allocation: Sendable, Codable, Equatable {
            public var node: Int
            public var gpus: GPUSet
            /// CPUs and memory (MB) the job holds on that node; nil counts as none.
            public var cpus: Int?
            public var memoryMB: Int64?
            public init(node: Int, gpus: GPUSet, cpus: Int? = nil, memoryMB: Int64? = nil) {
                self.node = node
                self.gpus = gpus
                self.cpus = cpus
                self.memoryMB = memoryMB
            }
        }

        public init(id: UInt32, name: String? = nil, partition: String? = nil, priority: Int, startTime: Int64,
                    preemptible: Bool = true, graceTime: Int = 0, allocations: [Allocation]) {
            self.id = id
            self.name = name
            self.partition = partition
            self.priority = priority
            self.startTime = startTime
            self.preemptible = preemptible
            self.graceTime = graceTime
            self.allocations = allocations
        }

        /// `preemptible` (true) and `graceTime` (0) may be left out of JSON.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(UInt32.self, forKey: .id)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            partition = try c.decodeIfPresent(String.self, forKey: .partition)
            priority = try c.decode(Int.self, forKey: .priority)
            startTime = try c.decode(Int64.self, forKey: .startTime)
            preemptible = try c.decodeIfPresent(Bool.self, forKey: .preemptible) ?? true
            graceTime = try c.decodeIfPresent(Int.self, forKey: .graceTime) ?? 0
            allocations = try c.decode([Allocation].self, forKey: .allocations)
        }

        /// GPUs held on all nodes.
        public var gpuCount: Int { allocations.reduce(0) { $0 + $1.gpus.count } }
    }
}

public struct SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension GPUSet: Codable {
    /// Encoded as Slurm's index list, `"0-1,4-5"` (`""` for none).
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        if text.isEmpty {
            self.init()
            return
        }
        do {
            self.init(try RangeList.parse(text, maxValue: GPUSet.capacity - 1))
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "GPU list '\(text)': \(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
