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
    /// Slurm's GPU pick.
    public var cpusPerNode: Int
    /// Nodes the job may use (its partition, `-w`); nil for every node of the snapshot.
    public var candidateNodes: Set<String>?

    public init(jobID: UInt32? = nil, gpusPerNode: Int, nodeCount: Int = 1, level: AffinityLevel,
                mode: PlacementMode = .guaranteed, priority: Int, shape: RequestShape = .perNode,
                cpusPerNode: Int = 1, candidateNodes: Set<String>? = nil) {
        self.cpusPerNode = cpusPerNode
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
}

public struct PlannerPolicy: Sendable, Equatable {
    /// Cost criteria, most important first. Default: priority, victims, work, collateral.
    public var order: [CostCriterion]
    /// PreemptExemptTime: jobs that started less than this many seconds ago are not victims.
    public var exemptSeconds: Int64
    /// At most this many candidate victims per node are searched (the cheapest by priority and
    /// work); bounds the work per node to 2^limit subsets in the worst case.
    public var maxCandidatesPerNode: Int

    public init(order: [CostCriterion] = CostCriterion.allCases, exemptSeconds: Int64 = 0, maxCandidatesPerNode: Int = 12) {
        self.order = order
        self.exemptSeconds = exemptSeconds
        self.maxCandidatesPerNode = max(1, min(maxCandidatesPerNode, 20))
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
        for criterion in order {
            let c: Int
            switch criterion {
            case .priority: c = Self.cmp(maxPriority ?? Int.min, other.maxPriority ?? Int.min)
            case .victims: c = Self.cmp(victims, other.victims)
            case .work: c = Self.cmp(gpuSeconds, other.gpuSeconds)
            case .collateral: c = Self.cmp(collateral, other.collateral)
            }
            if c != 0 { return c }
        }
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

    public enum Code: String, Sendable {
        case fitsWithoutPreemption = "fits-without-preemption"
        case aligned
        case degraded
    }
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

/// The snapshot prepared for planning: topologies built, per-node free GPUs and jobs indexed.
/// Build once per scheduling pass; plan many preemptors against it.
public struct PlanningIndex: Sendable {
    public let snapshot: ClusterSnapshot
    let topologies: [NodeTopology]
    /// Per node: GPUs not held by anyone.
    let free: [GPUSet]
    /// Per node: (job index, GPUs on this node).
    let jobsOnNode: [[(job: Int, gpus: GPUSet)]]
    /// Per job: GPU-seconds run so far (all nodes).
    let work: [Int64]
    let nodeByName: [String: Int]

    public init(_ snapshot: ClusterSnapshot) throws(SnapshotError) {
        self.snapshot = snapshot
        var topologies: [NodeTopology] = []
        for (i, layout) in snapshot.layouts.enumerated() {
            do { topologies.append(try layout.topology()) } catch { throw SnapshotError("layouts[\(i)]: \(error)") }
        }
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
        var jobsOnNode = Array(repeating: [(job: Int, gpus: GPUSet)](), count: snapshot.nodes.count)
        var work: [Int64] = []
        work.reserveCapacity(snapshot.jobs.count)
        for (j, job) in snapshot.jobs.enumerated() {
            for allocation in job.allocations {
                guard snapshot.nodes.indices.contains(allocation.node) else {
                    throw SnapshotError("job \(job.id): node index \(allocation.node) does not exist")
                }
                let count = topologies[snapshot.nodes[allocation.node].layout].gpuCount
                guard allocation.gpus.isSubset(of: GPUSet.first(count)) else {
                    throw SnapshotError("job \(job.id): GPUs \(allocation.gpus) beyond the \(count) of node \(snapshot.nodes[allocation.node].name)")
                }
                allocated[allocation.node] = allocated[allocation.node].union(allocation.gpus)
                jobsOnNode[allocation.node].append((j, allocation.gpus))
            }
            let seconds = max(0, snapshot.time - job.startTime)
            let (product, overflow) = Int64(job.gpuCount).multipliedReportingOverflow(by: seconds)
            work.append(overflow ? Int64.max / 4 : product)
        }
        self.topologies = topologies
        self.free = snapshot.nodes.indices.map { GPUSet.first(topologies[snapshot.nodes[$0].layout].gpuCount).subtracting(allocated[$0]) }
        self.jobsOnNode = jobsOnNode
        self.work = work
        self.nodeByName = nodeByName
    }

    public func topology(ofNode node: Int) -> NodeTopology { topologies[snapshot.nodes[node].layout] }
    public func freeGPUs(ofNode node: Int) -> GPUSet { free[node] }
}

/// Chooses victims so that the GPUs they free give the preemptor an aligned group, at the
/// lowest cost. Pure and deterministic: the same index, request and policy give the same plan.
public enum Planner {
    public static func plan(_ request: PreemptorRequest, in index: PlanningIndex,
                            policy: PlannerPolicy = PlannerPolicy()) -> PlanOutcome {
        guard request.gpusPerNode > 0, request.gpusPerNode <= GPUSet.capacity, request.nodeCount > 0,
              request.nodeCount <= index.snapshot.nodes.count || request.nodeCount <= 1
        else {
            return .noPlan(code: .invalidRequest, reason: "the request (\(request.gpusPerNode) GPUs on \(request.nodeCount) node(s)) cannot be planned")
        }
        let snapshot = index.snapshot
        let eligible = snapshot.jobs.indices.map { j -> Bool in
            let job = snapshot.jobs[j]
            return job.preemptible && job.priority < request.priority && job.id != request.jobID
                && snapshot.time - job.startTime >= policy.exemptSeconds
        }
        var best: [NodePlan] = []  // per usable node, its best plan
        var candidates = 0
        for node in snapshot.nodes.indices {
            let state = snapshot.nodes[node]
            guard state.available, request.candidateNodes?.contains(state.name) ?? true else { continue }
            candidates += 1
            if let plan = planNode(node, request: request, index: index, eligible: eligible, policy: policy) {
                best.append(plan)
            }
        }
        guard candidates > 0 else {
            return .noPlan(code: .noCandidateNodes, reason: "no available node is a candidate for the job")
        }
        func better(_ a: NodePlan, _ b: NodePlan) -> Bool {
            if request.mode == .bestEffort, a.level != b.level { return a.level < b.level }
            let c = a.cost.compare(b.cost, order: policy.order)
            return c != 0 ? c < 0 : a.node < b.node
        }
        guard best.count >= request.nodeCount else {
            // Say why: nothing can be freed at all, or only misaligned placements.
            var loose = request
            loose.mode = .bestEffort
            let reachable = snapshot.nodes.indices.compactMap { node -> NodePlan? in
                let state = snapshot.nodes[node]
                guard request.mode == .guaranteed, state.available, request.candidateNodes?.contains(state.name) ?? true else { return nil }
                return planNode(node, request: loose, index: index, eligible: eligible, policy: policy)
            }
            if best.count + reachable.count >= request.nodeCount && !reachable.isEmpty {
                let reached = reachable.map(\.level).min() ?? .node
                return .noPlan(code: .noAlignedPlan,
                               reason: "no plan puts the job on \(request.level.name)-aligned GPUs on \(request.nodeCount) node(s) whatever cores Slurm gives it; the best reachable is \(reached.name) (best-effort mode would take it)")
            }
            return .noPlan(code: .notEnoughPreemptible,
                           reason: "\(best.count) of \(candidates) candidate node(s) can free \(request.gpusPerNode) GPUs from jobs of priority below \(request.priority); \(request.nodeCount) needed")
        }
        let chosen = Array(best.sorted(by: better).prefix(request.nodeCount))
        return .plan(assemble(chosen, request: request, index: index, candidates: candidates, alternatives: best.count))
    }

    /// The cheapest victim set on one node whose freed GPUs give an acceptable pick (aligned for
    /// guaranteed; best level first for best-effort); nil when the node cannot host the job.
    static func planNode(_ node: Int, request: PreemptorRequest, index: PlanningIndex, eligible: [Bool],
                         policy: PlannerPolicy) -> NodePlan? {
        let topology = index.topology(ofNode: node)
        let k = request.gpusPerNode
        guard topology.gpuCount >= k else { return nil }
        let free = index.free[node]
        let snapshot = index.snapshot
        // Candidate victims on this node: eligible jobs, cheapest first, bounded.
        var jobs = index.jobsOnNode[node].filter { eligible[$0.job] }
        if jobs.count > policy.maxCandidatesPerNode {
            jobs.sort { a, b in
                let ja = snapshot.jobs[a.job], jb = snapshot.jobs[b.job]
                if ja.priority != jb.priority { return ja.priority < jb.priority }
                if index.work[a.job] != index.work[b.job] { return index.work[a.job] < index.work[b.job] }
                return ja.id < jb.id
            }
            jobs = Array(jobs.prefix(policy.maxCandidatesPerNode))
        }
        var potential = free
        for job in jobs { potential = potential.union(job.gpus) }
        guard potential.count >= k else { return nil }
        let shortfall = max(0, k - free.count)

        var bestPlan: NodePlan?
        var rejected: (victims: [UInt32], cost: PlanCost, pick: GPUSet, level: AffinityLevel)?
        var chosen: [Int] = []
        // Depth-first over include/exclude; every criterion grows as victims are added, so a
        // partial set that already costs more than the best plan is cut.
        func cost(of set: [Int]) -> PlanCost {
            var maxPriority: Int?
            var seconds: Int64 = 0
            var gpus = 0
            var ids: [UInt32] = []
            for position in set {
                let job = snapshot.jobs[jobs[position].job]
                maxPriority = max(maxPriority ?? Int.min, job.priority)
                seconds = seconds &+ index.work[jobs[position].job]
                gpus += job.gpuCount
                ids.append(job.id)
            }
            ids.sort()
            return PlanCost(maxPriority: maxPriority, victims: set.count, gpuSeconds: seconds,
                            collateral: max(0, gpus - shortfall), victimIDs: ids)
        }
        func consider(_ freedMask: GPUSet) {
            let c = cost(of: chosen)
            if let current = bestPlan {
                if request.mode == .guaranteed || current.level == .nvlink {
                    guard c.compare(current.cost, order: policy.order) < 0 else { return }
                }
            }
            let freeAfter = free.union(freedMask)
            guard let (level, picks) = SlurmGPUPick.worstAlignment(topology, free: freeAfter, count: k, shape: request.shape,
                                                                       cpus: request.cpusPerNode)
            else { return }
            if request.mode == .guaranteed && level > request.level {
                if rejected.map({ c.compare($0.cost, order: policy.order) < 0 }) ?? true {
                    let worst = picks.max { topology.alignment(of: $0) < topology.alignment(of: $1) } ?? GPUSet()
                    rejected = (c.victimIDs, c, worst, level)
                }
                return
            }
            let candidate = NodePlan(node: snapshot.nodes[node].name, victims: c.victimIDs, freedGPUs: freedMask,
                                     freeAfter: freeAfter, expectedGPUs: picks, level: level, cost: c)
            guard let current = bestPlan else {
                bestPlan = candidate
                return
            }
            if request.mode == .bestEffort && level != current.level {
                if level < current.level { bestPlan = candidate }
                return
            }
            if c.compare(current.cost, order: policy.order) < 0 { bestPlan = candidate }
        }
        // Each victim set is considered once: at the root (no victims) and right after a job
        // joins it.
        func search(_ position: Int, _ freedMask: GPUSet, considered: Bool) {
            if !considered && free.count + freedMask.count >= k { consider(freedMask) }
            guard position < jobs.count else { return }
            // Prune: adding any victim costs more than the current best (guaranteed mode, or
            // best-effort once the best level is reached).
            if let current = bestPlan, request.mode == .guaranteed || current.level == .nvlink {
                chosen.append(position)
                let partial = cost(of: chosen)
                chosen.removeLast()
                if partial.compare(current.cost, order: policy.order) >= 0 {
                    // Including this job is too dear; excluding it may still work.
                    search(position + 1, freedMask, considered: true)
                    return
                }
            }
            chosen.append(position)
            search(position + 1, freedMask.union(jobs[position].gpus), considered: false)
            chosen.removeLast()
            search(position + 1, freedMask, considered: true)
        }
        search(0, GPUSet(), considered: false)
        if var plan = bestPlan, let rejected, rejected.cost.compare(plan.cost, order: policy.order) < 0 {
            plan.rejected = rejected
            return plan
        }
        return bestPlan
    }

    static func assemble(_ nodes: [NodePlan], request: PreemptorRequest, index: PlanningIndex,
                         candidates: Int, alternatives: Int) -> Plan {
        let snapshot = index.snapshot
        let victimIDs = Array(Set(nodes.flatMap(\.victims))).sorted()
        let byID = Dictionary(snapshot.jobs.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let victims = victimIDs.compactMap { byID[$0] }
        let level = nodes.map(\.level).max() ?? .nvlink
        let cost = PlanCost(maxPriority: victims.map(\.priority).max(), victims: victims.count,
                            gpuSeconds: nodes.reduce(0) { $0 &+ $1.cost.gpuSeconds },
                            collateral: nodes.reduce(0) { $0 + $1.cost.collateral }, victimIDs: victimIDs)
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
        reasons.append("cost: \(cost); the cheapest of \(alternatives) feasible node plan(s) among \(candidates) candidate node(s)")
        return Plan(request: request, nodes: nodes, victims: victimIDs, level: level, degraded: code == .degraded,
                    cost: cost, graceSeconds: victims.map(\.graceTime).max() ?? 0, reasons: reasons, code: code)
    }

    static func gpus(of job: ClusterSnapshot.RunningJob, on node: String, index: PlanningIndex) -> String {
        guard let n = index.nodeByName[node] else { return "?" }
        return job.allocations.first { $0.node == n }?.gpus.description ?? "?"
    }
}
