/// What preempt/topo_aware tells Slurm about one preemptor.
public enum PreemptAction: Sendable, Equatable {
    /// Answer as the base policy (partition PriorityTier or QOS) would: not ours to decide, or a
    /// fallback.
    case basePolicy
    /// Guaranteed mode: only these jobs may be preempted.
    case onlyVictims([UInt32])
    /// Best-effort mode: the base policy's candidates, these first.
    case victimsFirst([UInt32])
    /// Preempt nothing for now: the job waits (a kept plan's victims are draining, or no aligned
    /// plan exists in guaranteed mode).
    case noVictims
}

public struct PreemptLogLine: Sendable, Equatable {
    public enum Level: Sendable, Equatable { case info, verbose, debug }
    public var level: Level
    public var text: String
    public init(_ level: Level, _ text: String) {
        self.level = level
        self.text = text
    }
}

public struct PreemptDecision: Sendable, Equatable {
    public var action: PreemptAction
    public var log: [PreemptLogLine]
    /// Microseconds the planner took (0 when it did not run).
    public var planMicroseconds: UInt64
    /// A new plan was made (and logged at info).
    public var newPlan: Bool = false
    /// What the planner was given and answered, when it ran (for `topo-preempt plan --job`).
    public var planning: PlanningRecord? = nil
    /// The snapshot contradicted itself (a job's GPUs against its node's): the caller's view of
    /// the jobs is stale and is read again.
    public var inconsistent: Bool = false
    /// Where the plan answered with puts the job: indices into the snapshot's nodes (empty when
    /// the answer is no plan). The caller may plan again on these nodes and the changed ones only.
    public var targetNodes: [Int] = []
}

/// The planner's input and answer behind a decision.
public struct PlanningRecord: Sendable, Equatable {
    /// The request as planned (the preemptor's class level and mode, its candidate nodes).
    public var request: PreemptorRequest
    /// The planning snapshot: nodes of known topology, running jobs, GPUs of kept plans of
    /// higher-ranked preemptors counted as taken.
    public var snapshot: ClusterSnapshot
    public var outcome: PlanOutcome
}

/// Settings of the preempt side (topo_aware.conf).
public struct PreemptSettings: Sendable, Equatable {
    /// A kept plan is dropped (and the job planned again) after this many seconds.
    public var planTimeoutSeconds: Int64
    /// A plan that takes longer than this is discarded and the base policy answers.
    public var planBudgetMicroseconds: UInt64
    public var costOrder: [CostCriterion]

    public init(planTimeoutSeconds: Int64 = 300, planBudgetMicroseconds: UInt64 = 200_000,
                costOrder: [CostCriterion] = CostCriterion.allCases) {
        self.planTimeoutSeconds = planTimeoutSeconds
        self.planBudgetMicroseconds = planBudgetMicroseconds
        self.costOrder = costOrder
    }
}

/// The decisions of preempt/topo_aware, pure: given what slurmctld holds for one pending
/// preemptor, which running jobs Slurm may preempt for it.
///
/// Plans are kept ("sticky"): once Slurm has started preempting a plan's victims, later passes
/// answer from the same plan (no new victims) until the preemptor starts or leaves the queue,
/// the plan expires (`PlanTimeout`), its GPUs are taken by another job, its node becomes
/// unavailable, or a higher-ranked preemptor takes its GPUs over. GPUs and victims of kept plans
/// of higher-ranked preemptors are off limits to lower-ranked ones.
public struct PreemptController: Sendable {
    public struct KeptPlan: Sendable, Equatable {
        public var owner: UInt32
        public var rank: Rank
        public var mode: PlacementMode
        /// Per node: name and the GPUs the job is expected to get there.
        public var targets: [Target]
        public var victims: [UInt32]
        public var created: Int64
        /// Slurm has acted on it: at least one victim stopped running.
        public var executed: Bool
        public var line: String

        public struct Target: Sendable, Equatable {
            public var node: String
            public var gpus: GPUSet
        }
    }

    /// Preemptors compete for GPUs by base priority, then Slurm's job priority, then age (lower id).
    public struct Rank: Sendable, Equatable, Comparable {
        public var basePriority: Int
        public var jobPriority: Int
        public var id: UInt32
        public static func < (a: Rank, b: Rank) -> Bool {
            if a.basePriority != b.basePriority { return a.basePriority < b.basePriority }
            if a.jobPriority != b.jobPriority { return a.jobPriority < b.jobPriority }
            return a.id > b.id
        }
    }

    public static let prefix = "preempt/topo_aware:"
    /// At most this many plans are kept, and as many "already logged" notes.
    public static let maxKept = 4096
    /// Victims one decision can carry (TOPO_PREEMPT_MAX_VICTIMS in the C ABI).
    public static let maxVictims = 256

    public private(set) var plans: [UInt32: KeptPlan] = [:]
    /// The last message logged per job for a fallback or a wait, so each is logged once.
    private var reported: [UInt32: String] = [:]
    /// Nodes already reported as inconsistent with the topology files.
    private var reportedNodes: Set<String> = []

    public init() {}

    /// Jobs that own kept plans; the caller reports which are still pending.
    public var planOwners: [UInt32] { plans.keys.sorted() }

    public mutating func reset() {
        plans = [:]
        reported = [:]
        reportedNodes = []
    }

    public mutating func decide(_ snapshot: ControllerSnapshot, config: TopoAwareConfig?, topology: ControllerTopology?,
                                settings: PreemptSettings, clock: () -> UInt64) -> PreemptDecision {
        var log: [PreemptLogLine] = []
        let p = snapshot.preemptor
        let job = "JobId=\(p.id)"
        release(pendingOwners: snapshot.pendingOwners, current: p.id, log: &log)

        // 1. Is it ours? The AdminComment tag job_submit wrote, else the class lines.
        guard let (level, mode) = Self.preemptorClass(p, config: config) else {
            return PreemptDecision(action: .basePolicy, log: log, planMicroseconds: 0)
        }
        guard p.gpusPerNode > 0 else {
            return fallback(p.id, "\(job) asks for no GPUs per node the planner can read; base policy", level: .debug, log: log)
        }
        guard let topology else {
            return fallback(p.id, "\(job) no GPU topology loaded (gres.conf); base policy", log: log)
        }

        // 2. The planning snapshot, validated.
        let built: Built
        switch build(snapshot, topology: topology, log: &log) {
        case let .success(value): built = value
        case let .failure(message):
            var d = fallback(p.id, "\(job) inconsistent state: \(message); base policy", log: log)
            d.inconsistent = true
            return d
        }

        // 3. A kept plan answers while it holds.
        if let kept = plans[p.id] {
            if let action = answerFromKept(kept, snapshot: snapshot, built: built, settings: settings, log: &log) {
                var d = PreemptDecision(action: action, log: log, planMicroseconds: 0)
                d.targetNodes = Self.indices(of: kept.targets.map(\.node), built)
                return d
            }
        }

        // 4. Plan.
        let rank = Rank(basePriority: p.basePriority, jobPriority: p.jobPriority, id: p.id)
        var (clusterSnapshot, reservedVictims) = (built.snapshot, Set<UInt32>())
        for other in plans.values where other.owner != p.id && other.rank > rank {
            for target in other.targets {
                if let n = built.nodeByName[target.node] {
                    let current = clusterSnapshot.nodes[n].otherAllocated ?? GPUSet()
                    clusterSnapshot.nodes[n].otherAllocated = current.union(target.gpus)
                }
            }
            reservedVictims.formUnion(other.victims)
        }
        if !reservedVictims.isEmpty {
            for j in clusterSnapshot.jobs.indices where reservedVictims.contains(clusterSnapshot.jobs[j].id) {
                clusterSnapshot.jobs[j].preemptible = false
            }
        }
        let index: PlanningIndex
        do { index = try PlanningIndex(clusterSnapshot) } catch {
            var d = fallback(p.id, "\(job) inconsistent state: \(error); base policy", log: log)
            d.inconsistent = true
            return d
        }
        var candidates: Set<String>?
        if let nodes = p.candidateNodes {
            candidates = Set(nodes.compactMap { built.clusterNodeOf[$0].map { clusterSnapshot.nodes[$0].name } })
        }
        let request = PreemptorRequest(jobID: p.id, gpusPerNode: p.gpusPerNode, nodeCount: max(1, p.nodeCount), level: level,
                                       mode: mode, priority: Int.max, shape: p.perSocket ? .perSocket : .perNode,
                                       cpusPerNode: max(1, p.cpusPerNode), candidateNodes: candidates)
        let policy = PlannerPolicy(order: settings.costOrder, exemptSeconds: snapshot.exemptSeconds, requireEveryVictim: true)
        let start = clock()
        let outcome = Planner.plan(request, in: index, policy: policy)
        let end = clock()
        let micros = end >= start ? (end - start) / 1000 : 0
        var decision = answer(outcome, micros: micros, snapshot: snapshot, built: built, mode: mode, rank: rank,
                              settings: settings, log: log)
        decision.planning = PlanningRecord(request: request, snapshot: clusterSnapshot, outcome: outcome)
        return decision
    }

    /// The decision for the planner's outcome.
    private mutating func answer(_ outcome: PlanOutcome, micros: UInt64, snapshot: ControllerSnapshot, built: Built,
                                 mode: PlacementMode, rank: Rank, settings: PreemptSettings,
                                 log: [PreemptLogLine]) -> PreemptDecision {
        var log = log
        let p = snapshot.preemptor
        let job = "JobId=\(p.id)"
        if micros > settings.planBudgetMicroseconds {
            var d = fallback(p.id, "\(job) plan took \(micros)us, over PlanTimeBudget=\(settings.planBudgetMicroseconds / 1000)ms; base policy", log: log)
            d.planMicroseconds = micros
            return d
        }
        switch outcome {
        case let .plan(plan) where plan.victims.isEmpty && Self.usesDraining(plan, built):
            // The GPUs come free as jobs Slurm already signalled finish draining: preempt
            // nothing new (Slurm's own order would pick more victims, not knowing they will free).
            var d = once(p.id, "\(job) waits for draining jobs to free \(Self.targets(plan)); preempting nothing new", log: log)
            d.action = .onlyVictims([])
            d.planMicroseconds = micros
            d.targetNodes = Self.indices(of: plan.nodes.map(\.node), built)
            return d
        case let .plan(plan) where plan.victims.isEmpty:
            // Free aligned GPUs exist: Slurm starts the job without preempting (it asks for
            // candidates before it tries). If it cannot (CPUs, memory), the base policy decides.
            var d = fallback(p.id, "\(job) fits on free GPUs without preemption (\(Self.targets(plan))); base policy for anything else", level: .debug, log: log)
            d.planMicroseconds = micros
            return d
        case let .plan(plan):
            let kept = KeptPlan(owner: p.id, rank: rank, mode: mode,
                                targets: plan.nodes.map { .init(node: $0.node, gpus: $0.expectedGPUs.reduce(GPUSet()) { $0.union($1) }) },
                                victims: plan.victims, created: snapshot.time, executed: false,
                                line: Self.describe(plan))
            let previous = plans[p.id]
            // Takeover: lower-ranked kept plans whose GPUs this one needs are dropped.
            for other in plans.values where other.owner != p.id && other.rank < rank && Self.overlaps(other.targets, kept.targets) {
                plans[other.owner] = nil
                log.append(.init(.info, "\(Self.prefix) JobId=\(p.id) takes over the GPUs planned for JobId=\(other.owner) (\(other.line)); JobId=\(other.owner) will be planned again"))
            }
            if plans.count < Self.maxKept || previous != nil { plans[p.id] = kept }
            reported[p.id] = nil
            let same = previous.map { $0.victims == kept.victims && $0.targets == kept.targets } ?? false
            log.append(.init(same ? .debug : .info, "\(Self.prefix) \(job) plan \(kept.line) \(micros)us"))
            log.append(.init(.debug, "\(Self.prefix) \(job) plan details: \(plan.reasons.joined(separator: "; "))"))
            let action: PreemptAction = mode == .guaranteed ? .onlyVictims(plan.victims) : .victimsFirst(plan.victims)
            var d = PreemptDecision(action: action, log: log, planMicroseconds: micros, newPlan: !same)
            d.targetNodes = Self.indices(of: kept.targets.map(\.node), built)
            return d
        case let .noPlan(code, reason):
            // Nodes whose topology is unknown (GPU count or Links= disagreeing with gres.conf)
            // are the base policy's: there Slurm may preempt as it would without this plugin,
            // while the nodes of known topology keep the guarantee.
            let candidates = p.candidateNodes.map { Set($0) }
            let leftOut = Set(snapshot.nodes.indices.filter {
                built.clusterNodeOf[$0] == nil && snapshot.nodes[$0].gpuCount > 0 && snapshot.nodes[$0].available
                    && (candidates?.contains($0) ?? true)
            })
            if mode == .guaranteed && !leftOut.isEmpty {
                let victims = snapshot.jobs
                    .filter { job in job.eligible && !job.draining && !job.allocations.isEmpty
                        && job.allocations.allSatisfy { leftOut.contains($0.node) } }
                    .sorted { ($0.basePriority, $0.id) < ($1.basePriority, $1.id) }
                    .map(\.id)
                if !victims.isEmpty {
                    let names = leftOut.sorted().prefix(8).map { snapshot.nodes[$0].name }.joined(separator: ",")
                    var d = once(p.id, "\(job) no plan on nodes of known topology (\(code.rawValue)): \(reason); base policy on node(s) \(names)\(leftOut.count > 8 ? ",..." : ""), left out of planning", log: log)
                    d.action = .onlyVictims(Array(victims.prefix(Self.maxVictims)))
                    d.planMicroseconds = micros
                    return d
                }
            }
            if mode == .guaranteed {
                var d = once(p.id, "\(job) no plan (\(code.rawValue)): \(reason); guaranteed mode: preempting nothing, the job waits", log: log)
                d.action = .noVictims
                d.planMicroseconds = micros
                return d
            }
            var d = fallback(p.id, "\(job) no plan (\(code.rawValue)): \(reason); base policy", log: log)
            d.planMicroseconds = micros
            return d
        }
    }

    /// The level and mode a pending job needs, or nil when it is not a preemptor.
    public static func preemptorClass(_ p: ControllerSnapshot.Preemptor, config: TopoAwareConfig?) -> (AffinityLevel, PlacementMode)? {
        if let tag = AdminCommentTag.parse(adminComment: p.adminComment) {
            if case let .preemptor(_, level, mode, _) = tag { return (level, mode) }
            return nil
        }
        guard let config, let (rule, _) = config.rule(for: SubmittedJob(partitions: p.partitions, qos: p.qos)),
              case let .preemptor(level, mode) = rule.kind
        else { return nil }
        return (level, mode)
    }

    // MARK: - Kept plans

    private mutating func release(pendingOwners: Set<UInt32>, current: UInt32, log: inout [PreemptLogLine]) {
        for owner in plans.keys where owner != current && !pendingOwners.contains(owner) {
            plans[owner] = nil
            log.append(.init(.debug, "\(Self.prefix) JobId=\(owner) is no longer pending: its plan is released"))
        }
        if reported.count > Self.maxKept { reported = [:] }
    }

    /// The answer of a kept plan, or nil when it no longer holds (it is then dropped).
    private mutating func answerFromKept(_ kept: KeptPlan, snapshot: ControllerSnapshot, built: Built, settings: PreemptSettings,
                                         log: inout [PreemptLogLine]) -> PreemptAction? {
        let job = "JobId=\(kept.owner)"
        func drop(_ why: String) -> PreemptAction? {
            plans[kept.owner] = nil
            log.append(.init(.info, "\(Self.prefix) \(job) plan \(kept.line) dropped: \(why); planning again"))
            return nil
        }
        let age = snapshot.time &- kept.created
        if age > settings.planTimeoutSeconds {
            return drop("older than PlanTimeout=\(settings.planTimeoutSeconds)s")
        }
        let victims = Set(kept.victims)
        var running = Set<UInt32>()
        for target in kept.targets {
            guard let n = built.nodeByName[target.node], built.snapshot.nodes[n].available else {
                return drop("node \(target.node) is unavailable")
            }
            for j in built.jobsOnNode[n] {
                let other = built.snapshot.jobs[j]
                guard let allocation = other.allocations.first(where: { $0.node == n }) else { continue }
                if victims.contains(other.id) {
                    running.insert(other.id)
                } else if !allocation.gpus.intersection(target.gpus).isEmpty {
                    return drop("JobId=\(other.id) now holds GPUs \(allocation.gpus.intersection(target.gpus)) of \(target.node)")
                }
            }
        }
        if !kept.executed {
            // Slurm has not acted on it: plan afresh (the state may have changed).
            if running.count == victims.count { return nil }
            plans[kept.owner]?.executed = true
            log.append(.init(.verbose, "\(Self.prefix) \(job) plan \(kept.line) executing: \(victims.count - running.count) of \(victims.count) victim(s) stopped"))
        }
        let remaining = kept.victims.filter { running.contains($0) }
        log.append(.init(.debug, "\(Self.prefix) \(job) keeps its plan (\(remaining.isEmpty ? "victims draining" : "victims still running: \(remaining.map(String.init).joined(separator: ","))"))"))
        if remaining.isEmpty { return .noVictims }
        return kept.mode == .guaranteed ? .onlyVictims(remaining) : .victimsFirst(remaining)
    }

    /// The plan takes GPUs of jobs still draining.
    static func usesDraining(_ plan: Plan, _ built: Built) -> Bool {
        plan.nodes.contains { node in
            guard let n = built.nodeByName[node.node], built.draining.indices.contains(n) else { return false }
            return node.expectedGPUs.contains { !$0.intersection(built.draining[n]).isEmpty }
        }
    }

    /// The snapshot's indices of the named nodes.
    static func indices(of names: [String], _ built: Built) -> [Int] {
        names.compactMap { name in built.nodeByName[name].map { built.controllerNodeOf[$0] } }
    }

    static func overlaps(_ a: [KeptPlan.Target], _ b: [KeptPlan.Target]) -> Bool {
        a.contains { x in b.contains { y in x.node == y.node && !x.gpus.intersection(y.gpus).isEmpty } }
    }

    // MARK: - Snapshot

    struct Built {
        var snapshot: ClusterSnapshot
        var nodeByName: [String: Int]
        /// Controller node index -> planning node index (nil: left out).
        var clusterNodeOf: [Int?]
        /// Planning node index -> controller node index.
        var controllerNodeOf: [Int]
        var jobsOnNode: [[Int]]
        /// GPUs of jobs Slurm already signalled for preemption, per planning node: planned as
        /// free (they are being freed), though Slurm does not count them free yet.
        var draining: [GPUSet]
    }

    enum BuildResult {
        case success(Built)
        case failure(String)
    }

    /// Nodes whose GPU count disagrees with the topology files are left out (logged once each);
    /// anything contradictory in the jobs fails the whole snapshot.
    private mutating func build(_ s: ControllerSnapshot, topology: ControllerTopology, log: inout [PreemptLogLine]) -> BuildResult {
        var nodes: [ClusterSnapshot.NodeState] = []
        var clusterNodeOf = [Int?](repeating: nil, count: s.nodes.count)
        var controllerNodeOf: [Int] = []
        var nodeByName: [String: Int] = [:]
        for (i, node) in s.nodes.enumerated() {
            guard node.gpuCount > 0, let layout = topology.layoutOfNode[node.name],
                  topology.gpuCounts.indices.contains(layout) else { continue }
            let expected = topology.gpuCounts[layout]
            guard node.gpuCount == expected, node.allocated.isSubset(of: GPUSet.first(expected)) else {
                if reportedNodes.count < Self.maxKept, reportedNodes.insert(node.name).inserted {
                    log.append(.init(.info, "\(Self.prefix) node \(node.name): Slurm counts \(node.gpuCount) GPUs (allocated \(node.allocated)) but gres.conf describes \(expected); the node is left to the base policy"))
                }
                continue
            }
            guard nodeByName[node.name] == nil else { return .failure("node \(node.name) listed twice") }
            clusterNodeOf[i] = nodes.count
            controllerNodeOf.append(i)
            nodeByName[node.name] = nodes.count
            nodes.append(.init(name: node.name, layout: layout, available: node.available, otherAllocated: node.allocated))
        }
        let time = max(s.time, 0)
        var jobs: [ClusterSnapshot.RunningJob] = []
        var jobsOnNode = [[Int]](repeating: [], count: nodes.count)
        var held = [GPUSet](repeating: GPUSet(), count: nodes.count)
        var draining = [GPUSet](repeating: GPUSet(), count: nodes.count)
        var seen = Set<UInt32>()
        for job in s.jobs {
            guard seen.insert(job.id).inserted else { return .failure("job \(job.id) listed twice") }
            var allocations: [ClusterSnapshot.RunningJob.Allocation] = []
            for allocation in job.allocations {
                guard s.nodes.indices.contains(allocation.node) else {
                    return .failure("job \(job.id) on node index \(allocation.node) of \(s.nodes.count)")
                }
                guard let n = clusterNodeOf[allocation.node], !allocation.gpus.isEmpty else { continue }
                let node = s.nodes[allocation.node]
                guard allocation.gpus.isSubset(of: node.allocated) else {
                    return .failure("job \(job.id) holds GPUs \(allocation.gpus) of \(node.name), which Slurm has not allocated (\(node.allocated))")
                }
                guard held[n].intersection(allocation.gpus).isEmpty else {
                    return .failure("GPUs \(held[n].intersection(allocation.gpus)) of \(node.name) are held by job \(job.id) and another job")
                }
                held[n] = held[n].union(allocation.gpus)
                guard !allocations.contains(where: { $0.node == n }) else { return .failure("job \(job.id) lists node \(node.name) twice") }
                allocations.append(.init(node: n, gpus: allocation.gpus))
            }
            guard !allocations.isEmpty else { continue }
            if job.draining {
                // Already being preempted (for this job or another): its GPUs are as good as
                // free, at no further cost. Choosing it again is never a second victim.
                for allocation in allocations { draining[allocation.node] = draining[allocation.node].union(allocation.gpus) }
                continue
            }
            for allocation in allocations { jobsOnNode[allocation.node].append(jobs.count) }
            // Start times outside 0...now (clock skew, unset fields) count as "just started":
            // no arithmetic on them can overflow later.
            let start = min(max(job.startTime, 0), time)
            jobs.append(.init(id: job.id, priority: job.basePriority, startTime: start, preemptible: job.eligible,
                              allocations: allocations))
        }
        // GPUs allocated to no running job (completing jobs, other GRES users) are not free.
        for n in nodes.indices {
            nodes[n].otherAllocated = (nodes[n].otherAllocated ?? GPUSet()).subtracting(held[n])
        }
        let snapshot = ClusterSnapshot(layouts: topology.layouts, nodes: nodes, jobs: jobs, time: time, slurm: s.slurm)
        return .success(Built(snapshot: snapshot, nodeByName: nodeByName, clusterNodeOf: clusterNodeOf,
                              controllerNodeOf: controllerNodeOf, jobsOnNode: jobsOnNode,
                              draining: draining))
    }

    // MARK: - Logging

    private mutating func fallback(_ id: UInt32, _ message: String, level: PreemptLogLine.Level = .info,
                                   log: [PreemptLogLine]) -> PreemptDecision {
        var d = once(id, message, level: level, log: log)
        d.action = .basePolicy
        return d
    }

    /// Logs `message` unless it is what was last logged for this job.
    private mutating func once(_ id: UInt32, _ message: String, level: PreemptLogLine.Level = .info,
                               log: [PreemptLogLine]) -> PreemptDecision {
        var log = log
        if reported[id] != message {
            reported[id] = message
            log.append(.init(level, "\(Self.prefix) \(message)"))
        } else {
            log.append(.init(.debug, "\(Self.prefix) \(message)"))
        }
        return PreemptDecision(action: .basePolicy, log: log, planMicroseconds: 0)
    }

    /// `node1 gpus=0-3 level=nvlink victims=1,3 cost=...` (several nodes: `node1 gpus=0-3 node2 gpus=4-7`).
    static func describe(_ plan: Plan) -> String {
        "\(targets(plan)) level=\(plan.level.name)\(plan.degraded ? " (degraded, required \(plan.request.level.name))" : "") victims=\(plan.victims.map(String.init).joined(separator: ",")) cost=victims:\(plan.cost.victims),prio:\(plan.cost.maxPriority.map(String.init) ?? "-"),lost:\(plan.cost.gpuSeconds)gpu-s,collateral:\(plan.cost.collateral)"
    }

    static func targets(_ plan: Plan) -> String {
        plan.nodes.map { node in
            let picks = Set(node.expectedGPUs.map(\.description)).sorted()
            return "\(node.node) gpus=\(picks.isEmpty ? "?" : picks.joined(separator: "|"))"
        }.joined(separator: " ")
    }
}
