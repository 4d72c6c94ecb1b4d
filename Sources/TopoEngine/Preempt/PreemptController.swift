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
    /// `decideLive` only: the update did not follow the state kept (nothing was decided); the
    /// caller asks again with everything.
    public var resync: Bool = false
    /// The decision log's records of this decision (made where its `info` lines are made).
    public var records: [DecisionRecord] = []
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
    /// How plans are compared; nil: the preemptor class's `CostOrder=`, else the file's.
    public var costOrder: [CostCriterion]?
    /// How near the least work plans tie under `rough-work`; nil: the preemptor class's
    /// `RoughWorkTolerance=`, else the file's.
    public var roughWorkTolerance: RoughWorkTolerance?

    public init(planTimeoutSeconds: Int64 = 300, planBudgetMicroseconds: UInt64 = 200_000,
                costOrder: [CostCriterion]? = nil, roughWorkTolerance: RoughWorkTolerance? = nil) {
        self.planTimeoutSeconds = planTimeoutSeconds
        self.planBudgetMicroseconds = planBudgetMicroseconds
        self.costOrder = costOrder
        self.roughWorkTolerance = roughWorkTolerance
    }
}

extension PreemptSettings {
    /// Fills what is not set with the preemptor class's (else the file's) cost order and
    /// rough-work tolerance.
    mutating func resolveCost(for p: ControllerSnapshot.Preemptor, config: TopoAwareConfig?) {
        guard costOrder == nil || roughWorkTolerance == nil else { return }
        // The class found once (its AdminComment tag read once) for both.
        let rule = config.flatMap { PreemptController.costRule(p, config: $0) }
        if costOrder == nil { costOrder = config?.costOrder(of: rule) ?? CostCriterion.defaultOrder }
        if roughWorkTolerance == nil { roughWorkTolerance = config?.roughWorkTolerance(of: rule) ?? .default }
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
        /// The level the plan reaches, and the level the job's class requires.
        public var level: AffinityLevel = .node
        public var required: AffinityLevel = .node
        /// Multi-node plans: the block (leaf switch) holding its nodes, or which kind it spans.
        public var domain: NodeDomain? = nil

        public struct Target: Sendable, Equatable {
            public var node: String
            public var gpus: GPUSet
        }

        /// The targets as a decision record states them.
        var recordTargets: [DecisionRecord.Target] { targets.map { DecisionRecord.Target(node: $0.node, gpus: $0.gpus) } }
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
    /// The planner's state kept between decisions of `decideLive`.
    private var live: LiveIndex?
    /// The records of the decision being made, and its time.
    private var records: [DecisionRecord] = []
    private var recordTime: Int64 = 0

    public init() {}

    /// Jobs that own kept plans; the caller reports which are still pending.
    public var planOwners: [UInt32] { plans.keys.sorted() }

    public mutating func reset() {
        live = nil
        plans = [:]
        reported = [:]
        reportedNodes = []
    }

    public mutating func decide(_ snapshot: ControllerSnapshot, config: TopoAwareConfig?, topology: ControllerTopology?,
                                settings: PreemptSettings, clock: () -> UInt64) -> PreemptDecision {
        recordTime = snapshot.time
        records = []
        var d = decideSnapshot(snapshot, config: config, topology: topology, settings: settings, clock: clock)
        d.records = records
        records = []
        return d
    }

    private mutating func decideSnapshot(_ snapshot: ControllerSnapshot, config: TopoAwareConfig?, topology: ControllerTopology?,
                                         settings: PreemptSettings, clock: () -> UInt64) -> PreemptDecision {
        var log: [PreemptLogLine] = []
        let p = snapshot.preemptor
        let job = "JobId=\(p.id)"
        release(pendingOwners: snapshot.pendingOwners, current: p.id, log: &log)

        // 1. Is it ours?
        let level: AffinityLevel, mode: PlacementMode, layouts: ControllerTopology
        switch gate(p, config: config, topology: topology, log: log) {
        case let .answer(decision): return decision
        case let .plan(l, m, t): (level, mode, layouts) = (l, m, t)
        }
        var settings = settings
        settings.resolveCost(for: p, config: config)

        // 2. The planning snapshot, validated.
        let built: Built, clusterSnapshot: ClusterSnapshot
        switch build(snapshot, topology: layouts, log: &log) {
        case let .success(value): (built, clusterSnapshot) = value
        case let .failure(message):
            var d = fallback(p.id, "\(job) inconsistent state: \(message); base policy", reason: "inconsistent-state", log: log)
            d.inconsistent = true
            return d
        }
        var index: PlanningIndex
        do { index = try PlanningIndex(clusterSnapshot) } catch {
            var d = fallback(p.id, "\(job) inconsistent state: \(error); base policy", reason: "inconsistent-state", log: log)
            d.inconsistent = true
            return d
        }
        let candidates = p.candidateNodes.map { nodes in
            Set(nodes.compactMap { built.clusterNodeOf[$0].map { clusterSnapshot.nodes[$0].name } })
        }
        let ids = index.jobFacts.map(\.id)
        var scratch = PlannerScratch()
        return decide(p, level: level, mode: mode, snapshot: snapshot, built: built, index: &index, scratch: &scratch,
                      candidates: .names(candidates), jobsOf: { wanted in ids.indices.filter { wanted.contains(ids[$0]) } },
                      leftOutJobs: { snapshot.jobs }, record: true, settings: settings, clock: clock, log: log)
    }

    /// The same decision on the state kept between decisions (inside slurmctld): the plugin
    /// gives what changed in its job index and node table since the last decision (`update`),
    /// and `attributes` writes per running job, by slot, its base priority and whether the base
    /// policy lets this preemptor preempt it. `header` gives the time, the preemptor and the owners
    /// of kept plans; its nodes and jobs are not read. When the update does not follow what is
    /// kept, the decision says `resync` (and nothing else): the caller asks again with everything.
    public mutating func decideLive(_ header: ControllerSnapshot, update: LiveUpdate,
                                    attributes: (_ basePriorities: inout [Int], _ eligible: inout [Bool]) -> Void,
                                    config: TopoAwareConfig?, topology: ControllerTopology?, settings: PreemptSettings,
                                    clock: () -> UInt64) -> PreemptDecision {
        recordTime = header.time
        records = []
        var d = decideOnKeptState(header, update: update, attributes: attributes, config: config, topology: topology,
                                  settings: settings, clock: clock)
        d.records = records
        records = []
        return d
    }

    private mutating func decideOnKeptState(_ header: ControllerSnapshot, update: LiveUpdate,
                                            attributes: (_ basePriorities: inout [Int], _ eligible: inout [Bool]) -> Void,
                                            config: TopoAwareConfig?, topology: ControllerTopology?, settings: PreemptSettings,
                                            clock: () -> UInt64) -> PreemptDecision {
        var log: [PreemptLogLine] = []
        let p = header.preemptor
        let job = "JobId=\(p.id)"

        // 1. The kept state follows the plugin's, whoever the preemptor is.
        let failure = follow(update, topology: topology, time: header.time, slurm: header.slurm)
        if failure == .resync {
            var d = PreemptDecision(action: .basePolicy, log: [], planMicroseconds: 0)
            d.resync = true
            return d
        }
        release(pendingOwners: header.pendingOwners, current: p.id, log: &log)

        // 2. Is it ours?
        let level: AffinityLevel, mode: PlacementMode
        switch gate(p, config: config, topology: topology, log: log) {
        case let .answer(decision): return decision
        case let .plan(l, m, _): (level, mode) = (l, m)
        }
        var settings = settings
        settings.resolveCost(for: p, config: config)
        if case let .inconsistent(message) = failure {
            var d = fallback(p.id, "\(job) inconsistent state: \(message); base policy", reason: "inconsistent-state", log: log)
            d.inconsistent = true
            return d
        }
        guard var state = live else { return fallback(p.id, "\(job) no GPU topology loaded (gres.conf); base policy", reason: "no-topology", log: log) }
        live = nil
        defer { live = state }
        reportMismatched(state.mismatched, nodes: state.nodes, topology: topology, log: &log)

        // 3. This decision's view: priorities, eligibility, work; candidate nodes by index.
        state.prepare(time: header.time, fill: attributes)
        var snapshot = header
        snapshot.nodes = state.nodes
        let built = state.built
        var mask: [Bool]?
        if let nodes = p.candidateNodes {
            // The kept buffer, written in place (nothing per decision grows with the cluster).
            var m = state.maskBuffer
            state.maskBuffer = []
            if m.count != built.controllerNodeOf.count {
                m = [Bool](repeating: false, count: built.controllerNodeOf.count)
            } else {
                for n in m.indices { m[n] = false }
            }
            for c in nodes where built.clusterNodeOf.indices.contains(c) {
                if let n = built.clusterNodeOf[c] { m[n] = true }
            }
            mask = m
        }
        let slotOf = state.jobSlots
        let (slots, priorities, eligible) = (state.slots, state.basePriorities, state.eligibleFlags)
        let decision = decide(p, level: level, mode: mode, snapshot: snapshot, built: built, index: &state.index,
                              scratch: &state.scratch, candidates: .mask(mask), jobsOf: { ids in ids.compactMap { slotOf[$0] } },
                              leftOutJobs: { LiveIndex.controllerJobs(slots, priorities: priorities, eligible: eligible) },
                              record: false, settings: settings, clock: clock, log: log)
        if let mask { state.maskBuffer = mask }
        return decision
    }

    /// Brings the kept state up to `update` (nil: done; without topology nothing is kept).
    private mutating func follow(_ update: LiveUpdate, topology: ControllerTopology?, time: Int64,
                                 slurm: SlurmRelease) -> LiveIndex.Failure? {
        guard let topology else {
            live = nil
            return nil
        }
        // Taken out while it changes, so that it is changed in place (never copied).
        var state = live
        live = nil
        do throws(LiveIndex.Failure) {
            if update.everything {
                state = nil
                state = try Self.liveIndex(update, topology: topology, time: time, slurm: slurm)
            } else if state != nil {
                try state!.apply(update, topology: topology, time: time, slurm: slurm)
            } else {
                throw .resync
            }
        } catch {
            return error
        }
        live = state
        return nil
    }

    private static func liveIndex(_ update: LiveUpdate, topology: ControllerTopology, time: Int64,
                                  slurm: SlurmRelease) throws(LiveIndex.Failure) -> LiveIndex {
        guard update.nodeCount >= 0, update.slotCount >= 0 else { throw .inconsistent("negative counts") }
        var nodes = [ControllerSnapshot.Node?](repeating: nil, count: update.nodeCount)
        for (i, node) in update.nodes {
            guard nodes.indices.contains(i) else { throw .inconsistent("node index \(i) of \(update.nodeCount)") }
            nodes[i] = node
        }
        var slots = [LiveSlot?](repeating: nil, count: update.slotCount)
        for (s, job) in update.slots where slots.indices.contains(s) { slots[s] = job }
        var complete: [ControllerSnapshot.Node] = []
        complete.reserveCapacity(nodes.count)
        for (i, node) in nodes.enumerated() {
            guard let node else { throw .inconsistent("node index \(i) not given") }
            complete.append(node)
        }
        return try LiveIndex(epoch: update.epoch, sequence: update.sequence, nodes: complete, slots: slots, topology: topology,
                             time: time, slurm: slurm)
    }

    private enum Gate {
        case plan(AffinityLevel, PlacementMode, ControllerTopology)
        case answer(PreemptDecision)
    }

    /// The preemptor's class and the topology when the planner decides for it; else the answer.
    private mutating func gate(_ p: ControllerSnapshot.Preemptor, config: TopoAwareConfig?, topology: ControllerTopology?,
                               log: [PreemptLogLine]) -> Gate {
        // The AdminComment tag job_submit wrote, else the class lines.
        guard let (level, mode) = Self.preemptorClass(p, config: config) else {
            return .answer(PreemptDecision(action: .basePolicy, log: log, planMicroseconds: 0))
        }
        guard p.gpusPerNode > 0 else {
            return .answer(fallback(p.id, "JobId=\(p.id) asks for no GPUs per node the planner can read; base policy", reason: "no-gpus-read", level: .debug, log: log))
        }
        guard let topology else {
            return .answer(fallback(p.id, "JobId=\(p.id) no GPU topology loaded (gres.conf); base policy", reason: "no-topology", log: log))
        }
        return .plan(level, mode, topology)
    }

    private enum Candidates {
        case names(Set<String>?)
        case mask([Bool]?)
    }

    /// A kept plan's answer, or a new plan on `index` (GPUs and victims of higher-ranked kept
    /// plans are taken out for the planning and put back after).
    private mutating func decide(_ p: ControllerSnapshot.Preemptor, level: AffinityLevel, mode: PlacementMode,
                                 snapshot: ControllerSnapshot, built: Built, index: inout PlanningIndex,
                                 scratch: inout PlannerScratch, candidates: Candidates, jobsOf: (Set<UInt32>) -> [Int],
                                 leftOutJobs: () -> [ControllerSnapshot.Job], record: Bool,
                                 settings: PreemptSettings, clock: () -> UInt64, log: [PreemptLogLine]) -> PreemptDecision {
        var log = log
        // 3. A kept plan answers while it holds.
        if let kept = plans[p.id] {
            if let action = answerFromKept(kept, time: snapshot.time, index: index, settings: settings, log: &log) {
                var d = PreemptDecision(action: action, log: log, planMicroseconds: 0)
                d.targetNodes = Self.indices(of: kept.targets.map(\.node), built)
                return d
            }
        }

        // 4. Plan.
        let rank = Rank(basePriority: p.basePriority, jobPriority: p.jobPriority, id: p.id)
        var reservedNodes: [(node: Int, free: GPUSet, other: GPUSet?)] = []
        var reservedVictims = Set<UInt32>()
        for other in plans.values where other.owner != p.id && other.rank > rank {
            for target in other.targets {
                guard let n = index.nodeByName[target.node] else { continue }
                reservedNodes.append((n, index.free[n], index.snapshot.nodes[n].otherAllocated))
                index.free[n] = index.free[n].subtracting(target.gpus)
                index.snapshot.nodes[n].otherAllocated = (index.snapshot.nodes[n].otherAllocated ?? GPUSet()).union(target.gpus)
            }
            reservedVictims.formUnion(other.victims)
        }
        var reservedJobs: [(job: Int, preemptible: Bool, listed: Bool)] = []
        if !reservedVictims.isEmpty {
            for j in jobsOf(reservedVictims) where index.jobFacts.indices.contains(j) {
                reservedJobs.append((j, index.jobFacts[j].preemptible, index.snapshot.jobs[j].preemptible))
                index.jobFacts[j].preemptible = false
                index.snapshot.jobs[j].preemptible = false
            }
        }
        defer {
            for entry in reservedJobs.reversed() {
                index.jobFacts[entry.job].preemptible = entry.preemptible
                index.snapshot.jobs[entry.job].preemptible = entry.listed
            }
            for entry in reservedNodes.reversed() {
                index.free[entry.node] = entry.free
                index.snapshot.nodes[entry.node].otherAllocated = entry.other
            }
        }
        var request = PreemptorRequest(jobID: p.id, gpusPerNode: p.gpusPerNode, nodeCount: max(1, p.nodeCount), level: level,
                                       mode: mode, priority: Int.max, shape: p.perSocket ? .perSocket : .perNode,
                                       cpusPerNode: max(1, p.cpusPerNode), segmentSize: p.segmentSize)
        // Named nodes by name (a node of unknown topology keeps its name: no plan can then
        // include it, as none can use it).
        request.segmentPlacement = p.segmentPlacement
        request.requiredNodes = Set(p.requiredNodes.compactMap { snapshot.nodes.indices.contains($0) ? snapshot.nodes[$0].name : nil })
        switch candidates {
        case let .names(names): request.candidateNodes = names
        case let .mask(mask): request.candidateMask = mask
        }
        let policy = PlannerPolicy(order: settings.costOrder ?? CostCriterion.defaultOrder, exemptSeconds: snapshot.exemptSeconds, requireEveryVictim: true,
                                   roughWorkTolerance: settings.roughWorkTolerance ?? .default)
        let start = clock()
        let outcome = Planner.plan(request, in: index, policy: policy, scratch: &scratch)
        let end = clock()
        let micros = end >= start ? (end - start) / 1000 : 0
        var decision = answer(outcome, micros: micros, snapshot: snapshot, built: built, leftOutJobs: leftOutJobs, mode: mode,
                              rank: rank, settings: settings, log: log)
        if record { decision.planning = PlanningRecord(request: request, snapshot: index.snapshot, outcome: outcome) }
        return decision
    }

    /// The decision for the planner's outcome.
    private mutating func answer(_ outcome: PlanOutcome, micros: UInt64, snapshot: ControllerSnapshot, built: Built,
                                 leftOutJobs: () -> [ControllerSnapshot.Job],
                                 mode: PlacementMode, rank: Rank, settings: PreemptSettings,
                                 log: [PreemptLogLine]) -> PreemptDecision {
        var log = log
        let p = snapshot.preemptor
        let job = "JobId=\(p.id)"
        if micros > settings.planBudgetMicroseconds {
            var d = fallback(p.id, "\(job) plan took \(micros)us, over PlanTimeBudget=\(settings.planBudgetMicroseconds / 1000)ms; base policy", reason: "over-time-budget", log: log)
            d.planMicroseconds = micros
            return d
        }
        switch outcome {
        case let .plan(plan) where plan.victims.isEmpty && Self.usesDraining(plan, built):
            // The GPUs come free as jobs Slurm already signalled finish draining: preempt
            // nothing new (Slurm's own order would pick more victims, not knowing they will free).
            var d = once(p.id, "\(job) waits for draining jobs to free \(Self.targets(plan)); preempting nothing new", event: .wait,
                         reason: "victims-draining", targets: Self.recordTargets(plan), log: log)
            d.action = .onlyVictims([])
            d.planMicroseconds = micros
            d.targetNodes = Self.indices(of: plan.nodes.map(\.node), built)
            return d
        case let .plan(plan) where plan.victims.isEmpty:
            // Free aligned GPUs exist: Slurm starts the job without preempting (it asks for
            // candidates before it tries). If it cannot (CPUs, memory), the base policy decides.
            var d = fallback(p.id, "\(job) fits on free GPUs without preemption (\(Self.targets(plan))); base policy for anything else", reason: "fits-without-preemption", level: .debug, log: log)
            d.planMicroseconds = micros
            return d
        case let .plan(plan):
            let kept = KeptPlan(owner: p.id, rank: rank, mode: mode,
                                targets: plan.nodes.map { .init(node: $0.node, gpus: $0.expectedGPUs.reduce(GPUSet()) { $0.union($1) }) },
                                victims: plan.victims, created: snapshot.time, executed: false,
                                line: Self.describe(plan), level: plan.level, required: plan.request.level,
                                domain: plan.domain)
            let previous = plans[p.id]
            // Takeover: lower-ranked kept plans whose GPUs this one needs are dropped.
            for other in plans.values where other.owner != p.id && other.rank < rank && Self.overlaps(other.targets, kept.targets) {
                plans[other.owner] = nil
                let message = "JobId=\(p.id) takes over the GPUs planned for JobId=\(other.owner) (\(other.line)); JobId=\(other.owner) will be planned again"
                log.append(.init(.info, "\(Self.prefix) \(message)"))
                var record = DecisionRecord(.takeover, time: recordTime, job: p.id, message: message)
                record.other = other.owner
                record.targets = other.recordTargets
                record.victims = other.victims
                records.append(record)
            }
            if plans.count < Self.maxKept || previous != nil { plans[p.id] = kept }
            reported[p.id] = nil
            let same = previous.map { $0.victims == kept.victims && $0.targets == kept.targets } ?? false
            log.append(.init(same ? .debug : .info, "\(Self.prefix) \(job) plan \(kept.line) \(micros)us"))
            if !same {
                var record = DecisionRecord(plan: plan, time: recordTime, job: p.id, mode: mode, micros: micros,
                                            message: "\(job) plan \(kept.line)")
                record.costOrder = settings.costOrder ?? CostCriterion.defaultOrder
                if record.costOrder?.contains(.roughWork) == true { record.roughWorkTolerance = settings.roughWorkTolerance ?? .default }
                records.append(record)
            }
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
                let victims = leftOutJobs()
                    .filter { job in job.eligible && !job.draining && !job.allocations.isEmpty
                        && job.allocations.allSatisfy { leftOut.contains($0.node) } }
                    .sorted { ($0.basePriority, $0.id) < ($1.basePriority, $1.id) }
                    .map(\.id)
                if !victims.isEmpty {
                    let names = leftOut.sorted().prefix(8).map { snapshot.nodes[$0].name }.joined(separator: ",")
                    var d = once(p.id, "\(job) no plan on nodes of known topology (\(code.rawValue)): \(reason); base policy on node(s) \(names)\(leftOut.count > 8 ? ",..." : ""), left out of planning", event: .fallback, reason: "left-out-nodes", log: log)
                    d.action = .onlyVictims(Array(victims.prefix(Self.maxVictims)))
                    d.planMicroseconds = micros
                    return d
                }
            }
            if mode == .guaranteed {
                var d = once(p.id, "\(job) no plan (\(code.rawValue)): \(reason); guaranteed mode: preempting nothing, the job waits", event: .wait, reason: code.rawValue, log: log)
                d.action = .noVictims
                d.planMicroseconds = micros
                return d
            }
            var d = fallback(p.id, "\(job) no plan (\(code.rawValue)): \(reason); base policy", reason: code.rawValue, log: log)
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

    /// The cost order for a preemptor: its class's `CostOrder=` (the class the AdminComment tag
    /// names, else the matching class line), else the file's; the default without a file.
    public static func costOrder(_ p: ControllerSnapshot.Preemptor, config: TopoAwareConfig?) -> [CostCriterion] {
        guard let config else { return CostCriterion.defaultOrder }
        return config.costOrder(of: costRule(p, config: config))
    }

    /// The rough-work tolerance for a preemptor, found as its cost order is.
    public static func roughWorkTolerance(_ p: ControllerSnapshot.Preemptor, config: TopoAwareConfig?) -> RoughWorkTolerance {
        guard let config else { return .default }
        return config.roughWorkTolerance(of: costRule(p, config: config))
    }

    /// The class line whose cost settings a preemptor follows (nil: the file's).
    fileprivate static func costRule(_ p: ControllerSnapshot.Preemptor, config: TopoAwareConfig) -> JobClassRule? {
        if let tag = AdminCommentTag.parse(adminComment: p.adminComment) {
            guard case let .preemptor(name, _, _, _) = tag else { return nil }
            return config.classes.first { $0.name == name }
        }
        return config.rule(for: SubmittedJob(partitions: p.partitions, qos: p.qos))?.rule
    }

    // MARK: - Kept plans

    private mutating func release(pendingOwners: Set<UInt32>, current: UInt32, log: inout [PreemptLogLine]) {
        for owner in plans.keys.sorted() where owner != current && !pendingOwners.contains(owner) {
            let kept = plans[owner]
            plans[owner] = nil
            let message = "JobId=\(owner) is no longer pending: its plan is released"
            log.append(.init(.debug, "\(Self.prefix) \(message)"))
            var record = DecisionRecord(.released, time: recordTime, job: owner, message: message)
            record.targets = kept?.recordTargets ?? []
            record.victims = kept?.victims ?? []
            records.append(record)
        }
        if reported.count > Self.maxKept { reported = [:] }
    }

    /// The answer of a kept plan, or nil when it no longer holds (it is then dropped).
    private mutating func answerFromKept(_ kept: KeptPlan, time: Int64, index: PlanningIndex, settings: PreemptSettings,
                                         log: inout [PreemptLogLine]) -> PreemptAction? {
        let job = "JobId=\(kept.owner)"
        func drop(_ why: String, _ reason: String) -> PreemptAction? {
            plans[kept.owner] = nil
            let message = "\(job) plan \(kept.line) dropped: \(why); planning again"
            log.append(.init(.info, "\(Self.prefix) \(message)"))
            var record = DecisionRecord(.dropped, time: recordTime, job: kept.owner, message: message, reason: reason)
            record.targets = kept.recordTargets
            record.victims = kept.victims
            records.append(record)
            return nil
        }
        let age = time &- kept.created
        if age > settings.planTimeoutSeconds {
            return drop("older than PlanTimeout=\(settings.planTimeoutSeconds)s", "plan-timeout")
        }
        let victims = Set(kept.victims)
        var running = Set<UInt32>()
        for target in kept.targets {
            guard let n = index.nodeByName[target.node], index.snapshot.nodes[n].available else {
                return drop("node \(target.node) is unavailable", "node-unavailable")
            }
            for entry in index.jobsOnNode[n] {
                let id = index.jobFacts[entry.job].id
                if victims.contains(id) {
                    running.insert(id)
                } else if !entry.gpus.intersection(target.gpus).isEmpty {
                    return drop("JobId=\(id) now holds GPUs \(entry.gpus.intersection(target.gpus)) of \(target.node)", "gpus-taken")
                }
            }
        }
        if !kept.executed {
            // Slurm has not acted on it: plan afresh (the state may have changed).
            if running.count == victims.count { return nil }
            plans[kept.owner]?.executed = true
            let message = "\(job) plan \(kept.line) executing: \(victims.count - running.count) of \(victims.count) victim(s) stopped"
            log.append(.init(.verbose, "\(Self.prefix) \(message)"))
            var record = DecisionRecord(.executing, time: recordTime, job: kept.owner, message: message)
            record.mode = kept.mode
            record.targets = kept.recordTargets
            record.victims = kept.victims.filter { !running.contains($0) }
            records.append(record)
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

    /// The planning nodes of a controller snapshot: names, index maps both ways, and per node
    /// the GPUs of jobs Slurm already signalled for preemption (planned as free: they are being
    /// freed, though Slurm does not count them free yet).
    struct Built {
        var nodeByName: [String: Int]
        /// Controller node index -> planning node index (nil: left out).
        var clusterNodeOf: [Int?]
        /// Planning node index -> controller node index.
        var controllerNodeOf: [Int]
        var draining: [GPUSet]
    }

    enum BuildResult {
        case success((Built, ClusterSnapshot))
        case failure(String)
    }

    /// The layout of a node the planner plans on: known topology, Slurm's GPU count as
    /// gres.conf's, allocated GPUs among them; else nil.
    static func planned(_ node: ControllerSnapshot.Node, _ topology: ControllerTopology) -> Int? {
        guard node.gpuCount > 0, let layout = topology.layoutOfNode[node.name], topology.gpuCounts.indices.contains(layout),
              node.gpuCount == topology.gpuCounts[layout], node.allocated.isSubset(of: GPUSet.first(node.gpuCount))
        else { return nil }
        return layout
    }

    /// The planning nodes (all GPUs as Slurm allocated them: `otherAllocated` is the node's
    /// allocated GPUs), the nodes left out for disagreeing with the topology files (controller
    /// indices), and a name listed twice.
    static func planningNodes(_ nodes: [ControllerSnapshot.Node], topology: ControllerTopology)
        -> (nodes: [ClusterSnapshot.NodeState], built: Built, mismatched: [Int], duplicate: String?) {
        var planned: [ClusterSnapshot.NodeState] = []
        var clusterNodeOf = [Int?](repeating: nil, count: nodes.count)
        var controllerNodeOf: [Int] = []
        var nodeByName: [String: Int] = [:]
        var mismatched: [Int] = []
        var duplicate: String?
        for (i, node) in nodes.enumerated() {
            guard node.gpuCount > 0, topology.layoutOfNode[node.name] != nil else { continue }
            guard let layout = Self.planned(node, topology) else {
                mismatched.append(i)
                continue
            }
            guard nodeByName[node.name] == nil else {
                duplicate = duplicate ?? node.name
                continue
            }
            clusterNodeOf[i] = planned.count
            controllerNodeOf.append(i)
            nodeByName[node.name] = planned.count
            planned.append(.init(name: node.name, layout: layout, available: node.available, otherAllocated: node.allocated,
                                 leafSwitch: topology.leafSwitchOfNode[node.name], block: topology.blockOfNode[node.name]))
        }
        let built = Built(nodeByName: nodeByName, clusterNodeOf: clusterNodeOf, controllerNodeOf: controllerNodeOf,
                          draining: Array(repeating: GPUSet(), count: planned.count))
        return (planned, built, mismatched, duplicate)
    }

    /// One line per node whose GPU count disagrees with the topology files, the first time.
    private mutating func reportMismatched(_ indices: [Int], nodes: [ControllerSnapshot.Node], topology: ControllerTopology?,
                                           log: inout [PreemptLogLine]) {
        for i in indices where nodes.indices.contains(i) {
            let node = nodes[i]
            guard reportedNodes.count < Self.maxKept, !reportedNodes.contains(node.name) else { continue }
            reportedNodes.insert(node.name)
            let expected = topology?.layoutOfNode[node.name].flatMap { topology?.gpuCounts.indices.contains($0) == true ? topology?.gpuCounts[$0] : nil }
            log.append(.init(.info, "\(Self.prefix) node \(node.name): Slurm counts \(node.gpuCount) GPUs (allocated \(node.allocated)) but gres.conf describes \(expected.map(String.init) ?? "?"); the node is left to the base policy"))
        }
    }

    /// Nodes whose GPU count disagrees with the topology files are left out (logged once each);
    /// anything contradictory in the jobs fails the whole snapshot.
    private mutating func build(_ s: ControllerSnapshot, topology: ControllerTopology, log: inout [PreemptLogLine]) -> BuildResult {
        var (nodes, built, mismatched, duplicate) = Self.planningNodes(s.nodes, topology: topology)
        reportMismatched(mismatched, nodes: s.nodes, topology: topology, log: &log)
        if let duplicate { return .failure("node \(duplicate) listed twice") }
        let clusterNodeOf = built.clusterNodeOf
        let time = max(s.time, 0)
        var jobs: [ClusterSnapshot.RunningJob] = []
        var held = [GPUSet](repeating: GPUSet(), count: nodes.count)
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
                for allocation in allocations { built.draining[allocation.node] = built.draining[allocation.node].union(allocation.gpus) }
                continue
            }
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
        return .success((built, ClusterSnapshot(layouts: topology.layouts, nodes: nodes, jobs: jobs, time: time, slurm: s.slurm,
                                                       blockLevels: topology.blockLevels)))
    }

    // MARK: - Logging

    private mutating func fallback(_ id: UInt32, _ message: String, reason: String, level: PreemptLogLine.Level = .info,
                                   log: [PreemptLogLine]) -> PreemptDecision {
        var d = once(id, message, event: .fallback, reason: reason, level: level, log: log)
        d.action = .basePolicy
        return d
    }

    /// Logs `message` (and records it) unless it is what was last logged for this job.
    private mutating func once(_ id: UInt32, _ message: String, event: DecisionRecord.Event, reason: String,
                               targets: [DecisionRecord.Target] = [], level: PreemptLogLine.Level = .info,
                               log: [PreemptLogLine]) -> PreemptDecision {
        var log = log
        if reported[id] != message {
            reported[id] = message
            log.append(.init(level, "\(Self.prefix) \(message)"))
            var record = DecisionRecord(event, time: recordTime, job: id, message: message, reason: reason)
            record.targets = targets
            records.append(record)
        } else {
            log.append(.init(.debug, "\(Self.prefix) \(message)"))
        }
        return PreemptDecision(action: .basePolicy, log: log, planMicroseconds: 0)
    }

    /// `node1 gpus=0-3 level=nvlink victims=1,3 cost=...` (several nodes: `node1 gpus=0-3 node2 gpus=4-7`).
    static func describe(_ plan: Plan) -> String {
        "\(targets(plan)) level=\(plan.level.name)\(plan.degraded ? " (degraded, required \(plan.request.level.name))" : "")\(domain(plan.domain)) victims=\(plan.victims.map(String.init).joined(separator: ",")) cost=victims:\(plan.cost.victims),prio:\(plan.cost.maxPriority.map(String.init) ?? "-"),lost:\(plan.cost.gpuSeconds)gpu-s,collateral:\(plan.cost.collateral)"
    }

    /// ` block=b1`, ` switch=s1`, ` across=blocks` (multi-node plans on a cluster with blocks or
    /// switches); empty otherwise.
    static func domain(_ domain: NodeDomain?) -> String {
        guard let domain else { return "" }
        return domain.name.map { " \(domain.kind.rawValue)=\($0)" } ?? " across=\(domain.kind.plural)"
    }

    static func recordTargets(_ plan: Plan) -> [DecisionRecord.Target] {
        plan.nodes.map { .init(node: $0.node, gpus: $0.expectedGPUs.reduce(GPUSet()) { $0.union($1) }) }
    }

    static func targets(_ plan: Plan) -> String {
        plan.nodes.map { node in
            let picks = Set(node.expectedGPUs.map(\.description)).sorted()
            return "\(node.node) gpus=\(picks.isEmpty ? "?" : picks.joined(separator: "|"))"
        }.joined(separator: " ")
    }
}

// MARK: - Preemptions Slurm carries out

extension PreemptController {
    /// A job Slurm is preempting now, as the C side sees it.
    public struct Preemption: Sendable, Equatable {
        public var victim: UInt32
        public var preemptor: UInt32
        public var time: Int64
        public var startTime: Int64
        /// Slurm's PreemptMode for the victim (REQUEUE, CANCEL, SUSPEND).
        public var mode: String
        /// The victim's GPUs per node.
        public var gpus: [DecisionRecord.Target]

        public init(victim: UInt32, preemptor: UInt32, time: Int64, startTime: Int64, mode: String, gpus: [DecisionRecord.Target]) {
            self.victim = victim
            self.preemptor = preemptor
            self.time = time
            self.startTime = startTime
            self.mode = mode
            self.gpus = gpus
        }
    }

    /// What a preemption leaves behind: the decision record and the provenance texts for the
    /// victim's and the preemptor's SystemComment (the preemptor's empty when it has no plan).
    public struct Provenance: Sendable {
        public var record: DecisionRecord
        public var victimText: String
        public var preemptorText: String
        /// Keys for the jobs' AdminComment tags (`AdminCommentTag.recording`), which slurmdbd
        /// stores with each run; the preemptor's empty when it has no plan.
        public var victimTag: [(key: String, value: String)]
        public var preemptorTag: [(key: String, value: String)]
    }

    /// Provenance texts start with this tag; a later one replaces an earlier one.
    public static let provenanceTag = "topo_aware:"

    /// The record and provenance of a preemption: chosen by the preemptor's kept plan, or by
    /// the base policy (`basePolicy` names it) when the preemptor has none or the victim is not
    /// among its plan's (best-effort mode continuing in the base policy's order).
    public func preempted(_ p: Preemption, basePolicy: String) -> Provenance {
        let gpus = p.gpus.map { "\($0.node) gpus=\($0.gpus)" }.joined(separator: " ")
        let gpuCount = p.gpus.reduce(0) { $0 + $1.gpus.count }
        let ran = max(0, p.time &- p.startTime)
        var record = DecisionRecord(.preempted, time: p.time, job: p.victim, message: "")
        record.other = p.preemptor
        record.targets = p.gpus
        record.preemptMode = p.mode
        record.lostGPUSeconds = ran.multipliedReportingOverflow(by: Int64(gpuCount)).overflow ? Int64.max : ran * Int64(gpuCount)
        let head = "JobId=\(p.victim) preempted (\(p.mode)) on \(gpus.isEmpty ? "no GPU node" : gpus) for JobId=\(p.preemptor)"
        func tagGPUs(_ targets: [DecisionRecord.Target]) -> String {
            targets.isEmpty ? "none" : targets.map { "\($0.node):\($0.gpus)" }.joined(separator: "+")
        }
        var victimTag: [(key: String, value: String)] = [("preempted_by", "\(p.preemptor)"), ("preempted_gpus", tagGPUs(p.gpus)),
                                                         ("preempted_at", "\(p.time)")]
        if let kept = plans[p.preemptor], kept.victims.contains(p.victim) {
            victimTag.append(("chosen_by", "plan"))
            let preemptorTag: [(key: String, value: String)] = [
                ("plan", tagGPUs(kept.recordTargets)), ("reached", kept.level.name),
                ("victims", kept.victims.map(String.init).joined(separator: "+")),
            ]
            record.reason = "plan"
            record.mode = kept.mode
            record.level = kept.required
            record.reached = kept.level
            record.domain = kept.domain
            record.victims = kept.victims
            record.message = "\(head): a victim of its plan \(kept.line)"
            let others = kept.victims.filter { $0 != p.victim }.map(String.init).joined(separator: ",")
            let victimText = "\(Self.provenanceTag) preempted (\(p.mode)) by JobId=\(p.preemptor) on \(gpus); chosen by its "
                + "\(kept.mode.name) plan \(kept.line)\(others.isEmpty ? "" : " (with JobId \(others))")"
            return Provenance(record: record, victimText: victimText,
                              preemptorText: "\(Self.provenanceTag) \(kept.mode.name) plan \(kept.line)",
                              victimTag: victimTag, preemptorTag: preemptorTag)
        }
        victimTag.append(("chosen_by", "base-policy"))
        record.reason = "base-policy"
        let why = plans[p.preemptor] != nil ? "after its plan's victims, in the base policy's order (\(basePolicy), best-effort)"
                                            : "by the base policy (\(basePolicy))"
        record.message = "\(head): chosen \(why)"
        return Provenance(record: record, victimText: "\(Self.provenanceTag) preempted (\(p.mode)) by JobId=\(p.preemptor) on \(gpus.isEmpty ? "no GPU node" : gpus); chosen \(why)",
                          preemptorText: "", victimTag: victimTag, preemptorTag: [])
    }

    /// `existing` with `text` as its TopoPreempt part: an earlier `topo_aware:` part (always
    /// the last) is replaced, anything Slurm or an administrator wrote before it is kept; the
    /// whole is cut to `limit` bytes at a character boundary.
    public static func systemComment(replacing existing: String?, with text: String, limit: Int = 1000) -> String {
        var kept = existing ?? ""
        let bytes = Array(kept.utf8), tag = Array(provenanceTag.utf8)
        if bytes.count >= tag.count, let at = (0...(bytes.count - tag.count)).first(where: { bytes[$0..<($0 + tag.count)].elementsEqual(tag) }) {
            kept = String(decoding: bytes[..<at], as: UTF8.self)
        }
        while kept.hasSuffix(" ") || kept.hasSuffix(";") { kept.removeLast() }
        var whole = kept.isEmpty ? text : "\(kept); \(text)"
        while whole.utf8.count > limit { whole.removeLast() }
        return whole
    }
}
