/// The cluster as libslurm's client API reports it (`slurm_load_jobs` with SHOW_DETAIL,
/// `slurm_load_node`, `slurm_load_partitions`, `slurm_load_ctl_conf`, and the QOS records of
/// slurmdbd), copied into plain values by the SlurmClient module. Pure data: the command-line
/// tool turns it into the `ControllerSnapshot` preempt/topo_aware decides on
/// (`ControllerSnapshot(live:preemptor:basePolicy:)`) and audits it.
public struct LiveState: Sendable, Equatable {
    /// A PreemptMode as Slurm states it for the cluster, a partition or a QOS: what happens to a
    /// preempted job, the WITHIN flag (QOS: preempt within the same QOS by job priority) and the
    /// PRIORITY flag (Slurm 25.05+: only jobs of lower job priority may be preempted).
    /// GANG does not change which jobs may be preempted and is not kept.
    public struct PreemptMode: Sendable, Equatable {
        public enum Action: Sendable, Equatable { case off, suspend, requeue, cancel }
        public var action: Action
        public var within: Bool
        public var priority: Bool

        public init(_ action: Action, within: Bool = false, priority: Bool = false) {
            self.action = action
            self.within = within
            self.priority = priority
        }

        /// Requeue and cancel are the modes that free a job's GPUs (suspended jobs keep them).
        public var freesGPUs: Bool { action == .requeue || action == .cancel }
    }

    public struct Job: Sendable, Equatable {
        public enum State: Sendable, Equatable { case pending, running, other }
        public var id: UInt32
        public var name: String?
        public var state: State
        /// Partition (or partitions, comma-separated, of a pending job).
        public var partition: String?
        public var qos: String?
        public var adminComment: String?
        /// Slurm's job priority.
        public var priority: Int
        public var startTime: Int64
        /// Slurm has signalled the job for preemption (`PreemptTime` set): it is draining.
        public var preempted: Bool
        /// Node indices (into `nodes`) the job holds, ascending, and the matching
        /// `gres_detail_str` entries (`gpu:4(IDX:0-1,4-5)`).
        public var nodeIndices: [Int]
        public var gresDetail: [String]
        public var tresPerNode: String?
        public var tresPerSocket: String?
        public var tresPerJob: String?
        public var socketsPerNode: Int?
        public var numNodes: Int
        public var numCPUs: Int
        /// Nodes the job must use (`-w`) and must not use (`-x`), as node indices; empty when not given.
        public var requiredNodeIndices: [Int]
        public var excludedNodeIndices: [Int]
        /// The job's owner (uid); nil when not known.
        public var userID: UInt32?
        /// Slurm's name of its state (`PENDING`, `RUNNING`, `PREEMPTED`, ...), and the
        /// SystemComment preempt/topo_aware writes its provenance into; nil when not read.
        public var stateName: String?
        public var systemComment: String?
        /// When the job was submitted (seconds since the epoch); nil when not read.
        public var submitTime: Int64?
        /// `--segment` (topology/block, Slurm 24.05+); 0: none.
        public var segmentSize: Int = 0
        /// `--consolidate-segments`, `--spread-segments` (Slurm 25.11+).
        public var segmentPlacement: SegmentPlacement = []

        public init(id: UInt32, name: String? = nil, state: State, partition: String?, qos: String? = nil,
                    adminComment: String? = nil, priority: Int = 0, startTime: Int64, preempted: Bool = false,
                    nodeIndices: [Int] = [], gresDetail: [String] = [], tresPerNode: String? = nil,
                    tresPerSocket: String? = nil, tresPerJob: String? = nil, socketsPerNode: Int? = nil,
                    numNodes: Int = 1, numCPUs: Int = 1, requiredNodeIndices: [Int] = [], excludedNodeIndices: [Int] = [],
                    userID: UInt32? = nil) {
            self.id = id
            self.name = name
            self.state = state
            self.partition = partition
            self.qos = qos
            self.adminComment = adminComment
            self.priority = priority
            self.startTime = startTime
            self.preempted = preempted
            self.nodeIndices = nodeIndices
            self.gresDetail = gresDetail
            self.tresPerNode = tresPerNode
            self.tresPerSocket = tresPerSocket
            self.tresPerJob = tresPerJob
            self.socketsPerNode = socketsPerNode
            self.numNodes = numNodes
            self.numCPUs = numCPUs
            self.requiredNodeIndices = requiredNodeIndices
            self.excludedNodeIndices = excludedNodeIndices
            self.userID = userID
        }

        /// GPUs the job holds on its `position`-th node, from its GRES detail; nil when the
        /// detail does not parse.
        public func gpus(atPosition position: Int) -> GPUSet? {
            guard gresDetail.indices.contains(position), let items = try? GresString.parse(gresDetail[position]) else { return nil }
            return items.filter { asciiLowercased($0.name) == "gpu" }.reduce(GPUSet()) { $0.union($1.indices ?? GPUSet()) }
        }
    }

    /// A node: name, availability, Slurm's GPU count (`Gres=`) and allocated GPUs (`GresUsed=`
    /// IDX), the same record preempt/topo_aware's C side copies out of slurmctld.
    public typealias Node = ControllerSnapshot.Node

    public struct Partition: Sendable, Equatable {
        public var name: String
        public var priorityTier: Int
        /// The partition's PreemptMode; nil when not set (the cluster's applies).
        public var preemptMode: PreemptMode?
        public var nodeIndices: [Int]

        public init(name: String, priorityTier: Int, preemptMode: PreemptMode? = nil, nodeIndices: [Int]) {
            self.name = name
            self.priorityTier = priorityTier
            self.preemptMode = preemptMode
            self.nodeIndices = nodeIndices
        }
    }

    /// A QOS record of slurmdbd (read only where preemption is by QOS).
    public struct QOS: Sendable, Equatable {
        public var name: String
        public var priority: Int
        /// Names of the QOS this one may preempt (`Preempt=`).
        public var preempts: [String]
        /// The QOS's PreemptMode; nil when not set (the cluster's applies).
        public var preemptMode: PreemptMode?

        public init(name: String, priority: Int, preempts: [String] = [], preemptMode: PreemptMode? = nil) {
            self.name = name
            self.priority = priority
            self.preempts = preempts
            self.preemptMode = preemptMode
        }
    }

    public var jobs: [Job]
    public var nodes: [Node]
    public var partitions: [Partition]
    public var qos: [QOS]
    /// slurm.conf PreemptMode and PreemptExemptTime (seconds; 0: none).
    public var preemptMode: PreemptMode
    public var exemptSeconds: Int64
    public var time: Int64
    /// The release slurmctld reports (`scontrol show config`'s SLURM_VERSION).
    public var slurm: SlurmRelease
    /// What stock preemption would do differently by slurm.conf (victim order, reorder passes).
    public var stock: StockSettings

    public init(jobs: [Job], nodes: [Node], partitions: [Partition], qos: [QOS] = [],
                preemptMode: PreemptMode = PreemptMode(.requeue), exemptSeconds: Int64 = 0, time: Int64,
                slurm: SlurmRelease = .debianBookworm, stock: StockSettings = StockSettings()) {
        self.slurm = slurm
        self.stock = stock
        self.jobs = jobs
        self.nodes = nodes
        self.partitions = partitions
        self.qos = qos
        self.preemptMode = preemptMode
        self.exemptSeconds = exemptSeconds
        self.time = time
    }

    /// Slurm's `node_inx` pairs (`start, end, start, end, ..., -1`) as indices, bounded.
    public static func expandIndexPairs(_ pairs: [Int32], nodeCount: Int) -> [Int] {
        var result: [Int] = []
        var i = 0
        while i + 1 < pairs.count, pairs[i] >= 0 {
            let low = Int(pairs[i]), high = Int(pairs[i + 1])
            if low >= 0, low <= high, high < nodeCount { result.append(contentsOf: low...high) }
            i += 2
        }
        return result
    }
}
