/// A built-in GPU node type for simulated clusters (8 GPUs, 2 sockets; gb200: 4 GPUs).
public enum SimNodeType: String, Sendable, CaseIterable {
    /// Two NVLink islands of 4, one per socket (the local cluster's `islands`).
    case islands
    /// NVLink pairs (0-1, 2-3, ...), 4 GPUs per socket, PCIe switch per socket.
    case pairs
    /// No NVLink: PCIe switch pairs (PIX), host bridge per socket.
    case pcie
    /// NVSwitch: all 8 GPUs NVLink-connected.
    case nvswitch
    /// A GB200 NVL72-class compute tray: 4 GPUs on the rack's NVLink switches (NV18 to each
    /// other), two Grace sockets of 2 GPUs each; racks are blocks of topology/block.
    case gb200

    public var layout: ClusterSnapshot.LayoutSpec {
        func build(_ cell: (Int, Int) -> String) -> ClusterSnapshot.LayoutSpec {
            .init(paths: (0..<8).map { i in (0..<8).map { j in i == j ? "X" : cell(i, j) } }, sockets: (0..<8).map { $0 / 4 })
        }
        switch self {
        case .gb200:
            return .init(paths: (0..<4).map { i in (0..<4).map { j in i == j ? "X" : "NV18" } }, sockets: [0, 0, 1, 1])
        case .islands: return build { i, j in i / 4 == j / 4 ? "NV4" : "SYS" }
        case .pairs: return build { i, j in i / 2 == j / 2 ? "NV4" : (i / 4 == j / 4 ? "PXB" : "SYS") }
        case .pcie: return build { i, j in i / 2 == j / 2 ? "PIX" : (i / 4 == j / 4 ? "PHB" : "SYS") }
        case .nvswitch: return build { _, _ in "NV12" }
        }
    }
}

/// How inference jobs are placed and what is preempted for them.
public enum SimPolicy: String, Sendable, CaseIterable, Codable {
    /// Stock Slurm, plain `--gres=gpu:N`: victims by priority then oldest first, with the reorder
    /// passes (Slurm's default order).
    case stock
    /// Stock Slurm with the request shaped to one socket (`--gpus-per-socket=N --sockets-per-node=1`).
    case stockShaped = "stock-shaped"
    /// Stock Slurm with `PreemptParameters=youngest_first`, plain request.
    case stockYoungest = "stock-youngest"
    /// Stock Slurm with `youngest_first` and the request shaped to one socket: the strongest
    /// stock configuration where groups are sockets.
    case stockShapedYoungest = "stock-shaped-youngest"
    /// TopoPreempt, guaranteed mode (job_submit shaping where the level is socket-wide).
    case topoGuaranteed = "topo-guaranteed"
    /// TopoPreempt, best-effort mode.
    case topoBestEffort = "topo-best-effort"
    /// The exhaustive optimum under the guaranteed rules (small clusters only: checks the planner).
    case oracle

    /// The policies `topo-preempt simulate` compares by default.
    public static let standard: [SimPolicy] = [.stock, .stockShaped, .stockYoungest, .stockShapedYoungest, .topoGuaranteed, .topoBestEffort]

    /// Stock Slurm's settings, for the stock variants; nil for TopoPreempt and the oracle.
    public var stockSettings: StockSettings? {
        switch self {
        case .stock, .stockShaped: StockSettings(order: .oldestFirst)
        case .stockYoungest, .stockShapedYoungest: StockSettings(order: .youngestFirst)
        case .topoGuaranteed, .topoBestEffort, .oracle: nil
        }
    }
    /// Largest cluster the oracle is run on.
    public static let oracleMaxNodes = 16
}

public struct SimulationSetup: Sendable {
    public var nodeTypes: [(type: ClusterSnapshot.LayoutSpec, name: String, count: Int)]
    /// Affinity level inference jobs need.
    public var level: AffinityLevel
    /// Seconds a requeued job waits before it may start again (Slurm: about 120 s).
    public var requeueDelay: Int64
    /// Seconds between retries of an inference job that could not be placed.
    public var retryInterval: Int64
    /// Seconds between timeline samples.
    public var sampleInterval: Int64
    /// Performance factor of an inference job by the alignment of its GPUs (see docs/measurements.md, "Simulator").
    public var factors: [AffinityLevel: Double]
    /// The Slurm release modelled: its GPU pick places every job (stock and planned alike).
    public var slurm: SlurmRelease
    /// How long a victim holds its GPUs after it is chosen.
    public var drain: DrainModel
    /// Cores per socket of every node (one CPU per core), and memory per node Slurm allocates
    /// (MB; nil: memory is not a consumable resource).
    public var coresPerSocket: Int
    public var memoryPerNodeMB: Int64?
    /// What TopoPreempt's planner is given of each node.
    public var plannerView: PlannerView
    /// topology/block: consecutive nodes in blocks of this many (b1 = the first, ...), with
    /// Slurm's default levels; 0: no blocks. Slurm places a multi-node job inside one block of
    /// the level its node count needs (`BlockLevels`), stock and planned alike.
    public var blockNodes: Int = 0
    /// How the topology-aware policies (and the oracle) compare plans (`CostOrder=`).
    public var costOrder: [CostCriterion] = CostCriterion.defaultOrder
    /// How near the least work plans tie under `rough-work` (`RoughWorkTolerance=`).
    public var roughWorkTolerance: RoughWorkTolerance = .default

    /// The planner's policy of the topology-aware policies (and the oracle).
    var plannerPolicy: PlannerPolicy {
        PlannerPolicy(order: costOrder, requireEveryVictim: true, roughWorkTolerance: roughWorkTolerance)
    }

    public static let defaultFactors: [AffinityLevel: Double] = [
        .nvlink: 1.0, .pcieSwitch: 0.8, .hostBridge: 0.7, .numa: 0.65, .socket: 0.6, .node: 0.5,
    ]

    public init(nodeTypes: [(type: ClusterSnapshot.LayoutSpec, name: String, count: Int)], level: AffinityLevel = .nvlink,
                requeueDelay: Int64 = 120, retryInterval: Int64 = 60, sampleInterval: Int64 = 3600,
                factors: [AffinityLevel: Double] = SimulationSetup.defaultFactors, slurm: SlurmRelease = .debianBookworm,
                drain: DrainModel = .none, coresPerSocket: Int = 8, memoryPerNodeMB: Int64? = nil,
                plannerView: PlannerView = .gpus) {
        self.nodeTypes = nodeTypes
        self.coresPerSocket = max(1, coresPerSocket)
        self.memoryPerNodeMB = memoryPerNodeMB.map { max(0, $0) }
        self.plannerView = plannerView
        self.drain = drain
        self.slurm = slurm
        self.level = level
        self.requeueDelay = requeueDelay
        self.retryInterval = retryInterval
        self.sampleInterval = sampleInterval
        self.factors = factors
    }

    public var nodeCount: Int { nodeTypes.reduce(0) { $0 + $1.count } }
}

/// What TopoPreempt's planner is given of each node. Stock Slurm and the simulated placement
/// always see GPUs, CPUs and memory; Slurm checks a plan's CPUs and memory when it carries the
/// plan out (`_run_now` tests the whole job once the plan's victims are removed) and starts
/// nothing when they are short.
public enum PlannerView: String, Sendable, CaseIterable, Codable {
    /// GPUs only, with the job's CPU count for the core-placement scenarios of the GPU pick:
    /// what preempt/topo_aware hands the planner (ABI 4, `topo_preempt_abi.h`).
    case gpus
    /// GPUs, each node's free CPUs and memory and what every job holds of them.
    case full
}

/// Time from choosing a victim to its GPUs being free, as Slurm takes it: the victim is sent
/// SIGTERM (at once, or when its partition's GraceTime starts), is killed `KillWait` seconds after
/// the requeue's SIGTERM if still running, then the epilog runs before the node frees the job's
/// resources. A victim that exits on SIGTERM after `exit` seconds frees its GPUs at
/// `min(exit, graceTime + killWait) + epilog`. Each victim's exit time is drawn from an
/// exponential distribution with mean `exitMean` keyed by the job and its run, so every policy
/// sees the same draw for the same run of a job; a preemption waits for its slowest victim.
public struct DrainModel: Sendable, Equatable, Codable {
    public var graceTime: Int64
    public var killWait: Int64
    public var exitMean: Double
    public var epilog: Int64

    public init(graceTime: Int64 = 0, killWait: Int64 = 30, exitMean: Double = 0, epilog: Int64 = 0) {
        self.graceTime = max(0, graceTime)
        self.killWait = max(0, killWait)
        self.exitMean = max(0, exitMean)
        self.epilog = max(0, epilog)
    }

    /// GPUs are free the moment victims are chosen (the model before drain time).
    public static let none = DrainModel(killWait: 0)

    /// The local cluster's (scripts/slurm-local: KillWait=2, no GraceTime on `batch`, no
    /// epilog; victims are `sleep` jobs that exit on SIGTERM): from a victim's requeue to its
    /// preemptor's allocation slurmctld logged 32-337 ms (p50 46 ms, 30 preemptions on 22.05.8,
    /// docs/measurements.md, "Simulator"), which is 0 s at the simulator's 1 s resolution.
    public static let lab = DrainModel(graceTime: 0, killWait: 2, exitMean: 0, epilog: 0)

    public var isInstant: Bool { epilog == 0 && (exitMean == 0 || graceTime + killWait == 0) }

    /// Seconds the victim `job` (in its `run`-th run) holds its GPUs after being chosen.
    public func seconds(job: Int, run: Int) -> Int64 {
        var exit: Int64 = 0
        if exitMean > 0 {
            var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: job) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: run) &+ 0xD1B5_4A32_D192_ED03)
            let draw = WorkloadSpec.exponential(&rng, rate: 1 / exitMean)
            exit = Int64(min(draw.rounded(), Double(Int64(1) << 40)))
        }
        return min(exit, graceTime + killWait) + epilog
    }
}

/// What one policy did with a trace.
public struct SimMetrics: Sendable, Equatable, Codable {
    public var policy: String
    public var preemptions = 0
    /// Preemptions after which the inference job's GPUs were aligned at the required level.
    public var alignedPreemptions = 0
    public var victims = 0
    public var gpuSecondsLost: Int64 = 0
    public var inferenceStarted = 0
    public var inferenceAligned = 0
    /// Inference jobs that started at once on free GPUs (no preemption) not aligned at the
    /// required level: Slurm picked them and no preemption hook was asked.
    public var misalignedFreeStarts = 0
    /// Submit-to-start waits of inference jobs, seconds.
    public var inferenceWaitP50: Int64 = 0
    public var inferenceWaitP99: Int64 = 0
    /// Waits from the preemption decision to the start, of the inference jobs that preempted
    /// (the slowest victim's drain), seconds.
    public var preemptionWaitP50: Int64 = 0
    public var preemptionWaitP99: Int64 = 0
    /// GPU-seconds idle between victims being chosen and their preemptor starting: victims'
    /// GPUs while they drain, and the plan's GPUs held for the preemptor.
    public var drainGPUSeconds: Int64 = 0
    /// Inference jobs still waiting when the simulation ended.
    public var inferenceUnstarted = 0
    /// Plans Slurm could not carry out: the plan's node lacked CPUs or memory for the job once
    /// its victims were gone (the planner was not given them); nothing was preempted and the
    /// job tried again later.
    public var unexecutablePlans = 0
    /// Preemptions TopoPreempt left to the base policy because the planner saw free aligned
    /// GPUs on which Slurm could not start the job (CPUs or memory not given to it).
    public var basePolicyPreemptions = 0
    /// Jobs no node can hold (more CPUs or memory than a node has, more nodes than the
    /// cluster): Slurm refuses them at submission; not replayed.
    public var rejected = 0
    /// GPU-seconds free but unusable: GPUs free on nodes without a free CPU, sampled at every
    /// event (a measure of CPU and memory fragmentation).
    public var strandedGPUSeconds: Int64 = 0
    public var batchCompleted = 0
    public var batchGPUHoursCompleted = 0.0
    /// Busy GPU-time over available GPU-time.
    public var utilisation = 0.0
    /// Inference run time weighted by the placement factor of its GPUs, over inference run time.
    public var scheduledPerformance = 0.0
    public var events = 0

    public var hitRate: Double { preemptions == 0 ? 1 : Double(alignedPreemptions) / Double(preemptions) }
    public var victimsPerPreemption: Double { preemptions == 0 ? 0 : Double(victims) / Double(preemptions) }
    public var gpuHoursLost: Double { Double(gpuSecondsLost) / 3600 }
    public var drainGPUHours: Double { Double(drainGPUSeconds) / 3600 }
    public var strandedGPUHours: Double { Double(strandedGPUSeconds) / 3600 }
}

/// One timeline sample.
public struct SimSample: Sendable, Equatable, Codable {
    public var time: Int64
    public var utilisation: Double
    public var hitRate: Double
    public var pendingInference: Int
    public var runningInference: Int
}

public struct SimResult: Sendable {
    public var metrics: SimMetrics
    public var timeline: [SimSample]
}

/// A discrete-event simulation of a Slurm cluster: the same planner (`Planner`) and stock
/// model (`StockPreemption`, `SlurmGPUPick`) the plugin and the CLI use, replayed over a trace.
///
/// Model: batch jobs are placed best-fit (the node with the fewest free GPUs that fit, Slurm's
/// GPU pick on it) in age order with backfill; inference jobs go first: without preemption
/// where they fit (Slurm's pick, per socket when shaped), else per policy; victims are
/// requeued (work lost) and may start again after `requeueDelay`; their GPUs are free after the
/// drain (`DrainModel`), and the plan's GPUs are held for the preemptor until its slowest
/// victim has drained (a kept plan in slurmctld; stock Slurm gives freed GPUs to the pending
/// job of the highest tier, the preemptor): nothing else starts on them.
public struct Simulator {
    let setup: SimulationSetup
    let policy: SimPolicy
    let jobs: [SimJob]

    // Cluster
    var layouts: [ClusterSnapshot.LayoutSpec] = []
    var contexts: [SlurmGPUPick.Context] = []
    var nodeLayout: [Int] = []
    var nodeNames: [String] = []
    /// The nodes as snapshots give them before anything is allocated.
    var baseNodes: [ClusterSnapshot.NodeState] = []
    var free: [GPUSet] = []
    var gpuCount: [Int] = []
    /// Free cores per node and socket (`coresPerSocket` each; a job takes its CPUs). Slurm gives
    /// a 1-CPU job a core on the socket with the most free cores, and its GPU pick starts there:
    /// the lab's fill 2 2 2 1 1 lands on 0-1 | 4-5 | 2-3 | 6 | 7 because of it. A job of more
    /// CPUs is modelled taking them from the socket with the most free cores first, then the
    /// next (a reading of cons_tres, not checked on a controller).
    var freeCores: [SocketCores] = []
    var freeCoreTotal: [Int] = []
    /// Free memory per node, MB (`Int64.max` where memory is not consumable).
    var freeMemory: [Int64] = []
    /// GPUs free on nodes without a free core (counted into `strandedGPUSeconds`).
    var strandedGPUs = 0
    /// Whether CPUs or memory can ever decide: memory is consumable, or a job asks for more
    /// CPUs than GPUs, or a node has fewer cores than GPUs. Otherwise every job holds at least
    /// one GPU per CPU and CPUs never run out first, so snapshots leave them out (faster).
    var resourcesBind = false
    var maxCores = 0
    /// Nodes by free GPU count, for best fit (ascending node index).
    var byFree: [NodeBits] = []
    var totalGPUs = 0
    /// GPUs of victims still draining, and GPUs held for a preemptor waiting for its victims.
    var draining: [GPUSet] = []
    var held: [GPUSet] = []
    /// Preemptors waiting for their victims: their allocation (CPUs and memory already taken),
    /// when the plan was made.
    var waitingPlans: [Int: (parts: [Part], since: Int64)] = [:]
    var preemptionWaits: [Int64] = []
    /// GPUs of running jobs per node, and how often a job was started on GPUs a running job
    /// held (a model error: the tests require none).
    var inUse: [GPUSet] = []
    var conflicts = 0
    /// Whether job_submit/topo_aware would shape the inference request (level one socket wide
    /// on every node).
    var shapeForTopo = false
    /// topology/block's levels (`setup.blockNodes`), and per node count the units a job of that
    /// many nodes may be placed in (node indices).
    var blockLevels: BlockLevels?
    var unitsByNodeCount: [Int: [[Int]]] = [:]
    /// The most GPUs one socket of every node type has: a request is shaped to one socket only
    /// up to that many GPUs (no user asks `--gpus-per-socket` for more than a socket holds).
    var socketGPUs = Int.max
    /// The planning index kept between preemption attempts (`KeptIndex`); whether it gives
    /// CPUs and memory (stock Slurm and the oracle see them, the planner as `plannerView`
    /// says); the nodes changed since the last attempt; the planner's and the stock model's
    /// arrays over all nodes and jobs.
    var kept = KeptIndex()
    var keptResources = false
    var dirtyNodes: [Int] = []
    var isDirty: [Bool] = []
    var plannerScratch = PlannerScratch()
    var stockScratch = StockPreemption.Scratch()
    /// Tests: compare the kept index with a snapshot of the whole state at every attempt, and
    /// the differences found.
    var verifyKeptIndex = false
    var keptIndexMismatches: [String] = []

    // Jobs
    /// What a job holds on one node: GPUs, cores per socket, memory (MB). Plain values (the
    /// cores packed 16 bits per socket, at most `maxSockets`) so that runs copy without
    /// reference counting.
    struct Part {
        var node: Int
        var gpus: GPUSet
        var packedCores: UInt64
        var memory: Int64
        init(node: Int, gpus: GPUSet, cores: [Int], memory: Int64) {
            self.node = node
            self.gpus = gpus
            self.memory = memory
            packedCores = 0
            for (socket, count) in cores.enumerated() where socket < Simulator.maxSockets {
                packedCores |= UInt64(min(max(0, count), 0xFFFF)) << (16 * UInt64(socket))
            }
        }
        func cores(onSocket socket: Int) -> Int {
            socket < Simulator.maxSockets ? Int((packedCores >> (16 * UInt64(socket))) & 0xFFFF) : 0
        }
        var cpus: Int { (0..<Simulator.maxSockets).reduce(0) { $0 + cores(onSocket: $1) } }
    }
    static let maxSockets = 4
    /// A node's free cores per socket, at most `maxSockets`, held in the array of all nodes'
    /// (an array per node was one more cache miss per access at 10,000 nodes).
    struct SocketCores: RandomAccessCollection, MutableCollection {
        private var values: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        let endIndex: Int
        var startIndex: Int { 0 }

        init(sockets: Int, cores: Int) {
            endIndex = Swift.min(Swift.max(0, sockets), Simulator.maxSockets)
            for socket in 0..<endIndex { self[socket] = cores }
        }

        /// Counts fit 32 bits: at most 65535 cores per socket (`prepare`), a job's at most that.
        subscript(socket: Int) -> Int {
            get {
                switch socket {
                case 0: Int(values.0)
                case 1: Int(values.1)
                case 2: Int(values.2)
                default: Int(values.3)
                }
            }
            set {
                let value = Int32(clamping: newValue)
                switch socket {
                case 0: values.0 = value
                case 1: values.1 = value
                case 2: values.2 = value
                default: values.3 = value
                }
            }
        }
    }
    /// A running job: its first node's part (the others of a multi-node job in `moreParts`),
    /// plain values, and what its end needs of the trace job (a completion then reads no
    /// trace entry: at 10,000 nodes a week's trace is 5 million jobs, far beyond the caches).
    struct Run {
        var part: Part
        var start: Int64
        /// Its job's runs so far, this one included (the drain model's seed).
        var serial: Int
        /// GPUs on all its nodes.
        var gpuCount: Int
        /// Its slot in the kept index.
        var slot: Int
        /// Its trace index, and whether it has parts in `moreParts`.
        var job: Int
        var multiNode = false
        /// The trace job's duration (seconds) and kind.
        var duration: Int64
        var inference: Bool
        /// The simulator's count of starts when it started: its completion event names it.
        var number: UInt32
        var node: Int { part.node }
    }
    /// The running jobs by their slot in the kept index, and per trace job its slot when it
    /// last started (-1: never; a job's run is the one there only while that run is its own):
    /// arrays, not a dictionary by job, as a start and a victim each look one up (tens of
    /// thousands running at 10,000 nodes); a completion names its slot.
    var runs: [Run?] = []
    var slotOfJob: [Int32] = []
    var starts: UInt32 = 0
    /// Job `j`'s run while it runs.
    func runOf(_ j: Int) -> Run? {
        guard slotOfJob.indices.contains(j), slotOfJob[j] >= 0, let run = runs[Int(slotOfJob[j])], run.job == j else { return nil }
        return run
    }
    /// The running jobs by trace index (for the tests and the whole snapshot).
    var running: [Int: Run] {
        var all: [Int: Run] = [:]
        for case let run? in runs { all[run.job] = run }
        return all
    }
    var moreParts: [Int: [Part]] = [:]
    func parts(_ j: Int, _ run: Run) -> [Part] { run.multiNode ? [run.part] + (moreParts[j] ?? []) : [run.part] }
    var serial: [Int32] = []
    var pendingInference: [Int] = []
    var nextInferenceTry: [Int: Int64] = [:]
    /// Batch jobs waiting, FIFO per shape (`Shape`: GPUs, nodes, CPUs, memory).
    var pendingBatch: [Shape: [Int]] = [:]
    var pendingBatchHead: [Shape: Int] = [:]
    /// Jobs in arrival order (submit time, then trace order), when the trace is not in it
    /// already (empty: the trace order), and the next to arrive: arrivals are not events in the
    /// heap (a week at 10,000 nodes submits millions of jobs).
    var arrivalOrder: [Int32] = []
    var nextArrival = 0

    // Events
    /// An event, 24 bytes (the heap holds one per running job and more): ordered by time, then
    /// kind, then push order, kept as one key (kind in the top bits, then the order).
    struct Event: Comparable {
        var time: Int64
        private var rank: UInt64
        /// A trace index, a node or a slot; a run's number or an index into `releases` (a trace
        /// of 2^31 jobs would not fit in memory).
        private var job32: Int32
        private var serial32: Int32
        /// A run ends (`completion`, job = its slot, serial = its number: `Run.number`).
        /// Victims' GPUs come free (`released`, job = node, serial = index into `releases`)
        /// before a preemptor whose victims have all drained starts (`planReady`).
        enum Kind: Int { case completion = 0, released = 1, planReady = 2, ready = 3, arrival = 4, retry = 5, sample = 6 }
        static let orderBits: UInt64 = 59

        init(time: Int64, order: Int, kind: Kind, job: Int, serial: Int) {
            self.time = time
            rank = UInt64(kind.rawValue) << Self.orderBits | (UInt64(truncatingIfNeeded: order) & (1 << Self.orderBits - 1))
            job32 = Int32(truncatingIfNeeded: job)
            serial32 = Int32(truncatingIfNeeded: serial)
        }

        var kind: Kind { Kind(rawValue: Int(rank >> Self.orderBits)) ?? .sample }
        var order: Int { Int(rank & (1 << Self.orderBits - 1)) }
        var job: Int { Int(job32) }
        var serial: Int { Int(serial32) }

        static func < (a: Event, b: Event) -> Bool {
            (a.time, a.rank) < (b.time, b.rank)
        }
    }
    var heap = MinHeap<Event>()
    var order = 0
    /// Victims' GPUs per pending release event.
    var releases: [Int: (node: Int, gpus: GPUSet)] = [:]
    var nextRelease = 0

    // Metrics
    var metrics: SimMetrics
    var timeline: [SimSample] = []
    var busyGPUSeconds: Double = 0
    var busyGPUs = 0
    var lastTime: Int64 = 0
    var waits: [Int64] = []
    var weightedInference = 0.0
    var inferenceSeconds = 0.0
    var runningInference = 0

    public init(setup: SimulationSetup, policy: SimPolicy, jobs: [SimJob]) {
        self.setup = setup
        self.policy = policy
        self.jobs = jobs
        metrics = SimMetrics(policy: policy.rawValue)
    }

    /// Runs the trace to its end (`until` seconds). `progress` is called now and then with the
    /// fraction done.
    public static func run(setup: SimulationSetup, policy: SimPolicy, jobs: [SimJob], until: Int64,
                           progress: ((Double) -> Void)? = nil) throws(SnapshotError) -> SimResult {
        var sim = Simulator(setup: setup, policy: policy, jobs: jobs)
        try sim.prepare()
        sim.loop(until: until, progress: progress)
        return SimResult(metrics: sim.metrics, timeline: sim.timeline)
    }

    mutating func prepare() throws(SnapshotError) {
        var topologies: [NodeTopology] = []
        for (i, entry) in setup.nodeTypes.enumerated() {
            let topology = try entry.type.topology()
            layouts.append(entry.type)
            topologies.append(topology)
            contexts.append(SlurmGPUPick.Context(topology, model: setup.slurm.gpuPick))
            for n in 0..<max(0, entry.count) {
                nodeLayout.append(i)
                nodeNames.append("\(entry.name)\(n + 1)")
                free.append(GPUSet.first(topology.gpuCount))
                draining.append(GPUSet())
                held.append(GPUSet())
                inUse.append(GPUSet())
                gpuCount.append(topology.gpuCount)
                let sockets = max(1, SlurmGPUPick.sockets(topology).count)
                guard sockets <= Self.maxSockets, setup.coresPerSocket <= 0xFFFF else {
                    throw SnapshotError("node type \(entry.name): the simulator models at most \(Self.maxSockets) sockets of at most 65535 cores, not \(sockets) of \(setup.coresPerSocket)")
                }
                freeCores.append(SocketCores(sockets: sockets, cores: setup.coresPerSocket))
                freeCoreTotal.append(setup.coresPerSocket * sockets)
                freeMemory.append(setup.memoryPerNodeMB ?? Int64.max)
            }
        }
        guard !free.isEmpty else { throw SnapshotError("the simulated cluster has no nodes") }
        // Jobs are named by 32-bit trace indices and ids (the kept index, the arrival order).
        guard jobs.count < Int(Int32.max) else { throw SnapshotError("the simulator replays at most \(Int32.max - 1) jobs, not \(jobs.count)") }
        if policy == .oracle && free.count > SimPolicy.oracleMaxNodes {
            throw SnapshotError("the oracle is exhaustive: at most \(SimPolicy.oracleMaxNodes) nodes, not \(free.count)")
        }
        totalGPUs = gpuCount.reduce(0, +)
        maxCores = freeCoreTotal.max() ?? 0
        baseNodes = free.indices.map { ClusterSnapshot.NodeState(name: nodeNames[$0], layout: nodeLayout[$0]) }
        if setup.blockNodes > 0 {
            let size = setup.blockNodes
            for n in baseNodes.indices { baseNodes[n].block = "b\(n / size + 1)" }
            let count = (free.count + size - 1) / size
            blockLevels = BlockLevels(order: (1...count).map { "b\($0)" }, baseNodes: size,
                                      levels: BlockLevels.cut([1, 2, 4, 8, 16], blocks: count))
        }
        if policy == .oracle && jobs.contains(where: { $0.kind == .inference && $0.nodes > 1 }) {
            throw SnapshotError("the oracle plans single-node inference jobs only")
        }
        resourcesBind = setup.memoryPerNodeMB != nil || jobs.contains { $0.cpus > $0.gpus }
            || free.indices.contains { freeCoreTotal[$0] < gpuCount[$0] }
        let maxGPUs = gpuCount.max() ?? 0
        byFree = Array(repeating: NodeBits(count: free.count), count: maxGPUs + 1)
        for n in free.indices { byFree[free[n].count].insert(n) }
        // job_submit shapes where the level's groups are exactly the sockets' GPUs on every node.
        shapeForTopo = true
        for topology in topologies {
            let table: AffinityTable
            do { table = try AffinityTable(topology) } catch { throw SnapshotError("node type: \(error)") }
            let sockets = SlurmGPUPick.sockets(topology)
            let groups = Set(table.groups(at: setup.level).map(\.gpus))
            let socketSets = Set(sockets.map { s in GPUSet(topology.gpus.indices.filter { topology.gpus[$0].socket == s }) })
            if sockets.isEmpty || groups != socketSets { shapeForTopo = false }
        }
        for topology in topologies {
            var perSocket: [Int: Int] = [:]
            for gpu in topology.gpus { perSocket[gpu.socket ?? -1, default: 0] += 1 }
            socketGPUs = min(socketGPUs, perSocket.values.max() ?? 0)
        }
        keptResources = resourcesBind && (policy.stockSettings != nil || policy == .oracle || setup.plannerView == .full)
        kept = try KeptIndex(empty: snapshotNow(0, resources: keptResources), resources: keptResources)
        // Node bounds and eligibility kept between plans: every node a candidate, no exempt
        // time, time forward.
        if policy == .topoGuaranteed || policy == .topoBestEffort {
            plannerScratch.bounds = BoundCache()
            plannerScratch.keepsEligibility = true
        }
        isDirty = Array(repeating: false, count: free.count)
        serial = Array(repeating: 0, count: jobs.count)
        slotOfJob = Array(repeating: -1, count: jobs.count)
        if zip(jobs, jobs.dropFirst()).contains(where: { $0.submit > $1.submit }) {
            arrivalOrder = jobs.indices.sorted { (jobs[$0].submit, $0) < (jobs[$1].submit, $1) }.map { Int32($0) }
        }
        push(0, .sample, -1)
    }

    /// The next event: the heap's first, or the next arrival where it comes first (events of
    /// one time by kind, arrivals among themselves in arrival order, as when they were pushed
    /// first of all).
    mutating func nextEvent() -> Event? {
        if nextArrival < jobs.count {
            let j = arrivalOrder.isEmpty ? nextArrival : Int(arrivalOrder[nextArrival])
            let time = jobs[j].submit
            if heap.first.map({ (time, Event.Kind.arrival.rawValue) < ($0.time, $0.kind.rawValue) }) ?? true {
                nextArrival += 1
                return Event(time: time, order: 0, kind: .arrival, job: j, serial: 0)
            }
        }
        return heap.pop()
    }

    mutating func push(_ time: Int64, _ kind: Event.Kind, _ job: Int, serial: Int = 0) {
        order += 1
        heap.push(Event(time: time, order: order, kind: kind, job: job, serial: serial))
    }

    mutating func loop(until: Int64, progress: ((Double) -> Void)?) {
        var reported = -1
        while let event = nextEvent() {
            guard event.time <= until else { break }
            advance(to: event.time)
            metrics.events += 1
            if let progress, until > 0 {
                let step = Int(event.time * 100 / until)
                if step != reported { reported = step; progress(Double(step) / 100) }
            }
            switch event.kind {
            case .arrival:
                enqueue(event.job)
            case .ready:
                enqueue(event.job)
            case .completion:
                // The event names the run's slot and number: a run preempted since left it stale.
                guard runs.indices.contains(event.job), let run = runs[event.job],
                      run.number == UInt32(truncatingIfNeeded: event.serial) else { break }
                finish(run.job, run: run, completed: true)
            case .retry:
                break
            case .released:
                guard let release = releases.removeValue(forKey: event.serial) else { break }
                draining[release.node] = draining[release.node].subtracting(release.gpus)
                markDirty(release.node)
                setFree(release.node, free[release.node].union(release.gpus.subtracting(held[release.node])))
            case .planReady:
                guard let plan = waitingPlans.removeValue(forKey: event.job) else { break }
                for part in plan.parts {
                    held[part.node] = held[part.node].subtracting(part.gpus)
                    markDirty(part.node)
                }
                startPreemptor(event.job, parts: plan.parts, now: event.time, since: plan.since, taken: true)
            case .sample:
                sample(event.time)
                if event.time + setup.sampleInterval <= until { push(event.time + setup.sampleInterval, .sample, -1) }
                continue
            }
            schedule(now: event.time)
        }
        advance(to: until)
        if timeline.last?.time != until { sample(until) }
        finishMetrics()
    }

    mutating func advance(to time: Int64) {
        guard time > lastTime else { return }
        let span = Double(time - lastTime)
        busyGPUSeconds += Double(busyGPUs) * span
        metrics.strandedGPUSeconds += Int64(strandedGPUs) * (time - lastTime)
        lastTime = time
    }

    /// Batch queues are FIFO per shape: GPUs, nodes, CPUs and memory per node (a job that does
    /// not fit now holds back only younger jobs of its own shape; Slurm's backfill starts the
    /// others).
    struct Shape: Hashable {
        var gpus: Int
        var nodes: Int
        var cpus: Int
        var memory: Int64
    }
    static func queueKey(_ job: SimJob) -> Shape { Shape(gpus: job.gpus, nodes: job.nodes, cpus: job.cpus, memory: job.memoryMB) }

    mutating func enqueue(_ j: Int) {
        // Slurm refuses at submission a job no node can ever hold (CPUs, memory, node count).
        let job = jobs[j]
        if job.cpus > maxCores || job.memoryMB > (setup.memoryPerNodeMB ?? Int64.max) || job.nodes > free.count {
            metrics.rejected += 1
            return
        }
        switch jobs[j].kind {
        case .inference: pendingInference.append(j)
        case .batch: pendingBatch[Self.queueKey(jobs[j]), default: []].append(j)
        }
    }

    mutating func sample(_ time: Int64) {
        let pending = pendingInference.count + waitingPlans.count
        timeline.append(SimSample(time: time, utilisation: totalGPUs == 0 ? 0 : Double(busyGPUs) / Double(totalGPUs),
                                  hitRate: metrics.hitRate, pendingInference: pending, runningInference: runningInference))
    }

    // MARK: - Placement

    mutating func setFree(_ node: Int, _ gpus: GPUSet) {
        markDirty(node)
        byFree[free[node].count].remove(node)
        if freeCoreTotal[node] <= 0 { strandedGPUs -= free[node].count }
        free[node] = gpus
        byFree[gpus.count].insert(node)
        if freeCoreTotal[node] <= 0 { strandedGPUs += gpus.count }
    }

    /// Takes (`sign` -1) or gives back (+1) a part's cores and memory.
    mutating func account(_ part: Part, _ sign: Int) {
        let node = part.node
        markDirty(node)
        if freeCoreTotal[node] <= 0 { strandedGPUs -= free[node].count }
        for socket in freeCores[node].indices {
            let count = part.cores(onSocket: socket)
            freeCores[node][socket] += sign * count
            freeCoreTotal[node] += sign * count
        }
        if freeMemory[node] != Int64.max { freeMemory[node] += Int64(sign) * part.memory }
        if freeCoreTotal[node] <= 0 { strandedGPUs += free[node].count }
    }

    /// Starts a job on its parts; `taken`: their CPUs and memory were taken already (a plan
    /// waiting for its victims holds them).
    mutating func start(_ j: Int, parts: [Part], now: Int64, taken: Bool = false) {
        guard let first = parts.first else { return }
        for part in parts {
            setFree(part.node, free[part.node].subtracting(part.gpus))
            if !inUse[part.node].intersection(part.gpus).isEmpty { conflicts += 1 }
            inUse[part.node] = inUse[part.node].union(part.gpus)
            if !taken { account(part, -1) }
            if freeCores[part.node].contains(where: { $0 < 0 }) || freeMemory[part.node] < 0 { conflicts += 1 }
            busyGPUs += part.gpus.count
        }
        serial[j] += 1
        let allocations = parts.map { part in
            keptResources ? ClusterSnapshot.RunningJob.Allocation(node: part.node, gpus: part.gpus, cpus: part.cpus,
                                                                  memoryMB: setup.memoryPerNodeMB == nil ? nil : part.memory)
                : ClusterSnapshot.RunningJob.Allocation(node: part.node, gpus: part.gpus)
        }
        let slot = kept.add(job: j, priority: jobs[j].priority, start: now, preemptible: jobs[j].kind == .batch, allocations: allocations)
        plannerScratch.jobChanged(slot)
        if runs.count <= slot { runs.append(contentsOf: repeatElement(nil, count: slot + 1 - runs.count)) }
        starts &+= 1
        runs[slot] = Run(part: first, start: now, serial: Int(serial[j]), gpuCount: parts.reduce(0) { $0 + $1.gpus.count }, slot: slot,
                         job: j, multiNode: parts.count > 1, duration: jobs[j].duration, inference: jobs[j].kind == .inference,
                         number: starts)
        slotOfJob[j] = Int32(slot)
        if parts.count > 1 { moreParts[j] = Array(parts.dropFirst()) }
        push(now + max(1, jobs[j].duration), .completion, slot, serial: Int(Int32(bitPattern: starts)))
        if jobs[j].kind == .inference {
            runningInference += 1
            waits.append(now - jobs[j].submit)
            metrics.inferenceStarted += 1
            let level = worstAlignment(parts)
            if level <= setup.level { metrics.inferenceAligned += 1 }
            let factor = setup.factors[level] ?? 0.5
            let seconds = Double(jobs[j].duration)
            weightedInference += factor * seconds
            inferenceSeconds += seconds
        }
    }

    /// A job ends; its GPUs are free at once unless it drains first (`releasing` false: a
    /// `released` event frees them). Its CPUs and memory are free at once.
    mutating func finish(_ j: Int, run: Run, completed: Bool, releasing: Bool = true) {
        let all = parts(j, run)
        runs[run.slot] = nil
        if run.multiNode { moreParts[j] = nil }
        kept.remove(slot: run.slot)
        plannerScratch.jobChanged(run.slot)
        for part in all {
            inUse[part.node] = inUse[part.node].subtracting(part.gpus)
            if releasing { setFree(part.node, free[part.node].union(part.gpus)) }
            account(part, +1)
            busyGPUs -= part.gpus.count
        }
        if run.inference { runningInference -= 1 }
        if completed && !run.inference {
            metrics.batchCompleted += 1
            metrics.batchGPUHoursCompleted += Double(run.gpuCount) * Double(run.duration) / 3600
        }
    }

    /// The cores a job of `cpus` CPUs takes on `node`, per socket index: from the socket with
    /// the most free cores (the first among equals), then the next; `first` instead starts on
    /// that socket. nil when the node has too few free cores.
    func cores(_ node: Int, cpus: Int, first: Int? = nil) -> [Int]? {
        guard freeCoreTotal[node] >= cpus else { return nil }
        var left = freeCores[node], taken = Array(repeating: 0, count: left.count), remaining = cpus
        if let first, left.indices.contains(first) {
            let take = min(remaining, max(0, left[first]))
            taken[first] += take
            left[first] -= take
            remaining -= take
        }
        while remaining > 0 {
            var best = 0
            for (i, count) in left.enumerated() where count > left[best] { best = i }
            guard left[best] > 0 else { return nil }
            let take = min(remaining, left[best])
            taken[best] += take
            left[best] -= take
            remaining -= take
        }
        return taken
    }

    /// Slurm's pick for a job's part on one node without preemption, nil when it does not fit
    /// (GPUs, CPUs, memory); with the cores it takes.
    func pick(_ node: Int, job: SimJob, perSocket: Bool, free available: GPUSet) -> Part? {
        let k = job.gpus
        guard available.count >= k, freeCoreTotal[node] >= job.cpus, freeMemory[node] >= job.memoryMB else { return nil }
        let context = contexts[nodeLayout[node]]
        let sockets = context.sockets
        if perSocket {
            // --sockets-per-node=1: the job's cores and GPUs on one socket.
            for (i, socket) in sockets.enumerated() where freeCores[node].indices.contains(i) && freeCores[node][i] >= job.cpus {
                if let pick = SlurmGPUPick.pickPerSocket(context, free: available, count: k, socket: socket) {
                    var taken = Array(repeating: 0, count: freeCores[node].count)
                    taken[i] = job.cpus
                    return Part(node: node, gpus: pick, cores: taken, memory: job.memoryMB)
                }
            }
            return nil
        }
        let used: Set<Int>
        var one: Int?
        if job.cpus == 1 {
            // The common case without building the cores first: the socket with the most free cores.
            var best = 0
            for (i, count) in freeCores[node].enumerated() where count > freeCores[node][best] { best = i }
            one = best
            used = sockets.indices.contains(best) ? [sockets[best]] : Set(sockets.prefix(1))
        } else {
            guard let taken = cores(node, cpus: job.cpus) else { return nil }
            let sets = Set(taken.indices.filter { taken[$0] > 0 && sockets.indices.contains($0) }.map { sockets[$0] })
            used = sets.isEmpty ? Set(sockets.prefix(1)) : sets
        }
        guard let gpus = SlurmGPUPick.pickPerNode(context, free: available, count: k, usedSockets: used) else { return nil }
        var taken: [Int]
        if let one {
            taken = Array(repeating: 0, count: freeCores[node].count)
            taken[one] = 1
        } else {
            taken = cores(node, cpus: job.cpus) ?? []
        }
        return Part(node: node, gpus: gpus, cores: taken, memory: job.memoryMB)
    }

    /// Best fit: the nodes with the fewest free GPUs that fit (lowest index among equals), one
    /// per node the job asks for.
    mutating func bestFit(_ job: SimJob, perSocket: Bool) -> [Part]? {
        let k = job.gpus
        guard k < byFree.count else { return nil }
        if job.nodes > 1, let levels = blockLevels {
            return bestFitInBlocks(job, perSocket: perSocket, levels: levels)
        }
        return bestFitAnywhere(job, perSocket: perSocket)
    }

    /// `bestFit` without blocks (not mutating: `pick` is called on the simulator as it is,
    /// not on a copy of it per node tried).
    func bestFitAnywhere(_ job: SimJob, perSocket: Bool) -> [Part]? {
        let k = job.gpus
        var parts: [Part] = []
        for count in k..<byFree.count {
            for node in byFree[count] {
                guard let part = pick(node, job: job, perSocket: perSocket, free: free[node]) else { continue }
                parts.append(part)
                if parts.count == job.nodes { return parts }
            }
        }
        return nil
    }

    /// A multi-node job with blocks: inside one unit of its block level (`BlockLevels`), the
    /// unit where it fits with the fewest nodes to spare (Slurm's block choice avoids
    /// fragmenting the larger ones; a reading of eval_nodes_block.c's `_choose_best_bblock`),
    /// and there the nodes with the fewest free GPUs (best fit, lowest index among equals).
    mutating func bestFitInBlocks(_ job: SimJob, perSocket: Bool, levels: BlockLevels) -> [Part]? {
        if unitsByNodeCount[job.nodes] == nil {
            unitsByNodeCount[job.nodes] = StockPreemption.units(
                forNodes: job.nodes,
                in: ClusterSnapshot(layouts: layouts, nodes: baseNodes, jobs: [], time: 0, slurm: setup.slurm, blockLevels: levels))
        }
        var best: [Part]?
        var bestSpare = Int.max
        for unit in unitsByNodeCount[job.nodes] ?? [] where unit.count >= job.nodes {
            var fitting: [Part] = []
            for node in unit where free[node].count >= job.gpus {
                if let part = pick(node, job: job, perSocket: perSocket, free: free[node]) { fitting.append(part) }
            }
            guard fitting.count >= job.nodes, fitting.count - job.nodes < bestSpare else { continue }
            bestSpare = fitting.count - job.nodes
            fitting.sort { (free[$0.node].count, $0.node) < (free[$1.node].count, $1.node) }
            best = Array(fitting.prefix(job.nodes))
        }
        return best
    }

    // MARK: - Scheduling

    mutating func schedule(now: Int64) {
        // Inference first (higher PriorityTier), oldest first.
        var still: [Int] = []
        for j in pendingInference {
            if let next = nextInferenceTry[j], next > now {
                still.append(j)
                continue
            }
            if !placeInference(j, now: now) {
                nextInferenceTry[j] = now + setup.retryInterval
                push(now + setup.retryInterval, .retry, j)
                still.append(j)
            } else {
                nextInferenceTry[j] = nil
            }
        }
        pendingInference = still
        // Batch: the oldest waiting job of any shape that fits somewhere, until none fits.
        var heads: [(key: Shape, job: Int)] = []
        while true {
            heads.removeAll(keepingCapacity: true)
            for (key, queue) in pendingBatch {
                let head = pendingBatchHead[key, default: 0]
                guard head < queue.count else { continue }
                let j = queue[head]
                if fitsAnywhere(jobs[j].gpus) { heads.append((key, j)) }
            }
            heads.sort { (jobs[$0.job].submit, $0.job) < (jobs[$1.job].submit, $1.job) }
            var started = false
            for (key, j) in heads {
                guard let parts = bestFit(jobs[j], perSocket: false) else { continue }
                pendingBatchHead[key, default: 0] += 1
                if let queue = pendingBatch[key], pendingBatchHead[key, default: 0] > 4096 {
                    pendingBatch[key] = Array(queue[pendingBatchHead[key, default: 0]...])
                    pendingBatchHead[key] = 0
                }
                start(j, parts: parts, now: now)
                started = true
                break
            }
            if !started { break }
        }
    }

    func fitsAnywhere(_ k: Int) -> Bool {
        guard k < byFree.count else { return false }
        return (k..<byFree.count).contains { !byFree[$0].isEmpty }
    }

    /// Starts an inference job now, preempting per policy; false when it must wait.
    mutating func placeInference(_ j: Int, now: Int64) -> Bool {
        let job = jobs[j]
        var shaped: Bool
        switch policy {
        case .stock, .stockYoungest: shaped = false
        case .stockShaped, .stockShapedYoungest: shaped = true
        case .topoGuaranteed, .oracle: shaped = shapeForTopo
        case .topoBestEffort: shaped = false
        }
        if job.gpus > socketGPUs { shaped = false }
        if let parts = bestFit(job, perSocket: shaped), !parts.isEmpty {
            start(j, parts: parts, now: now)
            if worstAlignment(parts) > setup.level { metrics.misalignedFreeStarts += 1 }
            return true
        }
        // Preemption: the kept index as of now (what a snapshot of the running jobs gives), then
        // the policy's choice. Stock Slurm sees every resource; TopoPreempt's planner what
        // `plannerView` gives it (`keptResources`).
        refreshKeptIndex(now)
        let request = PreemptorRequest(jobID: UInt32.max, gpusPerNode: job.gpus, nodeCount: job.nodes, level: setup.level,
                                       mode: policy == .topoBestEffort ? .bestEffort : .guaranteed, priority: job.priority,
                                       shape: shaped ? .perSocket : .perNode, cpusPerNode: job.cpus, memoryPerNode: job.memoryMB)
        if job.nodes > 1 { return placeMultiNode(j, request, now: now) }
        var victims: [UInt32] = []
        var target: (node: Int, gpus: GPUSet)?
        switch policy {
        case .stock, .stockShaped, .stockYoungest, .stockShapedYoungest:
            let settings = policy.stockSettings ?? StockSettings()
            var mayFit: [Int] = []
            for count in min(job.gpus, byFree.count)..<byFree.count { mayFit.append(contentsOf: byFree[count]) }
            mayFit.sort()
            // Oldest first, the order shortened to the node that first fits where it can be
            // (checked against the whole order when verifying).
            let shortened = settings.order == .oldestFirst && mayFit.isEmpty ? kept.oldestFirstCandidates(request, policy: PlannerPolicy()) : nil
            let order = shortened ?? stockCandidates(request, settings: settings)
            let outcome = StockPreemption.simulate(request, in: kept.index, settings: settings, candidates: order, mayFit: mayFit,
                                                   scratch: &stockScratch)
            if verifyKeptIndex, shortened != nil,
               outcome != StockPreemption.simulate(request, in: kept.index, settings: settings,
                                                   candidates: stockCandidates(request, settings: settings), mayFit: mayFit) {
                keptIndexMismatches.append("shortened stock order (\(settings.name)) at \(now)")
            }
            guard let outcome, let node = kept.index.nodeByName[outcome.node] else { return false }
            victims = outcome.victims
            target = (node, outcome.gpus)
        case .oracle:
            guard let choice = ExhaustivePlanner.plan(request, in: kept.index, policy: setup.plannerPolicy) else { return false }
            victims = choice.victims
            target = (choice.node, choice.gpus)
        case .topoGuaranteed, .topoBestEffort:
            let policy = setup.plannerPolicy
            let outcome = Planner.plan(request, in: kept.index, policy: policy, scratch: &plannerScratch)
            if verifyKeptIndex, outcome != Planner.plan(request, in: kept.index, policy: policy) {
                keptIndexMismatches.append("plan from kept bounds at \(now): \(outcome)")
            }
            guard case let .plan(plan) = outcome,
                  let first = plan.nodes.first, let node = kept.index.nodeByName[first.node], let gpus = first.expectedGPUs.first
            else { return false }
            victims = plan.victims
            target = (node, gpus)
            if victims.isEmpty {
                // The planner sees free aligned GPUs that Slurm could not start the job on (their
                // node lacks CPUs or memory the planner was not given): preempt/topo_aware then
                // answers as the base policy (PreemptController: "fits on free GPUs without
                // preemption ...; base policy for anything else").
                guard basePolicy(j, request, now: now) else { return false }
                metrics.basePolicyPreemptions += 1
                return true
            }
        }
        guard let (node, gpus) = target, !victims.isEmpty else { return false }
        // The plan's GPUs: free now, or held by its victims on that node; its CPUs and memory
        // likewise (Slurm tests the whole job once the victims are removed).
        let (victimGPUs, victimCPUs, victimMemory) = held(by: victims, on: node)
        guard gpus.isSubset(of: free[node].union(victimGPUs)) else { return false }
        if freeCoreTotal[node] + victimCPUs < job.cpus
            || (freeMemory[node] != Int64.max && freeMemory[node] + victimMemory < job.memoryMB) {
            // Slurm removes the plan's victims, the job still does not fit: nothing is preempted.
            metrics.unexecutablePlans += 1
            guard policy == .topoBestEffort else { return false }
            // Best-effort: the plan's victims are only the first candidates; Slurm goes on with
            // the base policy's order.
            return basePolicy(j, request, now: now, first: Set(victims))
        }
        return preempt(j, victims: victims, targets: [(node, gpus)], now: now)
    }

    /// A multi-node inference job that does not fit: stock Slurm's multi-node preemption or
    /// TopoPreempt's multi-node plan (both inside one block unit where there are blocks).
    mutating func placeMultiNode(_ j: Int, _ request: PreemptorRequest, now: Int64) -> Bool {
        let job = jobs[j]
        var victims: [UInt32] = []
        var targets: [(node: Int, gpus: GPUSet)] = []
        let nodeByName = kept.index.nodeByName
        switch policy {
        case .stock, .stockShaped, .stockYoungest, .stockShapedYoungest:
            let settings = policy.stockSettings ?? StockSettings()
            let order = stockOrder(request, settings: settings)
            guard let outcome = StockPreemption.simulateMultiNode(request, in: kept.index, settings: settings, candidates: order)
            else { return false }
            victims = outcome.victims
            targets = outcome.nodes.compactMap { n in nodeByName[n.name].map { ($0, n.gpus) } }
        case .topoGuaranteed, .topoBestEffort:
            guard case let .plan(plan) = Planner.plan(request, in: kept.index, policy: setup.plannerPolicy,
                                                      scratch: &plannerScratch) else { return false }
            victims = plan.victims
            targets = plan.nodes.compactMap { n in
                guard let node = nodeByName[n.node], let gpus = n.expectedGPUs.first else { return nil }
                return (node, gpus)
            }
        case .oracle:
            return false
        }
        guard !victims.isEmpty, targets.count == job.nodes else { return false }
        for (node, gpus) in targets {
            let (victimGPUs, victimCPUs, victimMemory) = held(by: victims, on: node)
            guard gpus.isSubset(of: free[node].union(victimGPUs)) else { return false }
            if freeCoreTotal[node] + victimCPUs < job.cpus
                || (freeMemory[node] != Int64.max && freeMemory[node] + victimMemory < job.memoryMB) {
                metrics.unexecutablePlans += 1
                return false
            }
        }
        return preempt(j, victims: victims, targets: targets, now: now)
    }

    /// The GPUs, CPUs and memory the victims hold on `node`.
    func held(by victims: [UInt32], on node: Int) -> (gpus: GPUSet, cpus: Int, memory: Int64) {
        var gpus = GPUSet()
        var cpus = 0
        var memory: Int64 = 0
        for id in victims {
            let victim = Self.job(ofID: id)
            guard let run = runOf(victim) else { continue }
            for part in parts(victim, run) where part.node == node {
                gpus = gpus.union(part.gpus)
                cpus += part.cpus
                memory += part.memory
            }
        }
        return (gpus, cpus, memory)
    }

    /// The worst in-node alignment over a job's parts.
    func worstAlignment(_ parts: [Part]) -> AffinityLevel {
        parts.map { contexts[nodeLayout[$0.node]].topology.alignment(of: $0.gpus) }.max() ?? .nvlink
    }

    /// Stock Slurm's preemption for the job (the base policy's order, `first` ranked before the
    /// rest) on the whole state, CPUs and memory included (Slurm's own test); false when it
    /// preempts nothing.
    mutating func basePolicy(_ j: Int, _ request: PreemptorRequest, now: Int64, first: Set<UInt32> = []) -> Bool {
        let whole = snapshotNow(now, resources: resourcesBind)
        guard let index = try? PlanningIndex(whole), let outcome = StockPreemption.simulate(request, in: index, first: first),
              let node = index.nodeByName[outcome.node], !outcome.victims.isEmpty
        else { return false }
        return preempt(j, victims: outcome.victims, targets: [(node, outcome.gpus)], now: now)
    }

    /// Requeues the victims and starts the preemptor on its targets (GPUs of each node) once
    /// the victims there have drained (at once without drain time).
    mutating func preempt(_ j: Int, victims: [UInt32], targets: [(node: Int, gpus: GPUSet)], now: Int64) -> Bool {
        let job = jobs[j]
        metrics.preemptions += 1
        metrics.victims += victims.count
        // The preemptor waits for its slowest victim holding some of the plan's GPUs.
        var drained: [(node: Int, gpus: GPUSet, at: Int64)] = []
        for id in victims {
            let victim = Self.job(ofID: id)
            guard let run = runOf(victim) else { continue }
            metrics.gpuSecondsLost += Int64(run.gpuCount) * (now - run.start)
            let drain = setup.drain.seconds(job: victim, run: run.serial)
            let victimParts = parts(victim, run)
            finish(victim, run: run, completed: false, releasing: drain == 0)
            push(now + setup.requeueDelay, .ready, victim)
            guard drain > 0 else { continue }
            for part in victimParts {
                draining[part.node] = draining[part.node].union(part.gpus)
                markDirty(part.node)
                releases[nextRelease] = (part.node, part.gpus)
                push(now + drain, .released, part.node, serial: nextRelease)
                nextRelease += 1
                metrics.drainGPUSeconds += Int64(part.gpus.count) * drain
                for target in targets where target.node == part.node {
                    drained.append((part.node, part.gpus.intersection(target.gpus), now + drain))
                }
            }
        }
        // The preemptor's cores: starting on the first socket, as the stock model and the
        // planner assume (for a shaped request Slurm would put them on its GPUs' socket: not
        // modelled, a reading).
        let preemptorParts = targets.map { target in
            let taken = cores(target.node, cpus: job.cpus, first: 0) ?? {
                conflicts += 1  // checked before: the victims' cores are free now
                return Array(repeating: 0, count: freeCores[target.node].count)
            }()
            return Part(node: target.node, gpus: target.gpus, cores: taken, memory: job.memoryMB)
        }
        let ready = drained.filter { !$0.gpus.isEmpty }.map(\.at).max() ?? now
        if ready == now {
            startPreemptor(j, parts: preemptorParts, now: now, since: now)
            return true
        }
        // Held for the preemptor until then: the GPUs free now (victims without drain time
        // included) wait idle, those of draining victims from the moment each has drained; its
        // CPUs and memory are taken now.
        for part in preemptorParts {
            let freeNow = part.gpus.intersection(free[part.node])
            metrics.drainGPUSeconds += Int64(freeNow.count) * (ready - now)
            setFree(part.node, free[part.node].subtracting(freeNow))
            held[part.node] = held[part.node].union(part.gpus)
            markDirty(part.node)
            account(part, -1)
        }
        for entry in drained { metrics.drainGPUSeconds += Int64(entry.gpus.count) * (ready - entry.at) }
        waitingPlans[j] = (preemptorParts, now)
        push(ready, .planReady, j)
        return true
    }

    /// Starts a preemptor on its plan's GPUs (freed by its victims, or held for it since).
    mutating func startPreemptor(_ j: Int, parts: [Part], now: Int64, since: Int64, taken: Bool = false) {
        start(j, parts: parts, now: now, taken: taken)
        preemptionWaits.append(now - since)
        if worstAlignment(parts) <= setup.level { metrics.alignedPreemptions += 1 }
    }

    /// The trace index of the job of a snapshot's (or the kept index's) id.
    static func job(ofID id: UInt32) -> Int { Int(id) - 1 }

    mutating func markDirty(_ node: Int) {
        guard !isDirty[node] else { return }
        isDirty[node] = true
        dirtyNodes.append(node)
    }

    /// The kept index as of `now`: the nodes changed since the last attempt, every job's work.
    mutating func refreshKeptIndex(_ now: Int64) {
        for n in dirtyNodes {
            isDirty[n] = false
            plannerScratch.bounds?.invalidate(n)
            kept.setNode(n, free: free[n], other: draining[n].union(held[n]), freeCPUs: freeCoreTotal[n], freeMemory: freeMemory[n])
        }
        dirtyNodes.removeAll(keepingCapacity: true)
        kept.prepare(time: now)
        if verifyKeptIndex, let difference = keptIndexDifference(now) { keptIndexMismatches.append(difference) }
    }

    /// Stock Slurm's candidates, drawn lazily from the kept index where its order allows
    /// (checked against the order sorted from a whole snapshot when verifying).
    mutating func stockCandidates(_ request: PreemptorRequest, settings: StockSettings) -> AnyIterator<Int> {
        guard let lazy = kept.stockCandidates(request, policy: PlannerPolicy(), settings: settings) else {
            return AnyIterator(stockOrder(request, settings: settings).makeIterator())
        }
        guard verifyKeptIndex else { return lazy }
        let drawn = Array(IteratorSequence(lazy))
        let sorted = stockOrder(request, settings: settings)
        if drawn != sorted { keptIndexMismatches.append("lazy stock order (\(settings.name)) at \(kept.index.snapshot.time)") }
        return AnyIterator(drawn.makeIterator())
    }

    /// Stock Slurm's candidate order from the kept index (checked against the order sorted
    /// from a whole snapshot when verifying).
    mutating func stockOrder(_ request: PreemptorRequest, settings: StockSettings) -> [Int] {
        let order = kept.stockOrder(request, policy: PlannerPolicy(), settings: settings)
        if verifyKeptIndex, let whole = try? PlanningIndex(snapshotNow(kept.index.snapshot.time, resources: keptResources)) {
            let expected = StockPreemption.candidateOrder(request, index: whole, policy: PlannerPolicy(), settings: settings, first: [])
            if expected.map({ whole.jobFacts[$0].id }) != order.map({ kept.index.jobFacts[$0].id }) {
                keptIndexMismatches.append("stock order (\(settings.name)) at \(kept.index.snapshot.time)")
            }
        }
        return order
    }

    /// The first difference between the kept index and the index of a snapshot of the whole
    /// state at `now`, nil when they agree on every node, job and derived array.
    func keptIndexDifference(_ now: Int64) -> String? {
        guard let whole = try? PlanningIndex(snapshotNow(now, resources: keptResources)) else { return "no snapshot at \(now)" }
        let index = kept.index
        guard index.snapshot.nodes.count == whole.snapshot.nodes.count else { return "node count at \(now)" }
        for n in whole.snapshot.nodes.indices {
            let name = whole.snapshot.nodes[n].name
            if index.snapshot.nodes[n] != whole.snapshot.nodes[n] { return "\(name) at \(now): \(index.snapshot.nodes[n]) against \(whole.snapshot.nodes[n])" }
            if index.free[n] != whole.free[n] { return "\(name) at \(now): free \(index.free[n]) against \(whole.free[n])" }
            if index.freeCPUs[n] != whole.freeCPUs[n] || index.freeMemory[n] != whole.freeMemory[n] { return "\(name) at \(now): free CPUs or memory" }
            let listed = index.jobsOnNode[n].map { "\(index.jobFacts[$0.job].id):\($0.gpus)" }
            let expected = whole.jobsOnNode[n].map { "\(whole.jobFacts[$0.job].id):\($0.gpus)" }
            if listed != expected { return "\(name) at \(now): jobs \(listed) against \(expected)" }
            for (entry, other) in zip(index.jobsOnNode[n], whole.jobsOnNode[n]) {
                let (a, b) = (entry.job, other.job)
                if index.snapshot.jobs[a] != whole.snapshot.jobs[b] || index.work(of: a) != whole.work(of: b)
                    || index.jobFacts[a] != whole.jobFacts[b] {
                    return "job \(whole.jobFacts[b].id) at \(now)"
                }
            }
        }
        let live = (0..<kept.slotCount).filter { kept.job(inSlot: $0) != nil }.count
        if live != whole.snapshot.jobs.count { return "\(live) jobs kept against \(whole.snapshot.jobs.count) at \(now)" }
        if index.snapshot.time != whole.snapshot.time || index.snapshot.blockLevels != whole.snapshot.blockLevels { return "time or blocks at \(now)" }
        return nil
    }

    /// The planner's snapshot built from the whole state (job ids: trace index + 1);
    /// `resources`: with each node's CPUs and memory and what every job holds of them. The kept
    /// index (`KeptIndex`) stands for it in every attempt but the base policy's, and is checked
    /// against it by `verifyKeptIndex`.
    func snapshotNow(_ now: Int64, resources: Bool) -> ClusterSnapshot {
        var nodes: [ClusterSnapshot.NodeState]
        var listedCPUs = resources ? Array(repeating: 0, count: free.count) : []
        var listedMemory = resources ? Array(repeating: Int64(0), count: free.count) : []
        var list: [ClusterSnapshot.RunningJob] = []
        let running = runs.compactMap { $0 }.sorted { $0.job < $1.job }
        list.reserveCapacity(running.count)
        for run in running {
            let j = run.job
            let id = UInt32(truncatingIfNeeded: j + 1)
            func allocation(_ part: Part) -> ClusterSnapshot.RunningJob.Allocation {
                guard resources else { return .init(node: part.node, gpus: part.gpus) }
                listedCPUs[part.node] += part.cpus
                listedMemory[part.node] += part.memory
                return .init(node: part.node, gpus: part.gpus, cpus: part.cpus, memoryMB: setup.memoryPerNodeMB == nil ? nil : part.memory)
            }
            var allocations = [allocation(run.part)]
            for part in moreParts[j] ?? [] { allocations.append(allocation(part)) }
            list.append(.init(id: id, priority: jobs[j].priority, startTime: run.start, preemptible: jobs[j].kind == .batch,
                              allocations: allocations))
        }
        nodes = baseNodes
        for n in free.indices {
            // Draining victims' GPUs and those held for a waiting preemptor: taken, not freeable.
            if !draining[n].isEmpty || !held[n].isEmpty { nodes[n].otherAllocated = draining[n].union(held[n]) }
            if resources {
                // Held for waiting preemptors: neither free nor a listed job's.
                let cpus = setup.coresPerSocket * freeCores[n].count
                nodes[n].cpus = cpus
                nodes[n].otherCPUs = cpus - freeCoreTotal[n] - listedCPUs[n]
                if let memory = setup.memoryPerNodeMB {
                    nodes[n].memoryMB = memory
                    nodes[n].otherMemoryMB = memory - freeMemory[n] - listedMemory[n]
                }
            }
        }
        return ClusterSnapshot(layouts: layouts, nodes: nodes, jobs: list, time: now, slurm: setup.slurm, blockLevels: blockLevels)
    }

    mutating func finishMetrics() {
        metrics.utilisation = totalGPUs == 0 || lastTime == 0 ? 0 : busyGPUSeconds / (Double(totalGPUs) * Double(lastTime))
        metrics.scheduledPerformance = inferenceSeconds == 0 ? 0 : weightedInference / inferenceSeconds
        metrics.inferenceUnstarted = pendingInference.count + waitingPlans.count
        let sorted = waits.sorted()
        func percentile(_ sorted: [Int64], _ p: Double) -> Int64 {
            guard !sorted.isEmpty else { return 0 }
            let rank = Int((p * Double(sorted.count - 1)).rounded(.up))
            return sorted[min(sorted.count - 1, max(0, rank))]
        }
        metrics.inferenceWaitP50 = percentile(sorted, 0.5)
        metrics.inferenceWaitP99 = percentile(sorted, 0.99)
        let preemption = preemptionWaits.sorted()
        metrics.preemptionWaitP50 = percentile(preemption, 0.5)
        metrics.preemptionWaitP99 = percentile(preemption, 0.99)
    }
}

/// A min-heap (four-ary).
struct MinHeap<Element: Comparable & Sendable>: Sendable {
    /// Four children per node (`4i + 1 ... 4i + 4`): half the levels of a binary heap, and a
    /// node's children side by side, so that a pop from a heap larger than the caches (a
    /// 10,000-node cluster's events) reaches half as many far places.
    private var items: [Element] = []

    var count: Int { items.count }
    var first: Element? { items.first }

    mutating func push(_ item: Element) {
        items.append(item)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 4
            guard item < items[parent] else { break }
            items[i] = items[parent]
            i = parent
        }
        items[i] = item
    }

    mutating func pop() -> Element? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        let n = items.count
        guard n > 0 else { return first }
        var i = 0
        while true {
            let child = 4 * i + 1
            guard child < n else { break }
            var m = child
            for c in child + 1..<min(child + 4, n) where items[c] < items[m] { m = c }
            guard items[m] < last else { break }
            items[i] = items[m]
            i = m
        }
        items[i] = last
        return first
    }
}

/// A set of node indices as a bitmap, iterated in ascending order (best fit's lowest index
/// among equals, without sorting).
struct NodeBits: Sequence {
    private var words: [UInt64]
    private(set) var count = 0

    init(count nodes: Int) { words = Array(repeating: 0, count: (Swift.max(0, nodes) + 63) / 64) }

    var isEmpty: Bool { count == 0 }

    mutating func insert(_ n: Int) {
        let bit = UInt64(1) << UInt64(n & 63)
        guard words[n >> 6] & bit == 0 else { return }
        words[n >> 6] |= bit
        count += 1
    }

    mutating func remove(_ n: Int) {
        let bit = UInt64(1) << UInt64(n & 63)
        guard words[n >> 6] & bit != 0 else { return }
        words[n >> 6] &= ~bit
        count -= 1
    }

    struct Iterator: IteratorProtocol {
        let words: [UInt64]
        var word: Int
        var bits: UInt64
        var left: Int

        mutating func next() -> Int? {
            guard left > 0 else { return nil }
            while bits == 0 {
                word += 1
                guard word < words.count else { return nil }
                bits = words[word]
            }
            let bit = bits.trailingZeroBitCount
            bits &= bits - 1
            left -= 1
            return word << 6 | bit
        }
    }

    func makeIterator() -> Iterator { Iterator(words: words, word: 0, bits: words.first ?? 0, left: count) }
}
