/// What the preemptor asks for.
public struct PreemptorRequest: Sendable, Equatable {
    public var jobID: UInt32?
    public var gpusPerNode: Int
    public var nodeCount: Int
    public var level: AffinityLevel
    public var mode: PlacementMode
    /// The preemptor's own preemption priority; only jobs of lower priority can be victims.
    public var priority: Int
    public var shape: RequestShape
    /// CPUs per node: a job with more than one may have cores on several sockets, which changes
    /// Slurm's GPU pick; on nodes whose CPUs are given (`NodeState.cpus`) the victims must also
    /// leave this many CPUs free.
    public var cpusPerNode: Int
    /// Memory per node, MB (0: none); checked on nodes whose memory is given.
    public var memoryPerNode: Int64
    /// Nodes the job may use (its partition, `-w`); nil for every node of the snapshot.
    public var candidateNodes: Set<String>?
    /// The same by node index of the planning snapshot (preempt/topo_aware's kept index gives
    /// this rather than names); when set, `candidateNodes` is not read.
    public internal(set) var candidateMask: [Bool]?
    /// Nodes named by `-w` when the job asks for more (`-N`): each must be one of its nodes,
    /// the rest chosen among the candidates. Named nodes as many as the job's are its
    /// candidates instead (`candidateNodes`).
    public var requiredNodes: Set<String>
    /// `--segment` (topology/block, Slurm 24.05+): the job's nodes come in segments of this
    /// many, each inside one block unit; 0: none.
    public var segmentSize: Int
    /// `--consolidate-segments`, `--spread-segments` (Slurm 25.11+).
    public var segmentPlacement: SegmentPlacement = []

    public init(jobID: UInt32? = nil, gpusPerNode: Int, nodeCount: Int = 1, level: AffinityLevel,
                mode: PlacementMode = .guaranteed, priority: Int, shape: RequestShape = .perNode,
                cpusPerNode: Int = 1, memoryPerNode: Int64 = 0, candidateNodes: Set<String>? = nil,
                requiredNodes: Set<String> = [], segmentSize: Int = 0) {
        self.requiredNodes = requiredNodes
        self.segmentSize = max(0, segmentSize)
        self.cpusPerNode = cpusPerNode
        self.memoryPerNode = max(0, memoryPerNode)
        self.jobID = jobID
        self.gpusPerNode = gpusPerNode
        self.nodeCount = nodeCount
        self.level = level
        self.mode = mode
        self.priority = priority
        self.shape = shape
        self.candidateNodes = candidateNodes
    }
}

/// How a `--segment` job's segments lie relative to each other (Slurm 25.11+; S:
/// eval_nodes_block.c of 25.11.7 and 26.05.3).
public struct SegmentPlacement: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// `--consolidate-segments`: every segment inside one aggregated block, the level holding
    /// the whole job (with `spread`: holding each segment in base blocks of its own).
    public static let consolidate = SegmentPlacement(rawValue: 1)
    /// `--spread-segments`: no two segments share a base block.
    public static let spread = SegmentPlacement(rawValue: 2)
}

/// The criteria a plan's cost is compared by, in the order the policy gives (then job ids).
public enum CostCriterion: String, Sendable, CaseIterable, Codable {
    /// The highest preemption priority among the victims (lower is better).
    case priority
    /// Number of victims.
    case victims
    /// GPU-seconds of work lost: each victim's GPUs times its run time so far.
    case work
    /// GPUs the victims free beyond what the preemptor needs.
    case collateral
    /// Work lost, where near ties go to the criteria after it: of the plans equal in the
    /// criteria before it, those losing at most `RoughWorkTolerance` more than the least work
    /// tie on it (a selection in two passes, `PlannerPolicy.nearWorkPasses`: the least work,
    /// then the cheapest by the other criteria within the tolerance of it). Over several nodes
    /// it is `work`.
    case roughWork = "rough-work"

    /// The default order: priority, victims, work, collateral (fewest victims; no order loses
    /// as little work as stock Slurm over the six rounds: docs/measurements.md, "Cost orders").
    public static let defaultOrder: [CostCriterion] = [.priority, .victims, .work, .collateral]

    /// Why a cost order does not parse: the message and the byte offset of the item it names
    /// in the text (for a file's column).
    public struct OrderError: Error, Sendable, Equatable {
        public var message: String
        public var offset: Int
    }

    /// Parses a cost order, most important first: criteria separated by commas, case ignored,
    /// each at most once (`CostOrder=` of topo_aware.conf, `--cost-order`). The criteria not
    /// given follow in the default order, as tie-breaks: `work` is work, priority, victims,
    /// collateral.
    public static func parseOrder(_ text: String) -> Result<[CostCriterion], OrderError> {
        guard !text.isEmpty else {
            return .failure(OrderError(message: "no criterion given (expected a comma-separated list of priority, victims, work, rough-work, collateral)", offset: 0))
        }
        var order: [CostCriterion] = []
        var offset = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            defer { offset += item.utf8.count + 1 }
            guard !item.isEmpty else {
                return .failure(OrderError(message: "an empty criterion in '\(printable(text))' (expected a comma-separated list of priority, victims, work, rough-work, collateral)", offset: offset))
            }
            guard let criterion = CostCriterion(rawValue: asciiLowercased(String(item))) else {
                return .failure(OrderError(message: "'\(printable(String(item)))' is not a cost criterion (expected priority, victims, work, rough-work or collateral)", offset: offset))
            }
            guard !order.contains(criterion) else {
                return .failure(OrderError(message: "'\(printable(String(item)))' is given twice", offset: offset))
            }
            order.append(criterion)
        }
        return .success(order + defaultOrder.filter { !order.contains($0) })
    }

    /// The order as written in a file: `priority,victims,work,collateral`.
    public static func text(_ order: [CostCriterion]) -> String { order.map(\.rawValue).joined(separator: ",") }
}

public struct PlannerPolicy: Sendable, Equatable {
    /// Cost criteria, most important first. Default: `CostCriterion.defaultOrder`.
    public var order: [CostCriterion]
    /// PreemptExemptTime: jobs that started less than this many seconds ago are not victims.
    public var exemptSeconds: Int64
    /// At most this many candidate victims per node are searched (the cheapest by priority and
    /// work); bounds the work per node to 2^limit subsets in the worst case.
    public var maxCandidatesPerNode: Int
    /// Only victim sets Slurm itself carries out whole: inside slurmctld the plan is enforced by
    /// offering exactly its victims as candidates, and `_run_now` (cons_common/job_test.c) stops
    /// removing candidates as soon as the job fits by count, so a victim whose GPUs are not
    /// needed for the count would be left running and the job placed on the GPUs of the rest.
    /// With this set, a set is kept only when leaving out any one victim leaves too few free GPUs
    /// (per socket for `--gpus-per-socket` requests) for the job to fit.
    public var requireEveryVictim: Bool
    /// How near the least work a plan must be to tie with it under `rough-work`.
    public var roughWorkTolerance: RoughWorkTolerance

    public init(order: [CostCriterion] = CostCriterion.defaultOrder, exemptSeconds: Int64 = 0, maxCandidatesPerNode: Int = 12,
                requireEveryVictim: Bool = false, roughWorkTolerance: RoughWorkTolerance = .default) {
        self.order = order
        self.roughWorkTolerance = roughWorkTolerance
        self.exemptSeconds = exemptSeconds
        self.maxCandidatesPerNode = max(1, min(maxCandidatesPerNode, 20))
        self.requireEveryVictim = requireEveryVictim
    }

    /// Plans losing more GPU-seconds than this are no choice (`roughWork`'s second pass).
    var workCeiling: Int64?

    /// The policy a plan over `count` nodes is chosen by: over several nodes `rough-work` counts
    /// as `work` (a plan's cost is the sum of its nodes', whose near ties do not follow from the
    /// nodes', so only exact work keeps the multi-node search exact).
    public func forNodes(_ count: Int) -> PlannerPolicy {
        guard count > 1, order.contains(.roughWork) else { return self }
        var exact = self
        exact.order = Self.exactWork(order)
        return exact
    }

    /// `order` with `rough-work` as exact work in its place (a later `work` dropped: it would
    /// decide nothing more); after `work`, `rough-work` decides nothing and is dropped.
    static func exactWork(_ order: [CostCriterion]) -> [CostCriterion] {
        guard let rough = order.firstIndex(of: .roughWork) else { return order }
        if let work = order.firstIndex(of: .work), work < rough { return order.filter { $0 != .roughWork } }
        return order.filter { $0 != .work }.map { $0 == .roughWork ? .work : $0 }
    }

    /// Where the order has `rough-work`: the policy of the first pass (exact work in its place:
    /// its plan has the least work of the plans best in the criteria before it) and of the
    /// second, given the first plan's work (the order without `rough-work`, plans losing more
    /// than `roughWorkTolerance` over it excluded: the first plan's criteria before it are the
    /// best, so they stay, and the criteria after it choose among the near ties). nil without
    /// `rough-work`, or with it after `work` (plans equal in work have no nearer ties).
    func nearWorkPasses() -> (exact: PlannerPolicy, near: (Int64) -> PlannerPolicy)? {
        guard let rough = order.firstIndex(of: .roughWork), (order.firstIndex(of: .work) ?? Int.max) > rough else { return nil }
        var exact = self
        exact.order = Self.exactWork(order)
        let base = self
        return (exact, { least in
            var near = base
            near.order = base.order.filter { $0 != .roughWork }
            near.workCeiling = base.roughWorkTolerance.ceiling(least)
            return near
        })
    }
}

/// The cost of a plan; compared by `PlannerPolicy.order`, then by victim ids.
public struct PlanCost: Sendable, Equatable, CustomStringConvertible {
    /// Highest victim priority, or nil when there are no victims.
    public var maxPriority: Int?
    public var victims: Int
    public var gpuSeconds: Int64
    public var collateral: Int
    /// Victim job ids, ascending (the final tiebreak).
    public var victimIDs: [UInt32]

    public static let zero = PlanCost(maxPriority: nil, victims: 0, gpuSeconds: 0, collateral: 0, victimIDs: [])

    /// -1, 0, 1 as `self` is cheaper, equal, dearer under `order`.
    public func compare(_ other: PlanCost, order: [CostCriterion]) -> Int {
        let c = Planner.CostBound(self).compare(Planner.CostBound(other), order: order)
        if c != 0 { return c }
        if victimIDs == other.victimIDs { return 0 }
        return victimIDs.lexicographicallyPrecedes(other.victimIDs) ? -1 : 1
    }

    static func cmp<T: Comparable>(_ a: T, _ b: T) -> Int { a < b ? -1 : (a > b ? 1 : 0) }

    public var description: String {
        "priority \(maxPriority.map(String.init) ?? "-"), \(victims) victim\(victims == 1 ? "" : "s"), "
            + "\(gpuSeconds / 3600) GPU-h \((gpuSeconds % 3600) / 60) min lost, \(collateral) collateral GPU\(collateral == 1 ? "" : "s")"
    }
}

/// One node of a plan.
public struct NodePlan: Sendable, Equatable {
    public var node: String
    public var victims: [UInt32]
    /// GPUs the victims free on this node.
    public var freedGPUs: GPUSet
    /// Free GPUs after the victims are requeued.
    public var freeAfter: GPUSet
    /// What Slurm's GPU pick gives the job there, one per core-placement scenario.
    public var expectedGPUs: [GPUSet]
    /// The worst alignment among those picks.
    public var level: AffinityLevel
    public var cost: PlanCost
    /// The cheapest victim set on this node that was turned down because Slurm's pick would not
    /// be aligned, with that pick (for "why not" explanations).
    public var rejected: (victims: [UInt32], cost: PlanCost, pick: GPUSet, level: AffinityLevel)?

    public static func == (a: NodePlan, b: NodePlan) -> Bool {
        a.node == b.node && a.victims == b.victims && a.freedGPUs == b.freedGPUs && a.freeAfter == b.freeAfter
            && a.expectedGPUs == b.expectedGPUs && a.level == b.level && a.cost == b.cost
    }
}

/// A preemption plan: who to requeue, where the preemptor lands, how aligned, and why.
public struct Plan: Sendable, Equatable {
    public var request: PreemptorRequest
    public var nodes: [NodePlan]
    /// All victims, ascending.
    public var victims: [UInt32]
    /// The worst alignment over the plan's nodes.
    public var level: AffinityLevel
    /// Best-effort plan that reaches a looser level than required.
    public var degraded: Bool
    public var cost: PlanCost
    /// Longest GraceTime among the victims: the GPUs are free after at most this long.
    public var graceSeconds: Int
    /// Human sentences: why these victims, why not others, which level.
    public var reasons: [String]
    /// Machine-readable reason code.
    public var code: Code
    /// Multi-node plans on a cluster with blocks or switches: the one block (leaf switch) all
    /// its nodes are in, or which kind of domain it spans; nil otherwise.
    public var domain: NodeDomain? = nil

    public enum Code: String, Sendable {
        case fitsWithoutPreemption = "fits-without-preemption"
        case aligned
        case degraded
    }
}

/// Where a multi-node plan's nodes lie above the node: inside one block of topology/block (one
/// NVLink domain), under one leaf switch of topology/tree, or across several.
public struct NodeDomain: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case block
        case leafSwitch = "switch"
        /// The plural, for "across blocks" (also the value of the records' `across` key).
        public var plural: String { self == .block ? "blocks" : "switches" }
        var noun: String { self == .block ? "block" : "leaf switch" }
        var nounPlural: String { self == .block ? "blocks" : "leaf switches" }
    }
    public var kind: Kind
    /// The block or switch holding every node; nil when the plan spans several.
    public var name: String?

    public init(kind: Kind, name: String?) {
        self.kind = kind
        self.name = name
    }

    /// `block b1`, `leaf switch s2`, `across blocks`.
    public var description: String { name.map { "\(kind.noun) \($0)" } ?? "across \(kind.nounPlural)" }
}

public enum PlanOutcome: Sendable, Equatable {
    case plan(Plan)
    case noPlan(code: NoPlanCode, reason: String)
}

public enum NoPlanCode: String, Sendable {
    case invalidRequest = "invalid-request"
    case noCandidateNodes = "no-candidate-nodes"
    case notEnoughPreemptible = "not-enough-preemptible"
    case noAlignedPlan = "no-aligned-plan"
}

/// What a plan reads of one job, kept together: a node's bound, a plan and eligibility read
/// several of these per job, one cache line where separate arrays took one each (at 10,000
/// nodes the jobs no longer fit the caches). The fields in this order take 32 bytes.
struct JobFacts: Sendable, Equatable {
    var priority: Int
    var start: Int64
    /// GPUs on all nodes.
    var gpus: Int
    var id: UInt32
    var preemptible: Bool
}

extension JobFacts {
    init(_ job: ClusterSnapshot.RunningJob) {
        self.init(priority: job.priority, start: job.startTime, gpus: job.gpuCount, id: job.id, preemptible: job.preemptible)
    }
}

/// The snapshot prepared for planning: topologies built, per-node free GPUs and jobs indexed.
/// Build once per scheduling pass; plan many preemptors against it.
public struct PlanningIndex: Sendable {
    public internal(set) var snapshot: ClusterSnapshot
    var topologies: [NodeTopology]
    /// Per node: GPUs not held by anyone.
    var free: [GPUSet]
    /// Per node: CPUs and memory (MB) not held by anyone; `Int.max` where the snapshot does not
    /// give them (not a constraint).
    var freeCPUs: [Int]
    var freeMemory: [Int64]
    /// Per node: (job index, GPUs on this node).
    var jobsOnNode: [[(job: Int, gpus: GPUSet)]]
    var nodeByName: [String: Int]
    /// Per layout: affinity groups and the pick model's tables.
    var tables: [AffinityTable]
    var pickContexts: [SlurmGPUPick.Context]
    /// Per layout, per level: the group masks (flat arrays for the per-node bound).
    var groupMasks: [[[GPUSet]]]
    /// Per node: its layout index.
    var layoutOfNode: [Int]
    /// Per job: what a plan reads of it, together (`JobFacts`).
    var jobFacts: [JobFacts]
    /// Nodes not available (kept with `snapshot.nodes[n].available`: `setNode`), so that a plan
    /// knows without walking the nodes that every node is a candidate.
    private(set) var unavailableNodes = 0

    public init(_ snapshot: ClusterSnapshot) throws(SnapshotError) {
        self.snapshot = snapshot
        var topologies: [NodeTopology] = []
        var tables: [AffinityTable] = []
        for (i, layout) in snapshot.layouts.enumerated() {
            do { topologies.append(try layout.topology()) } catch { throw SnapshotError("layouts[\(i)]: \(error)") }
            do { tables.append(try AffinityTable(topologies[i])) } catch { throw SnapshotError("layouts[\(i)]: \(error)") }
        }
        self.tables = tables
        pickContexts = topologies.map { SlurmGPUPick.Context($0, model: snapshot.slurm.gpuPick) }
        groupMasks = tables.map { table in AffinityLevel.allCases.map { table.groups(at: $0).map(\.gpus) } }
        layoutOfNode = snapshot.nodes.map(\.layout)
        jobFacts = snapshot.jobs.map(JobFacts.init)
        var allocated: [GPUSet] = []
        var nodeByName: [String: Int] = [:]
        for (i, node) in snapshot.nodes.enumerated() {
            guard topologies.indices.contains(node.layout) else {
                throw SnapshotError("nodes[\(i)] (\(printable(node.name))): layout \(node.layout) does not exist")
            }
            guard nodeByName[node.name] == nil else { throw SnapshotError("node \(printable(node.name)) is listed twice") }
            nodeByName[node.name] = i
            allocated.append(node.otherAllocated ?? GPUSet())
        }
        var freeCPUs: [Int] = [], freeMemory: [Int64] = []
        freeCPUs.reserveCapacity(snapshot.nodes.count)
        freeMemory.reserveCapacity(snapshot.nodes.count)
        for (i, node) in snapshot.nodes.enumerated() {
            guard node.cpus != nil || node.memoryMB != nil || node.otherCPUs != nil || node.otherMemoryMB != nil else {
                freeCPUs.append(Int.max)
                freeMemory.append(Int64.max)
                continue
            }
            for (field, value) in [("cpus", node.cpus.map(Int64.init)), ("otherCPUs", node.otherCPUs.map(Int64.init)),
                                   ("memoryMB", node.memoryMB), ("otherMemoryMB", node.otherMemoryMB)] {
                if let value, value < 0 || value > Self.maxResource {
                    throw SnapshotError("nodes[\(i)] (\(printable(node.name))): \(field) \(value) is not from 0 to \(Self.maxResource)")
                }
            }
            freeCPUs.append(node.cpus.map { $0 - (node.otherCPUs ?? 0) } ?? Int.max)
            freeMemory.append(node.memoryMB.map { $0 - (node.otherMemoryMB ?? 0) } ?? Int64.max)
        }
        var jobsOnNode = Array(repeating: [(job: Int, gpus: GPUSet)](), count: snapshot.nodes.count)
        for (j, job) in snapshot.jobs.enumerated() {
            for allocation in job.allocations {
                guard snapshot.nodes.indices.contains(allocation.node) else {
                    throw SnapshotError("job \(job.id): node index \(allocation.node) does not exist")
                }
                let count = topologies[snapshot.nodes[allocation.node].layout].gpuCount
                guard allocation.gpus.isSubset(of: GPUSet.first(count)) else {
                    throw SnapshotError("job \(job.id): GPUs \(allocation.gpus) beyond the \(count) of node \(snapshot.nodes[allocation.node].name)")
                }
                if allocation.cpus != nil || allocation.memoryMB != nil {
                    for (field, value) in [("cpus", allocation.cpus.map(Int64.init)), ("memoryMB", allocation.memoryMB)] {
                        if let value, value < 0 || value > Self.maxResource {
                            throw SnapshotError("job \(job.id): \(field) \(value) on node \(snapshot.nodes[allocation.node].name) is not from 0 to \(Self.maxResource)")
                        }
                    }
                }
                allocated[allocation.node] = allocated[allocation.node].union(allocation.gpus)
                jobsOnNode[allocation.node].append((j, allocation.gpus))
                if freeCPUs[allocation.node] != Int.max { freeCPUs[allocation.node] -= allocation.cpus ?? 0 }
                if freeMemory[allocation.node] != Int64.max { freeMemory[allocation.node] -= allocation.memoryMB ?? 0 }
            }
        }
        self.topologies = topologies
        self.free = snapshot.nodes.indices.map { GPUSet.first(topologies[snapshot.nodes[$0].layout].gpuCount).subtracting(allocated[$0]) }
        self.jobsOnNode = jobsOnNode
        self.nodeByName = nodeByName
        self.freeCPUs = freeCPUs
        self.freeMemory = freeMemory
        unavailableNodes = snapshot.nodes.count(where: { !$0.available })
    }

    /// Node `n` available or not (the count kept with it).
    mutating func setAvailable(_ n: Int, _ available: Bool) {
        guard snapshot.nodes[n].available != available else { return }
        snapshot.nodes[n].available = available
        unavailableNodes += available ? -1 : 1
    }

    /// An index of no nodes and no jobs: a placeholder until a cluster's is built.
    init() {
        snapshot = ClusterSnapshot(layouts: [], nodes: [], jobs: [], time: 0)
        (topologies, tables, pickContexts, groupMasks) = ([], [], [], [])
        (free, freeCPUs, freeMemory, jobsOnNode, layoutOfNode, nodeByName) = ([], [], [], [], [], [:])
        jobFacts = []
    }

    /// Job `j`'s GPU-seconds run so far (all nodes) at the snapshot's time, computed when read
    /// (an index kept from plan to plan need not bring every job's up to date): capped at 2^40
    /// GPU-seconds (35,000 GPU-years) so that sums over any plan stay far from overflow
    /// whatever times a snapshot carries.
    @inline(__always)
    func work(of j: Int) -> Int64 {
        let (product, overflow) = Int64(jobFacts[j].gpus).multipliedReportingOverflow(by: Planner.age(at: snapshot.time, since: jobFacts[j].start))
        return overflow ? Self.maxWork : min(product, Self.maxWork)
    }

    static let maxWork: Int64 = 1 << 40
    /// Largest CPU count or memory (MB) a snapshot may give: 2^40 (a petabyte of memory), so
    /// that sums over a node's jobs cannot overflow.
    static let maxResource: Int64 = 1 << 40

    /// CPUs and memory (MB) job `j` holds on `node` (0 where the snapshot gives none).
    func resources(ofJob j: Int, onNode node: Int) -> (cpus: Int, memory: Int64) {
        guard let allocation = snapshot.jobs[j].allocations.first(where: { $0.node == node }) else { return (0, 0) }
        return (allocation.cpus ?? 0, allocation.memoryMB ?? 0)
    }

    /// Whether `cpus` and `memory` more on top of what is free on `node` give the request its
    /// CPUs and memory (always, where the snapshot does not give them).
    func resourcesFit(_ request: PreemptorRequest, node: Int, freedCPUs: Int = 0, freedMemory: Int64 = 0) -> Bool {
        (freeCPUs[node] == Int.max || freeCPUs[node] + freedCPUs >= request.cpusPerNode)
            && (freeMemory[node] == Int64.max || freeMemory[node] + freedMemory >= request.memoryPerNode)
    }

    public func topology(ofNode node: Int) -> NodeTopology { topologies[snapshot.nodes[node].layout] }
    public func freeGPUs(ofNode node: Int) -> GPUSet { free[node] }
}

/// Arrays a plan needs over all nodes and jobs, kept by a caller that plans again and again on
/// a large index (preempt/topo_aware's kept state), so that a plan allocates nothing that grows
/// with the cluster.
public struct PlannerScratch: Sendable {
    var eligible: [Bool] = []
    var candidates: [Int] = []
    var bounded: [(bound: Planner.CostBound, node: Int)] = []
    /// Node bounds kept between plans (`BoundCache`), by a caller that invalidates changed nodes.
    var bounds: BoundCache?
    /// Eligibility kept between plans of one preemptor class (priority, job id; no exempt
    /// time), by a caller that names every job slot that changed (`jobChanged`): only those are
    /// judged again. Off unless `keepsEligibility` (the simulator).
    var keepsEligibility = false
    private var eligibleClass: (priority: Int, jobID: UInt32?)?
    private var changedJobs: [Int] = []
    public init() {}

    /// Job slot `j` of the caller's index holds another job (or none) since the last plan.
    mutating func jobChanged(_ j: Int) {
        if keepsEligibility, eligibleClass != nil { changedJobs.append(j) }
    }

    /// `Planner.eligibility` into `eligible`, from the kept one where it holds.
    mutating func eligibility(_ request: PreemptorRequest, index: PlanningIndex, policy: PlannerPolicy, into eligible: inout [Bool]) {
        guard keepsEligibility, policy.exemptSeconds == 0, let kept = eligibleClass, kept == (request.priority, request.jobID),
              eligible.count <= index.jobFacts.count
        else {
            Planner.eligibility(request, index: index, policy: policy, into: &eligible)
            eligibleClass = keepsEligibility && policy.exemptSeconds == 0 ? (request.priority, request.jobID) : nil
            changedJobs.removeAll(keepingCapacity: true)
            return
        }
        for j in changedJobs where eligible.indices.contains(j) { eligible[j] = Planner.isEligible(j, request, index: index, policy: policy) }
        changedJobs.removeAll(keepingCapacity: true)
        // Slots added since (the index grew): judged now.
        for j in eligible.count..<index.jobFacts.count { eligible.append(Planner.isEligible(j, request, index: index, policy: policy)) }
    }
}

/// Chooses victims so that the GPUs they free give the preemptor an aligned group, at the
/// lowest cost. Pure and deterministic: the same index, request and policy give the same plan.
public enum Planner {
    public static func plan(_ request: PreemptorRequest, in index: PlanningIndex,
                            policy: PlannerPolicy = PlannerPolicy()) -> PlanOutcome {
        var scratch = PlannerScratch()
        return plan(request, in: index, policy: policy, scratch: &scratch)
    }

    /// The same, with the arrays over all nodes and jobs taken from `scratch` and left there.
    public static func plan(_ request: PreemptorRequest, in index: PlanningIndex, policy: PlannerPolicy,
                            scratch: inout PlannerScratch) -> PlanOutcome {
        let policy = policy.forNodes(request.nodeCount)
        if let passes = policy.nearWorkPasses() {
            // rough-work: the least work first, then the cheapest by the rest within the tolerance of it
            // (that plan is among them, so the second pass always plans).
            let first = plan(request, in: index, policy: passes.exact, scratch: &scratch)
            guard case let .plan(least) = first else { return first }
            let near = passes.near(least.cost.gpuSeconds)
            guard case var .plan(chosen) = plan(request, in: index, policy: near, scratch: &scratch) else { return first }
            if chosen.victims != least.victims, let ceiling = near.workCeiling {
                chosen.reasons.insert("rough-work: \(least.cost.victims) victim(s) would lose the least work, \(least.cost.gpuSeconds) GPU-s; "
                                      + "plans losing up to \(ceiling) GPU-s (\(near.roughWorkTolerance) more) tie with it, and \(CostCriterion.text(near.order)) chose among them",
                                      at: max(0, chosen.reasons.count - 1))
            }
            return .plan(chosen)
        }
        guard request.gpusPerNode > 0, request.gpusPerNode <= GPUSet.capacity, request.nodeCount > 0,
              request.nodeCount <= max(1, index.snapshot.nodes.count)
        else {
            return .noPlan(code: .invalidRequest, reason: "the request (\(request.gpusPerNode) GPUs on \(request.nodeCount) node(s)) cannot be planned")
        }
        let snapshot = index.snapshot
        // Taken out while used (written in place), put back at the end.
        var eligible = scratch.eligible, candidates = scratch.candidates, bounded = scratch.bounded
        (scratch.eligible, scratch.candidates, scratch.bounded) = ([], [], [])
        defer { (scratch.eligible, scratch.candidates, scratch.bounded) = (eligible, candidates, bounded) }
        scratch.eligibility(request, index: index, policy: policy, into: &eligible)
        candidates.removeAll(keepingCapacity: true)
        // A single-node job unnamed, with every node of the cluster a candidate, planned from
        // the kept bounds: those need no list of the candidates, so none is built (a plan's
        // work then does not grow with the cluster).
        let keptBounds = request.nodeCount == 1 && request.requiredNodes.isEmpty && policy.exemptSeconds == 0
            && request.candidateMask == nil && request.candidateNodes == nil && index.unavailableNodes == 0
            && !snapshot.nodes.isEmpty && scratch.bounds != nil
        if !keptBounds {
            for node in snapshot.nodes.indices where snapshot.nodes[node].available {
                let candidate: Bool
                if let mask = request.candidateMask {
                    candidate = mask.indices.contains(node) && mask[node]
                } else {
                    candidate = request.candidateNodes?.contains(snapshot.nodes[node].name) ?? true
                }
                if candidate { candidates.append(node) }
            }
        }
        let candidateCount = keptBounds ? snapshot.nodes.count : candidates.count
        func anyCandidate(_ test: (Int) -> Bool) -> Bool {
            keptBounds ? snapshot.nodes.indices.contains(where: test) : candidates.contains(where: test)
        }
        guard candidateCount > 0 else {
            return .noPlan(code: .noCandidateNodes, reason: "no available node is a candidate for the job")
        }
        // Nodes named by -w: each in the plan, the rest chosen. As many as the job's nodes: they
        // are its only candidates.
        var required: [Int] = []
        if !request.requiredNodes.isEmpty {
            var missing: [String] = []
            let allowed = Set(candidates)
            for name in request.requiredNodes.sorted() {
                if let n = index.nodeByName[name], allowed.contains(n) { required.append(n) } else { missing.append(name) }
            }
            guard missing.isEmpty else {
                return .noPlan(code: .noCandidateNodes,
                               reason: "required node(s) \(missing.joined(separator: ",")) (-w) not available to the job")
            }
            if required.count >= request.nodeCount {
                candidates = required
                required = []
            }
        }
        let blockLevels = request.nodeCount > 1 ? snapshot.blockLevels ?? BlockLevels.derived(from: snapshot.nodes) : nil
        let blocked = blockLevels != nil && candidates.contains(where: { snapshot.nodes[$0].block != nil })
        var segment = 0
        if blocked, let blockLevels {
            switch segments(request, baseNodes: blockLevels.baseNodes, release: snapshot.slurm) {
            case let .success(size): segment = size
            case let .failure(refusal): return .noPlan(code: .invalidRequest, reason: refusal.reason)
            }
        }
        // Guaranteed: the required level only. Best-effort: the required level first, then each
        // looser level until one has a plan (tighter than required is not preferred).
        let levels = request.mode == .guaranteed ? [request.level] : AffinityLevel.allCases.filter { $0 >= request.level }
        if segment > 0, let blockLevels {
            return planSegments(request, size: segment, levels: levels, blockLevels: blockLevels, index: index,
                                eligible: eligible, candidates: candidates, policy: policy, bounded: &bounded)
        }
        // Multi-node jobs on a cluster with blocks (topology/block: NVLink domains): Slurm places
        // the job inside one block of the level its node count needs, so plans stay inside one
        // such unit, the cheapest (in either mode: victims elsewhere would free nothing Slurm
        // uses). Else, with leaf switches (topology/tree), one switch's nodes first, then any,
        // except in guaranteed mode while some switch of the cluster could hold the job. A unit
        // or switch without every required node is no choice.
        var groupings: [(kind: NodeDomain.Kind, groups: [String: [Int]])] = []
        var spanAllowed = true
        if request.nodeCount > 1 {
            if blocked, let blockLevels {
                var units: [String: [Int]] = [:]
                for unit in blockLevels.nodeUnits(forNodes: request.nodeCount, of: snapshot.nodes, members: candidates)
                    where !unit.nodes.isEmpty && (required.isEmpty || Set(required).isSubset(of: unit.nodes)) {
                    units[unit.name] = unit.nodes
                }
                groupings.append((.block, units))
                spanAllowed = false
            } else {
                var leaves: [String: [Int]] = [:]
                for node in candidates {
                    if let leaf = snapshot.nodes[node].leafSwitch { leaves[leaf, default: []].append(node) }
                }
                if !leaves.isEmpty {
                    let named = Set(required)
                    let holding = named.isEmpty ? leaves : leaves.filter { named.isSubset(of: $0.value) }
                    groupings.append((.leafSwitch, holding))
                    if request.mode == .guaranteed {
                        spanAllowed = holding.isEmpty || largestDomain(.leafSwitch, in: snapshot) < request.nodeCount
                    }
                }
            }
        }
        for level in levels {
            for grouping in groupings {
                var best: (name: String, plans: [NodePlan], searched: Int, cost: PlanCost)?
                for (name, members) in grouping.groups.sorted(by: { $0.key < $1.key }) where members.count >= request.nodeCount {
                    let (chosen, searched) = searchNodes(level: level, request: request, index: index, eligible: eligible,
                                                         candidates: members, required: required, policy: policy, bounded: &bounded)
                    guard chosen.count >= request.nodeCount else { continue }
                    let cost = aggregate(chosen)
                    if best.map({ cost.compare($0.cost, order: policy.order) < 0 }) ?? true {
                        best = (name, chosen, searched, cost)
                    }
                }
                if let best {
                    var plan = assemble(best.plans, request: request, index: index, candidates: candidates.count,
                                        searched: best.searched)
                    let domain = NodeDomain(kind: grouping.kind, name: best.name)
                    plan.domain = domain
                    let place = grouping.kind == .leafSwitch ? "under \(domain)"
                        : best.name.contains(",") ? "in the aggregated block \(best.name)" : best.name == "all blocks" ? "in the blocks (no level holds them)" : "in \(domain)"
                    plan.reasons.insert("all \(request.nodeCount) nodes \(place) (topology.conf)", at: 0)
                    return .plan(plan)
                }
            }
            guard spanAllowed else { continue }
            let chosen: [NodePlan], searched: Int
            if keptBounds || (request.nodeCount == 1 && required.isEmpty && policy.exemptSeconds == 0 && candidates.count == snapshot.nodes.count),
               var kept = scratch.bounds {
                // The kept bounds (every node a candidate, eligibility fixed between plans).
                scratch.bounds = nil
                (chosen, searched) = kept.search(level: level, request: request, index: index, eligible: eligible, policy: policy)
                scratch.bounds = kept
            } else {
                (chosen, searched) = searchNodes(level: level, request: request, index: index, eligible: eligible,
                                                 candidates: keptBounds ? Array(snapshot.nodes.indices) : candidates,
                                                 required: required, policy: policy, bounded: &bounded)
            }
            if chosen.count >= request.nodeCount {
                var plan = assemble(chosen, request: request, index: index, candidates: candidateCount, searched: searched)
                if let grouping = groupings.first {
                    let kind = grouping.kind
                    plan.domain = NodeDomain(kind: kind, name: nil)
                    let why = grouping.groups.isEmpty && !required.isEmpty ? "the nodes named by -w lie under several \(kind.nounPlural)"
                        : request.mode == .guaranteed ? "no \(kind.noun) of the cluster has \(request.nodeCount) nodes"
                        : "no \(kind.noun) can host all \(request.nodeCount) nodes"
                    plan.reasons.insert("\(why): the plan spans \(kind.nounPlural)", at: 0)
                }
                return .plan(plan)
            }
        }
        if !spanAllowed, let kind = groupings.first?.kind {
            if kind == .block {
                let size = blockLevels?.level(forNodes: request.nodeCount).map { $0 == 1 ? "one block" : "one aggregated block of \($0) blocks" } ?? "the blocks"
                if !required.isEmpty, groupings.first?.groups.isEmpty ?? false {
                    let names = required.map { snapshot.nodes[$0].name }.joined(separator: ",")
                    return .noPlan(code: .noAlignedPlan,
                                   reason: "the nodes named by -w (\(names)) are not all in \(size), where topology/block places a job of \(request.nodeCount) nodes")
                }
                let aligned = request.mode == .guaranteed ? "\(request.level.name)-aligned " : ""
                return .noPlan(code: .noAlignedPlan,
                               reason: "no block can free \(request.gpusPerNode) \(aligned)GPUs on each of \(request.nodeCount) nodes; topology/block places a job of \(request.nodeCount) nodes in \(size), and victims across blocks would free nothing it uses")
            }
            var loose = request
            loose.mode = .bestEffort
            let reachable: String
            if case let .plan(plan) = plan(loose, in: index, policy: policy) {
                reachable = "; the best reachable is \(plan.level.name)-aligned \(plan.domain.map(\.description) ?? "") (best-effort mode would take it)"
            } else {
                reachable = ""
            }
            return .noPlan(code: .noAlignedPlan,
                           reason: "no \(kind.noun) can free \(request.nodeCount) nodes of \(request.level.name)-aligned GPUs, and guaranteed mode does not span \(kind.nounPlural)\(reachable)")
        }
        if request.mode == .guaranteed {
            var loose = request
            loose.mode = .bestEffort
            if case let .plan(reachable) = plan(loose, in: index, policy: policy) {
                return .noPlan(code: .noAlignedPlan,
                               reason: "no plan puts the job on \(request.level.name)-aligned GPUs on \(request.nodeCount) node(s) whatever cores Slurm gives it; the best reachable is \(reachable.level.name) (best-effort mode would take it)")
            }
        }
        let whose = request.priority == Int.max ? "jobs it may preempt" : "jobs of priority below \(request.priority)"
        let whereTo = request.shape == .perSocket ? " on one socket" : ""
        var with: [String] = []
        if anyCandidate({ index.freeCPUs[$0] != Int.max }) { with.append("\(request.cpusPerNode) CPUs") }
        if anyCandidate({ index.freeMemory[$0] != Int64.max }) { with.append("\(request.memoryPerNode) MB of memory") }
        let resources = with.isEmpty ? "" : " and \(with.joined(separator: " and "))"
        return .noPlan(code: .notEnoughPreemptible,
                       reason: "fewer than \(request.nodeCount) of \(candidateCount) candidate node(s) can free \(request.gpusPerNode) GPUs\(whereTo)\(resources) from \(whose)")
    }

    /// Nodes in the largest block (leaf switch) of the cluster, available or not.
    static func largestDomain(_ kind: NodeDomain.Kind, in snapshot: ClusterSnapshot) -> Int {
        var sizes: [String: Int] = [:]
        for node in snapshot.nodes {
            if let name = kind == .block ? node.block : node.leafSwitch { sizes[name, default: 0] += 1 }
        }
        return sizes.values.max() ?? 0
    }

    /// Victim priorities tried as caps in one multi-node search; above this many distinct ones,
    /// only the lowest are tried as caps, then all together (bounded work in slurmctld).
    static let maxPriorityCaps = 8

    /// The `nodeCount` node plans aligned at `level` whose aggregate cost is least. One node's
    /// cheapest plan is not always the best part of a multi-node plan: the aggregate's priority
    /// is the highest over its nodes, so a node may better take more victims of a lower priority
    /// when another node needs a high one anyway. So for each victim priority `p` (ascending) the
    /// search runs with victims of priority at most `p`, ranking by the other criteria (which add
    /// up over nodes, so the cheapest nodes make the cheapest sum), and keeps the best aggregate;
    /// with priority first in the order the first cap that gives a plan is the optimum. Exact
    /// where victims hold GPUs on one node each (a job on several nodes is one victim but its
    /// per-node costs add up) and with at most `maxPriorityCaps` distinct priorities.
    /// With `required` nodes (`-w`), each of them is in the plan with its cheapest victims at
    /// `level` (or there is none) and the search chooses the rest among the other candidates;
    /// `segments` (`--segment`): node counts per unit come in multiples of the segment size,
    /// whole segments chosen cheapest first (`chooseSegments`).
    static func searchNodes(level: AffinityLevel, request: PreemptorRequest, index: PlanningIndex, eligible: [Bool],
                            candidates: [Int], required: [Int] = [], segments: Segments? = nil, policy: PlannerPolicy,
                            bounded: inout [(bound: CostBound, node: Int)]) -> (plans: [NodePlan], searched: Int) {
        func choose(_ eligible: [Bool], _ policy: PlannerPolicy, _ bounded: inout [(bound: CostBound, node: Int)]) -> (plans: [NodePlan], searched: Int) {
            if let segments {
                return chooseSegments(segments, level: level, request: request, index: index, eligible: eligible,
                                      policy: policy, bounded: &bounded)
            }
            guard !required.isEmpty else {
                return search(level: level, request: request, index: index, eligible: eligible, candidates: candidates,
                              policy: policy, bounded: &bounded)
            }
            var plans: [NodePlan] = []
            for node in required {
                guard let plan = planNode(node, level: level, request: request, index: index, eligible: eligible, policy: policy)
                else { return ([], plans.count + 1) }
                plans.append(plan)
            }
            var rest = request
            rest.nodeCount = request.nodeCount - required.count
            guard rest.nodeCount > 0 else { return (plans, required.count) }
            let named = Set(required)
            let others = candidates.filter { !named.contains($0) }
            let (more, searched) = search(level: level, request: rest, index: index, eligible: eligible, candidates: others,
                                          policy: policy, bounded: &bounded)
            guard more.count >= rest.nodeCount else { return ([], searched + required.count) }
            return (plans + more, searched + required.count)
        }
        guard request.nodeCount > 1, let position = policy.order.firstIndex(of: .priority) else {
            return choose(eligible, policy, &bounded)
        }
        var priorities = Set<Int>()
        for node in candidates {
            for entry in index.jobsOnNode[node] where eligible[entry.job] { priorities.insert(index.jobFacts[entry.job].priority) }
        }
        guard priorities.count > 1 else { return choose(eligible, policy, &bounded) }
        var caps = priorities.sorted()
        if caps.count > maxPriorityCaps { caps = Array(caps.prefix(maxPriorityCaps - 1)) + [caps[caps.count - 1]] }
        var additive = policy
        additive.order.remove(at: position)
        var best: (plans: [NodePlan], cost: PlanCost)?
        var searched = 0
        var capped = eligible
        for cap in caps {
            for j in capped.indices { capped[j] = eligible[j] && index.jobFacts[j].priority <= cap }
            let (plans, count) = choose(capped, additive, &bounded)
            searched += count
            guard plans.count >= request.nodeCount else { continue }
            let cost = aggregate(plans)
            if best.map({ cost.compare($0.cost, order: policy.order) < 0 }) ?? true { best = (plans, cost) }
            if position == 0 { break }
        }
        return (best?.plans ?? [], searched)
    }

    /// A job's `--segment` over the block units of its segment size (candidate nodes by unit,
    /// units too small for one segment left out), at most `perUnit` segments in one unit.
    struct Segments {
        var size: Int
        var units: [(name: String, nodes: [Int])]
        var perUnit: Int? = nil
    }

    struct Refusal: Error {
        var reason: String
    }

    /// The segment size the release's topology/block places the job with (0: none, or one
    /// segment: the job itself), or why it will never place it. S: eval_nodes_block.c of
    /// 24.11.5 (a segment larger than a base block, or a segmented job naming nodes, is
    /// refused), 25.11.7 and 26.05.3 (a segmented job naming fewer nodes than it asks for is
    /// refused; 26.05 ignores a segment larger than the job, 25.11 refuses it as not dividing
    /// the job); all: a segment size not dividing the job's nodes is refused.
    static func segments(_ request: PreemptorRequest, baseNodes: Int, release: SlurmRelease) -> Result<Int, Refusal> {
        let size = request.segmentSize, nodes = request.nodeCount, named = request.requiredNodes.count
        guard size > 0 else { return .success(0) }
        if release >= SlurmRelease(26, 5, 0), size > nodes { return .success(0) }
        if release < SlurmRelease(25, 11, 0), size > baseNodes {
            return .failure(Refusal(reason: "--segment=\(size) is larger than a base block (\(baseNodes) nodes): Slurm \(release) will not place the job"))
        }
        guard nodes % size == 0 else {
            return .failure(Refusal(reason: "--segment=\(size) does not divide the job's \(nodes) nodes: Slurm will not place the job"))
        }
        guard nodes / size > 1 else { return .success(0) }
        if named > 0, release < SlurmRelease(25, 11, 0) || named < nodes {
            let what = release < SlurmRelease(25, 11, 0) ? "nodes named by -w" : "fewer nodes named by -w (\(named)) than it asks for (\(nodes))"
            return .failure(Refusal(reason: "a job with --segment=\(size) and \(what): Slurm \(release) will not place it"))
        }
        return .success(size)
    }

    /// A segmented job (`--segment`, more than one segment): Slurm places each segment inside
    /// one unit of the segment's block level, one after another, so the plan's nodes in each
    /// unit come in whole segments; the segments may share a unit or not. Either mode stays
    /// inside units (victims elsewhere free nothing Slurm uses).
    static func planSegments(_ request: PreemptorRequest, size: Int, levels: [AffinityLevel], blockLevels: BlockLevels,
                             index: PlanningIndex, eligible: [Bool], candidates: [Int], policy: PlannerPolicy,
                             bounded: inout [(bound: CostBound, node: Int)]) -> PlanOutcome {
        let snapshot = index.snapshot
        let count = request.nodeCount / size
        let unitName = blockLevels.level(forNodes: size).map { $0 == 1 ? "block" : "aggregated block of \($0) blocks" } ?? "set of blocks"
        // --spread-segments: no two segments in one base block (exact where a segment fits in a
        // base block; a larger segment is given a unit of its own). --consolidate-segments:
        // every segment inside one unit of the level holding the job (with spread, holding each
        // segment in whole base blocks), tried in turn.
        let spread = request.segmentPlacement.contains(.spread)
        var domains: [(name: String?, nodes: [Int])] = [(nil, candidates)]
        if request.segmentPlacement.contains(.consolidate) {
            let base = max(1, blockLevels.baseNodes)
            let whole = spread ? count * ((size + base - 1) / base) * base : request.nodeCount
            domains = blockLevels.nodeUnits(forNodes: whole, of: snapshot.nodes, members: candidates)
                .filter { $0.nodes.count >= request.nodeCount }.map { ($0.name, $0.nodes) }
        }
        for level in levels {
            var best: (plans: [NodePlan], searched: Int, cost: PlanCost, units: [(name: String, nodes: [Int])], within: String?)?
            for domain in domains {
                let units = blockLevels.nodeUnits(forNodes: size, of: snapshot.nodes, members: domain.nodes).filter { $0.nodes.count >= size }
                let segments = Segments(size: size, units: units, perUnit: spread ? 1 : nil)
                let (chosen, searched) = searchNodes(level: level, request: request, index: index, eligible: eligible,
                                                     candidates: domain.nodes, segments: segments, policy: policy, bounded: &bounded)
                guard chosen.count >= request.nodeCount else { continue }
                let cost = aggregate(chosen)
                if best.map({ cost.compare($0.cost, order: policy.order) < 0 }) ?? true {
                    best = (chosen, searched, cost, units, domain.name)
                }
            }
            guard let best else { continue }
            var plan = assemble(best.plans, request: request, index: index, candidates: candidates.count, searched: best.searched)
            let names = Set(best.plans.map(\.node))
            var used: [String] = []
            var usedNames: [String] = []
            for unit in best.units where unit.nodes.contains(where: { names.contains(snapshot.nodes[$0].name) }) {
                let taken = unit.nodes.filter { names.contains(snapshot.nodes[$0].name) }.count
                used.append(taken > size ? "\(unit.name) (\(taken / size) segments)" : unit.name)
                usedNames.append(unit.name)
            }
            plan.domain = NodeDomain(kind: .block, name: usedNames.joined(separator: "+"))
            var how = "(--segment"
            if spread { how += ", --spread-segments" }
            if let within = best.within { how += ", --consolidate-segments: all inside \(within)" }
            plan.reasons.insert("\(count) segments of \(size) nodes \(how)), each inside one \(unitName): \(used.joined(separator: ", ")) (topology.conf)", at: 0)
            return .plan(plan)
        }
        let aligned = request.mode == .guaranteed ? "\(request.level.name)-aligned " : ""
        var placed = "each"
        if spread { placed += " in base blocks of its own" }
        if request.segmentPlacement.contains(.consolidate) { placed += ", all in one aggregated block," }
        return .noPlan(code: .noAlignedPlan,
                       reason: "no \(count) segments of \(size) nodes can \(placed) free \(request.gpusPerNode) \(aligned)GPUs per node inside one \(unitName); topology/block places each segment of --segment=\(size) in one, and victims elsewhere would free nothing it uses")
    }

    /// The cheapest whole segments over the units: per unit its cheapest nodes in order (so its
    /// k-th segment costs no less than its (k-1)-th), then the cheapest next segment of any unit,
    /// as many times as the job has segments. Exact for costs that add up over nodes, which is
    /// how `searchNodes` calls it when priority leads (per priority cap).
    static func chooseSegments(_ segments: Segments, level: AffinityLevel, request: PreemptorRequest, index: PlanningIndex,
                               eligible: [Bool], policy: PlannerPolicy,
                               bounded: inout [(bound: CostBound, node: Int)]) -> (plans: [NodePlan], searched: Int) {
        let size = segments.size
        var perUnit: [[[NodePlan]]] = []
        var searched = 0
        for unit in segments.units {
            var part = request
            part.nodeCount = min(request.nodeCount, unit.nodes.count / size * size, (segments.perUnit ?? Int.max / size) * size)
            guard part.nodeCount > 0 else { continue }
            let (plans, n) = search(level: level, request: part, index: index, eligible: eligible, candidates: unit.nodes,
                                    policy: policy, bounded: &bounded)
            searched += n
            perUnit.append((0..<(plans.count / size)).map { Array(plans[($0 * size)..<(($0 + 1) * size)]) })
        }
        var next = [Int](repeating: 0, count: perUnit.count)
        var chosen: [NodePlan] = []
        for _ in 0..<(request.nodeCount / size) {
            var best: (unit: Int, cost: PlanCost)?
            for u in perUnit.indices where next[u] < perUnit[u].count {
                let cost = aggregate(perUnit[u][next[u]])
                if best.map({ cost.compare($0.cost, order: policy.order) < 0 }) ?? true { best = (u, cost) }
            }
            guard let best else { return ([], searched) }
            chosen += perUnit[best.unit][next[best.unit]]
            next[best.unit] += 1
        }
        return (chosen, searched)
    }

    /// Seconds from `start` to `time`, 0 when `start` is later, saturated (snapshots may carry
    /// any times: JSON files, skewed clocks).
    public static func age(at time: Int64, since start: Int64) -> Int64 {
        let (difference, overflow) = time.subtractingReportingOverflow(start)
        if overflow { return time > start ? Int64.max : 0 }
        return max(0, difference)
    }

    /// Whether a job of `k` GPUs fits by count in `gpus` (per socket for per-socket requests):
    /// Slurm's test before it picks GPUs, and where `_run_now` stops removing candidates.
    static func fitsByCount(_ gpus: GPUSet, k: Int, shape: RequestShape, topology: NodeTopology) -> Bool {
        switch shape {
        case .perNode:
            return gpus.count >= k
        case .perSocket:
            var perSocket: [Int: Int] = [:]
            for gpu in gpus where gpu < topology.gpus.count {
                let socket = topology.gpus[gpu].socket ?? -1
                perSocket[socket, default: 0] += 1
                if perSocket[socket, default: 0] >= k { return true }
            }
            return false
        }
    }

    /// Which jobs may be victims: preemptible, of lower priority than the preemptor, past
    /// PreemptExemptTime, not the preemptor itself.
    static func eligibility(_ request: PreemptorRequest, index: PlanningIndex, policy: PlannerPolicy) -> [Bool] {
        var eligible: [Bool] = []
        eligibility(request, index: index, policy: policy, into: &eligible)
        return eligible
    }

    static func eligibility(_ request: PreemptorRequest, index: PlanningIndex, policy: PlannerPolicy, into eligible: inout [Bool]) {
        if eligible.count != index.jobFacts.count { eligible = [Bool](repeating: false, count: index.jobFacts.count) }
        for j in eligible.indices { eligible[j] = isEligible(j, request, index: index, policy: policy) }
    }

    /// Whether job `j` may be a victim of `request` (one entry of `eligibility`).
    @inline(__always)
    static func isEligible(_ j: Int, _ request: PreemptorRequest, index: PlanningIndex, policy: PlannerPolicy) -> Bool {
        index.jobFacts[j].preemptible && index.jobFacts[j].priority < request.priority && index.jobFacts[j].id != request.jobID
            && age(at: index.snapshot.time, since: index.jobFacts[j].start) >= policy.exemptSeconds
    }

    /// The `nodeCount` cheapest node plans aligned at `level`. Nodes are visited in order of a
    /// lower bound of their cost and the search stops when the bound exceeds the dearest plan
    /// kept; inside a node the bound of the plans kept prunes the victim search.
    static func search(level: AffinityLevel, request: PreemptorRequest, index: PlanningIndex, eligible: [Bool],
                       candidates: [Int], policy: PlannerPolicy,
                       bounded: inout [(bound: CostBound, node: Int)]) -> (plans: [NodePlan], searched: Int) {
        bounded.removeAll(keepingCapacity: true)
        bounded.reserveCapacity(candidates.count)
        var scratch: [(priority: Int, gain: Int, work: Int64)] = []
        scratch.reserveCapacity(64)
        for node in candidates {
            if let bound = lowerBound(node, level: level, k: request.gpusPerNode, index: index, eligible: eligible,
                                      scratch: &scratch) {
                bounded.append((bound, node))
            }
        }
        func before(_ a: (bound: CostBound, node: Int), _ b: (bound: CostBound, node: Int)) -> Bool {
            let c = a.bound.compare(b.bound, order: policy.order)
            return c != 0 ? c < 0 : index.snapshot.nodes[a.node].name < index.snapshot.nodes[b.node].name
        }
        var kept: [NodePlan] = []  // ascending, at most nodeCount
        var searched = 0
        func visit(_ node: Int, ceiling: PlanCost?) {
            searched += 1
            guard let plan = planNode(node, level: level, request: request, index: index, eligible: eligible,
                                      policy: policy, ceiling: ceiling)
            else { return }
            let position = kept.firstIndex { other in
                let c = plan.cost.compare(other.cost, order: policy.order)
                return c < 0 || (c == 0 && plan.node < other.node)
            } ?? kept.count
            kept.insert(plan, at: position)
            if kept.count > request.nodeCount { kept.removeLast() }
        }
        // Seed: the most promising nodes by linear scans, until enough plans give a ceiling;
        // then only nodes whose bound does not exceed it are sorted and searched.
        var seeds = 0
        while kept.count < request.nodeCount, seeds < 8, !bounded.isEmpty {
            var best = 0
            for i in bounded.indices.dropFirst() where before(bounded[i], bounded[best]) { best = i }
            let node = bounded[best].node
            bounded.swapAt(best, bounded.count - 1)
            bounded.removeLast()
            seeds += 1
            visit(node, ceiling: nil)
        }
        if kept.count >= request.nodeCount, let ceiling = kept.last?.cost {
            let limit = CostBound(ceiling)
            bounded.removeAll { $0.bound.compare(limit, order: policy.order) > 0 }
        }
        bounded.sort(by: before)
        for (bound, node) in bounded {
            let ceiling = kept.count >= request.nodeCount ? kept.last?.cost : nil
            if let ceiling, bound.compare(CostBound(ceiling), order: policy.order) > 0 { break }
            visit(node, ceiling: ceiling)
        }
        return (kept, searched)
    }

    /// The numeric part of a cost (no job ids), for bounds.
    struct CostBound {
        var maxPriority: Int?
        var victims: Int
        var gpuSeconds: Int64
        var collateral: Int

        init(maxPriority: Int?, victims: Int, gpuSeconds: Int64, collateral: Int) {
            self.maxPriority = maxPriority
            self.victims = victims
            self.gpuSeconds = gpuSeconds
            self.collateral = collateral
        }

        init(_ cost: PlanCost) {
            self.init(maxPriority: cost.maxPriority, victims: cost.victims, gpuSeconds: cost.gpuSeconds, collateral: cost.collateral)
        }

        func compare(_ other: CostBound, order: [CostCriterion]) -> Int {
            for criterion in order {
                let c: Int
                switch criterion {
                case .priority: c = PlanCost.cmp(maxPriority ?? Int.min, other.maxPriority ?? Int.min)
                case .victims: c = PlanCost.cmp(victims, other.victims)
                case .collateral: c = PlanCost.cmp(collateral, other.collateral)
                // Pairwise, rough-work is work: its near ties are a selection (`nearWorkPasses`).
                case .work, .roughWork: c = PlanCost.cmp(gpuSeconds, other.gpuSeconds)
                }
                if c != 0 { return c }
            }
            return 0
        }
    }

    /// A lower bound of every criterion for any plan on `node` aligned at `level`: the job's GPUs
    /// lie in one group at that level, so the victims must free the shortfall inside a group.
    /// Each criterion is bounded on its own: the smallest priority threshold whose jobs cover the
    /// shortfall, the fewest jobs (largest gains first), the least work (fractional, cheapest
    /// work per freed GPU first). Uses a stack buffer, no heap allocation. nil when no group can
    /// ever hold the job.
    static func lowerBound(_ node: Int, level: AffinityLevel, k: Int, index: PlanningIndex, eligible: [Bool],
                           scratch items: inout [(priority: Int, gain: Int, work: Int64)]) -> CostBound? {
        let free = index.free[node]
        var found = false
        var bestPriority = Int.max
        var bestVictims = Int.max
        var bestWork = Int64.max
        for group in index.groupMasks[index.layoutOfNode[node]][level.rawValue] where group.count >= k {
            let need = k - free.intersection(group).count
            if need <= 0 { return CostBound(maxPriority: nil, victims: 0, gpuSeconds: 0, collateral: 0) }
            items.removeAll(keepingCapacity: true)
            var available = 0
            for entry in index.jobsOnNode[node] where eligible[entry.job] {
                let gain = entry.gpus.intersection(group).count
                guard gain > 0 else { continue }
                items.append((index.jobFacts[entry.job].priority, gain, index.work(of: entry.job)))
                available += gain
            }
            guard available >= need else { continue }
            found = true
            var maxGain = 0, lowest = Int.max, highest = Int.min
            for item in items {
                maxGain = max(maxGain, item.gain)
                lowest = min(lowest, item.priority)
                highest = max(highest, item.priority)
            }
            // Small lists (a node's jobs in one group): quadratic scans beat sorting here.
            // Priority: the smallest threshold whose jobs cover the need (one priority among
            // them, the common case: that one, as they cover it all).
            if lowest == highest {
                bestPriority = min(bestPriority, lowest)
            } else if lowest < bestPriority {
                for candidate in items where candidate.priority < bestPriority {
                    var covered = 0
                    for item in items where item.priority <= candidate.priority { covered += item.gain }
                    if covered >= need { bestPriority = candidate.priority }
                }
            }
            // Victims: largest gains first (all gains 1, the common case: exactly the need).
            if maxGain == 1 {
                bestVictims = min(bestVictims, need)
            } else {
                items.sort { $0.gain > $1.gain }
                var covered = 0
                for (i, item) in items.enumerated() {
                    covered += item.gain
                    if covered >= need {
                        bestVictims = min(bestVictims, i + 1)
                        break
                    }
                }
            }
            // Work: cheapest work per freed GPU first, the last one fractionally. With all gains 1
            // (the common case) that is the sum of the `need` smallest works: select, no sort.
            var work: Int64 = 0
            if maxGain == 1 && need == items.count {
                for item in items { work = work &+ item.work }
            } else if maxGain == 1 && items.count <= 64 {
                var taken: UInt64 = 0
                for _ in 0..<need {
                    var pick = -1
                    for i in items.indices where taken & (1 << UInt64(i)) == 0 {
                        if pick < 0 || items[i].work < items[pick].work { pick = i }
                    }
                    guard pick >= 0 else { break }
                    taken |= 1 << UInt64(pick)
                    work = work &+ items[pick].work
                }
            } else {
                items.sort { a, b in
                    // a.work / a.gain < b.work / b.gain, in full width (no overflow).
                    let x = a.work.multipliedFullWidth(by: Int64(b.gain)), y = b.work.multipliedFullWidth(by: Int64(a.gain))
                    return x.high != y.high ? x.high < y.high : x.low < y.low
                }
                var remaining = need
                for item in items where remaining > 0 {
                    let take = min(remaining, item.gain)
                    work = work &+ item.work / Int64(item.gain) * Int64(take)
                    remaining -= take
                }
            }
            bestWork = min(bestWork, work)
        }
        guard found else { return nil }
        return CostBound(maxPriority: bestPriority, victims: bestVictims, gpuSeconds: bestWork, collateral: 0)
    }

    /// The cheapest victim set on one node after which every modelled Slurm pick is aligned at
    /// `level`; nil when there is none cheaper than `ceiling`.
    static func planNode(_ node: Int, level: AffinityLevel, request: PreemptorRequest, index: PlanningIndex,
                         eligible: [Bool], policy: PlannerPolicy, ceiling: PlanCost? = nil) -> NodePlan? {
        let context = index.pickContexts[index.snapshot.nodes[node].layout]
        let topology = context.topology
        let k = request.gpusPerNode
        guard topology.gpuCount >= k else { return nil }
        let free = index.free[node]
        let snapshot = index.snapshot
        // Candidate victims on this node: eligible jobs, cheapest first, bounded.
        var jobs = index.jobsOnNode[node].filter { eligible[$0.job] }
        if jobs.count > policy.maxCandidatesPerNode {
            jobs.sort { a, b in
                let pa = index.jobFacts[a.job].priority, pb = index.jobFacts[b.job].priority
                if pa != pb { return pa < pb }
                if index.work(of: a.job) != index.work(of: b.job) { return index.work(of: a.job) < index.work(of: b.job) }
                return index.jobFacts[a.job].id < index.jobFacts[b.job].id
            }
            jobs = Array(jobs.prefix(policy.maxCandidatesPerNode))
        }
        var potential = free
        for job in jobs { potential = potential.union(job.gpus) }
        guard potential.count >= k else { return nil }
        let shortfall = max(0, k - free.count)
        // CPUs and memory each candidate frees here, where the snapshot gives the node's (not
        // inside slurmctld today: nothing is computed then); the node must be able to give the job's.
        let constrained = index.freeCPUs[node] != Int.max || index.freeMemory[node] != Int64.max
        let held = constrained ? jobs.map { index.resources(ofJob: $0.job, onNode: node) } : []
        guard !constrained || index.resourcesFit(request, node: node, freedCPUs: held.reduce(0) { $0 + $1.cpus },
                                                 freedMemory: held.reduce(0) { $0 + $1.memory })
        else { return nil }

        var bestPlan: NodePlan?
        var bestCost = ceiling
        var rejected: (victims: [UInt32], cost: PlanCost, pick: GPUSet, level: AffinityLevel)?
        var chosen: [Int] = []
        // Running totals of the chosen set.
        var maxPriority: Int?
        var seconds: Int64 = 0
        var gpus = 0
        var cpus = 0
        var memory: Int64 = 0

        func numeric() -> CostBound {
            CostBound(maxPriority: maxPriority, victims: chosen.count, gpuSeconds: seconds, collateral: max(0, gpus - shortfall))
        }
        func fullCost() -> PlanCost {
            let ids = chosen.map { index.jobFacts[jobs[$0].job].id }.sorted()
            return PlanCost(maxPriority: maxPriority, victims: chosen.count, gpuSeconds: seconds,
                            collateral: max(0, gpus - shortfall), victimIDs: ids)
        }
        /// True when the chosen set cannot beat the best so far (every criterion only grows).
        func dominated() -> Bool {
            guard let bestCost else { return false }
            let c = numeric().compare(CostBound(bestCost), order: policy.order)
            if c != 0 { return c > 0 }
            return fullCost().compare(bestCost, order: policy.order) >= 0
        }
        /// True when the chosen set loses more work than `rough-work`'s second pass allows
        /// (work only grows as victims join).
        func overCeiling() -> Bool { policy.workCeiling.map { seconds > $0 } ?? false }
        /// Every chosen victim is needed for the job to fit: its GPUs by count, its CPUs and
        /// memory (see `requireEveryVictim`).
        func everyVictimNeeded(_ freedMask: GPUSet) -> Bool {
            for position in chosen {
                if fitsByCount(free.union(freedMask.subtracting(jobs[position].gpus)), k: k, shape: request.shape, topology: topology),
                   !constrained || index.resourcesFit(request, node: node, freedCPUs: cpus - held[position].cpus,
                                                      freedMemory: memory - held[position].memory) { return false }
            }
            return true
        }
        func consider(_ freedMask: GPUSet) {
            if dominated() || overCeiling() { return }
            guard !constrained || index.resourcesFit(request, node: node, freedCPUs: cpus, freedMemory: memory) else { return }
            if policy.requireEveryVictim, !everyVictimNeeded(freedMask) { return }
            let c = fullCost()
            let freeAfter = free.union(freedMask)
            guard let (reached, picks) = SlurmGPUPick.worstAlignment(context, free: freeAfter, count: k, shape: request.shape,
                                                                       cpus: request.cpusPerNode)
            else { return }
            if reached > level {
                if rejected.map({ c.compare($0.cost, order: policy.order) < 0 }) ?? true {
                    let worst = picks.max { topology.alignment(of: $0) < topology.alignment(of: $1) } ?? GPUSet()
                    rejected = (c.victimIDs, c, worst, reached)
                }
                return
            }
            bestPlan = NodePlan(node: snapshot.nodes[node].name, victims: c.victimIDs, freedGPUs: freedMask,
                                freeAfter: freeAfter, expectedGPUs: picks, level: reached, cost: c)
            bestCost = c
        }
        // Depth-first over include/exclude; each victim set is considered once, at the root and
        // right after a job joins it; a set that cannot beat the best is not extended.
        func search(_ position: Int, _ freedMask: GPUSet, considered: Bool) {
            if !considered && free.count + freedMask.count >= k { consider(freedMask) }
            guard position < jobs.count else { return }
            let job = jobs[position].job
            let saved = (maxPriority, seconds, gpus, cpus, memory)
            chosen.append(position)
            maxPriority = max(maxPriority ?? Int.min, index.jobFacts[job].priority)
            seconds = seconds &+ index.work(of: job)
            gpus += index.jobFacts[job].gpus
            if constrained {
                cpus += held[position].cpus
                memory += held[position].memory
            }
            if !dominated() && !overCeiling() {
                search(position + 1, freedMask.union(jobs[position].gpus), considered: false)
            }
            chosen.removeLast()
            (maxPriority, seconds, gpus, cpus, memory) = saved
            search(position + 1, freedMask, considered: true)
        }
        search(0, GPUSet(), considered: false)
        if var plan = bestPlan, let rejected, rejected.cost.compare(plan.cost, order: policy.order) < 0 {
            plan.rejected = rejected
            return plan
        }
        return bestPlan
    }

    /// The cost of a set of node plans: victims counted once, work and collateral summed.
    static func aggregate(_ nodes: [NodePlan]) -> PlanCost {
        var ids = Set<UInt32>()
        var maxPriority: Int?
        for plan in nodes {
            ids.formUnion(plan.victims)
            if let p = plan.cost.maxPriority { maxPriority = max(maxPriority ?? Int.min, p) }
        }
        return PlanCost(maxPriority: maxPriority, victims: ids.count,
                        gpuSeconds: nodes.reduce(0) { $0 &+ $1.cost.gpuSeconds },
                        collateral: nodes.reduce(0) { $0 + $1.cost.collateral }, victimIDs: ids.sorted())
    }

    static func assemble(_ nodes: [NodePlan], request: PreemptorRequest, index: PlanningIndex,
                         candidates: Int, searched: Int) -> Plan {
        let snapshot = index.snapshot
        let victimIDs = Array(Set(nodes.flatMap(\.victims))).sorted()
        // Victims are jobs on the plan's nodes: look them up there, not in the whole snapshot.
        var byID: [UInt32: ClusterSnapshot.RunningJob] = [:]
        for plan in nodes {
            guard let node = index.nodeByName[plan.node] else { continue }
            for entry in index.jobsOnNode[node] where plan.victims.contains(index.jobFacts[entry.job].id) {
                byID[index.jobFacts[entry.job].id] = snapshot.jobs[entry.job]
            }
        }
        let victims = victimIDs.compactMap { byID[$0] }
        let level = nodes.map(\.level).max() ?? .nvlink
        let cost = aggregate(nodes)
        var reasons: [String] = []
        let code: Plan.Code
        if victims.isEmpty {
            code = .fitsWithoutPreemption
            reasons.append("the job fits on \(nodes.map(\.node).joined(separator: ", ")) without preemption, \(level.name)-aligned")
        } else {
            code = level <= request.level ? .aligned : .degraded
            for plan in nodes where !plan.victims.isEmpty {
                let jobs = plan.victims.compactMap { byID[$0] }.map { "\($0.id)\($0.name.map { " (\($0))" } ?? "") GPUs \(gpus(of: $0, on: plan.node, index: index))" }
                reasons.append("on \(plan.node): requeue \(jobs.joined(separator: ", ")); frees GPUs \(plan.freedGPUs), leaving \(plan.freeAfter) free")
            }
        }
        for plan in nodes {
            let picks = Set(plan.expectedGPUs.map(\.description)).sorted().joined(separator: " or ")
            reasons.append("on \(plan.node) Slurm's GPU pick gives \(picks) (\(plan.level.name)-aligned in every core placement)")
            if let rejected = plan.rejected {
                let what = rejected.victims.isEmpty ? "starting without preemption" : "requeueing only \(rejected.victims.map(String.init).joined(separator: ", "))"
                reasons.append("not \(what) (\(rejected.cost.victims) victim\(rejected.cost.victims == 1 ? "" : "s")): Slurm's pick could then give GPUs \(rejected.pick), only \(rejected.level.name)-aligned")
            }
        }
        if code == .degraded {
            reasons.append("degraded: no plan reaches \(request.level.name); best-effort takes \(level.name)")
        }
        reasons.append("cost: \(cost); the cheapest among \(candidates) candidate node(s) (\(searched) searched, the rest bounded out)")
        return Plan(request: request, nodes: nodes, victims: victimIDs, level: level, degraded: code == .degraded,
                    cost: cost, graceSeconds: victims.map(\.graceTime).max() ?? 0, reasons: reasons, code: code)
    }

    static func gpus(of job: ClusterSnapshot.RunningJob, on node: String, index: PlanningIndex) -> String {
        guard let n = index.nodeByName[node] else { return "?" }
        return job.allocations.first { $0.node == n }?.gpus.description ?? "?"
    }
}
