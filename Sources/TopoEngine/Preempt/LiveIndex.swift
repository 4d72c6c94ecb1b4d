/// One running job of preempt/topo_aware's job index, as the planner keeps it between decisions.
public struct LiveSlot: Sendable, Equatable {
    public var id: UInt32
    public var startTime: Int64
    /// Slurm already signalled it for preemption: its GPUs are being freed.
    public var draining: Bool
    /// Per node of the controller's node table: the GPUs it holds there.
    public var allocations: [ControllerSnapshot.Job.Allocation]

    public init(id: UInt32, startTime: Int64, draining: Bool, allocations: [ControllerSnapshot.Job.Allocation]) {
        self.id = id
        self.startTime = startTime
        self.draining = draining
        self.allocations = allocations
    }
}

/// What changed in the C plugin's job index and node table since the last decision it asked the
/// planner for: the planner keeps both between decisions (`LiveIndex`) and applies only this.
/// Slots are the index's positions (a job keeps its slot until it leaves; the last job then takes
/// the freed slot); nodes are positions in slurmctld's node table.
public struct LiveUpdate: Sendable {
    /// The C index's identity: a new one after every rebuild of it (everything is then given).
    public var epoch: UInt64
    /// Updates given in this epoch so far, this one included: one missed means a resync.
    public var sequence: UInt64
    /// Every node and slot is given (the first update, after a rebuild, or on request).
    public var everything: Bool
    public var nodeCount: Int
    public var slotCount: Int
    /// Nodes whose state may have changed (all of them when `everything`).
    public var nodes: [(index: Int, node: ControllerSnapshot.Node)]
    /// Slots whose job may have changed, with the job there now (nil: empty, or no GPUs).
    /// Positions at or beyond `slotCount` are left out.
    public var slots: [(slot: Int, job: LiveSlot?)]

    public init(epoch: UInt64, sequence: UInt64, everything: Bool, nodeCount: Int, slotCount: Int,
                nodes: [(index: Int, node: ControllerSnapshot.Node)], slots: [(slot: Int, job: LiveSlot?)]) {
        self.epoch = epoch
        self.sequence = sequence
        self.everything = everything
        self.nodeCount = nodeCount
        self.slotCount = slotCount
        self.nodes = nodes
        self.slots = slots
    }
}

/// The planner's state kept between decisions inside slurmctld: the controller's nodes and the
/// running jobs by slot, and the planning index derived from them (planning nodes: the nodes of
/// known topology; planning jobs: one per slot, empty slots and jobs without planned GPUs held
/// as placeholders that are never candidates). An update touches only the planning nodes it
/// changed, each derived again from its own jobs with the same checks as a whole snapshot
/// (`PreemptController.build`); a change of which nodes are planned derives everything again
/// from what is kept. Per decision only the per-job priorities, eligibility and work are set
/// (`prepare`), one flat pass.
struct LiveIndex {
    enum Failure: Error, Equatable {
        /// The update does not follow the state kept: everything must be given.
        case resync
        /// The jobs' GPUs contradict each other or the nodes'.
        case inconsistent(String)
    }

    private(set) var epoch: UInt64
    private(set) var sequence: UInt64
    private(set) var topologyGeneration: UInt64
    private(set) var nodes: [ControllerSnapshot.Node]
    private(set) var slots: [LiveSlot?]
    private var slotOfJob: [UInt32: Int]
    private(set) var built: PreemptController.Built
    /// Per planning node: the slots holding GPUs there (signalled jobs included), ascending.
    private var slotsOnNode: [[Int]]
    /// Planning nodes whose state disagrees with gres.conf were left out: controller indices.
    private(set) var mismatched: [Int]
    var index: PlanningIndex
    /// The planner's arrays over all nodes and jobs, and the candidate-node mask, kept from
    /// decision to decision.
    var scratch = PlannerScratch()
    var maskBuffer: [Bool] = []

    /// Everything derived from nodes and slots.
    init(epoch: UInt64, sequence: UInt64, nodes: [ControllerSnapshot.Node], slots: [LiveSlot?],
         topology: ControllerTopology, time: Int64, slurm: SlurmRelease) throws(Failure) {
        self.epoch = epoch
        self.sequence = sequence
        self.topologyGeneration = topology.generation
        self.nodes = nodes
        self.slots = slots
        let planned = PreemptController.planningNodes(nodes, topology: topology)
        if let duplicate = planned.duplicate { throw .inconsistent("node \(duplicate) listed twice") }
        built = planned.built
        mismatched = planned.mismatched
        slotOfJob = [:]
        slotOfJob.reserveCapacity(slots.count)
        slotsOnNode = Array(repeating: [], count: planned.nodes.count)
        var jobs = [ClusterSnapshot.RunningJob]()
        jobs.reserveCapacity(slots.count)
        for (s, slot) in slots.enumerated() {
            guard let slot else {
                jobs.append(Self.placeholder(0))
                continue
            }
            if let other = slotOfJob.updateValue(s, forKey: slot.id), other != s { throw .inconsistent("job \(slot.id) listed twice") }
            try Self.check(slot, nodeCount: nodes.count)
            for allocation in slot.allocations where !allocation.gpus.isEmpty {
                if let n = built.clusterNodeOf[allocation.node] { slotsOnNode[n].append(s) }
            }
            jobs.append(Self.runningJob(slot, clusterNodeOf: built.clusterNodeOf) ?? Self.placeholder(slot.id))
        }
        let snapshot = ClusterSnapshot(layouts: topology.layouts, nodes: planned.nodes, jobs: jobs, time: max(time, 0), slurm: slurm,
                                       blockLevels: topology.blockLevels)
        do { index = try PlanningIndex(snapshot) } catch { throw .inconsistent(error.description) }
        for n in planned.nodes.indices { try derive(n) }
    }

    /// Applies an update that follows the state kept (else `.resync`).
    mutating func apply(_ update: LiveUpdate, topology: ControllerTopology, time: Int64, slurm: SlurmRelease) throws(Failure) {
        guard update.epoch == epoch, update.sequence == sequence &+ 1, update.nodeCount == nodes.count else { throw .resync }
        sequence = update.sequence
        var rederive = topology.generation != topologyGeneration || slurm != index.snapshot.slurm
        var touched = Set<Int>()
        for (i, node) in update.nodes {
            guard nodes.indices.contains(i) else { throw .inconsistent("node index \(i) of \(nodes.count)") }
            let old = nodes[i]
            nodes[i] = node
            if old.name != node.name || old.gpuCount != node.gpuCount
                || PreemptController.planned(old, topology) != PreemptController.planned(node, topology) {
                rederive = true
            } else if let n = built.clusterNodeOf[i] {
                touched.insert(n)
            }
        }
        // Unlink every changed slot first (a job may move to a slot freed in the same update).
        let count = update.slotCount
        guard count >= 0 else { throw .inconsistent("slot count \(count)") }
        for s in count..<max(count, slots.count) { unlink(s, &touched) }
        // A slot listed twice: its last entry counts.
        var last: [Int: Int] = [:]
        for (position, entry) in update.slots.enumerated() where entry.slot >= 0 && entry.slot < count { last[entry.slot] = position }
        let changed = last.values.sorted().map { update.slots[$0] }
        for (s, _) in changed where s < slots.count { unlink(s, &touched) }
        if count < slots.count {
            slots.removeLast(slots.count - count)
            index.truncateJobs(to: count)
        } else if count > slots.count {
            index.appendPlaceholders(count - slots.count)
            slots.append(contentsOf: repeatElement(nil, count: count - slots.count))
        }
        for (s, job) in changed {
            guard let job else { continue }
            try Self.check(job, nodeCount: nodes.count)
            if let other = slotOfJob[job.id], other != s { throw .inconsistent("job \(job.id) listed twice") }
            slots[s] = job
            slotOfJob[job.id] = s
            guard !rederive else { continue }
            for allocation in job.allocations where !allocation.gpus.isEmpty {
                guard let n = built.clusterNodeOf[allocation.node] else { continue }
                let at = slotsOnNode[n].firstIndex { $0 > s } ?? slotsOnNode[n].count
                slotsOnNode[n].insert(s, at: at)
                touched.insert(n)
            }
            index.setJob(s, Self.runningJob(job, clusterNodeOf: built.clusterNodeOf) ?? Self.placeholder(job.id))
        }
        if rederive {
            self = try LiveIndex(epoch: epoch, sequence: sequence, nodes: nodes, slots: slots, topology: topology,
                                 time: time, slurm: slurm)
            return
        }
        for n in touched { try derive(n) }
    }

    /// The jobs in this decision's terms: `fill` writes each slot's base priority and whether
    /// the base policy lets this preemptor preempt it (arrays of one entry per slot); work is
    /// that at `time`.
    mutating func prepare(time: Int64, fill: (_ basePriorities: inout [Int], _ eligible: inout [Bool]) -> Void) {
        index.snapshot.time = max(time, 0)
        // Taken out while filled, so that they are written in place.
        var priorities = basePriorities, flags = eligible
        basePriorities = []
        eligible = []
        if priorities.count != slots.count { priorities = Array(repeating: 0, count: slots.count) }
        if flags.count != slots.count { flags = Array(repeating: false, count: slots.count) }
        fill(&priorities, &flags)
        if priorities.count != slots.count { priorities = Array(repeating: 0, count: slots.count) }
        if flags.count != slots.count { flags = Array(repeating: false, count: slots.count) }
        for s in 0..<min(priorities.count, index.jobFacts.count) { index.jobFacts[s].priority = priorities[s] }
        basePriorities = priorities
        eligible = flags
        index.setEligibility(flags)
    }

    /// Slots by job id.
    var jobSlots: [UInt32: Int] { slotOfJob }
    var eligibleFlags: [Bool] { eligible }
    /// Per slot: this decision's base priority (`prepare`; also in the index's job facts).
    private(set) var basePriorities: [Int] = []

    /// The jobs as the controller's snapshot lists them, with this decision's priorities and
    /// eligibility (for the rare answers that need them all: jobs on nodes left out of planning).
    static func controllerJobs(_ slots: [LiveSlot?], priorities: [Int], eligible: [Bool]) -> [ControllerSnapshot.Job] {
        slots.indices.compactMap { s in
            slots[s].map { slot in
                ControllerSnapshot.Job(id: slot.id, basePriority: priorities.indices.contains(s) ? priorities[s] : 0,
                                       eligible: eligible.indices.contains(s) && eligible[s],
                                       startTime: slot.startTime, allocations: slot.allocations, draining: slot.draining)
            }
        }
    }

    /// Per slot: the base policy's eligibility for the preemptor of this decision (`prepare`).
    private var eligible: [Bool] = []

    // MARK: - Deriving

    /// A planning node again from its own jobs: free and other-allocated GPUs, candidate jobs,
    /// GPUs being drained; the checks of a whole snapshot.
    private mutating func derive(_ n: Int) throws(Failure) {
        let c = built.controllerNodeOf[n]
        let node = nodes[c]
        var held = GPUSet(), draining = GPUSet()
        var candidates: [(job: Int, gpus: GPUSet)] = []
        for s in slotsOnNode[n] {
            guard let slot = slots[s], let gpus = slot.allocations.first(where: { $0.node == c })?.gpus else { continue }
            guard gpus.isSubset(of: node.allocated) else {
                throw .inconsistent("job \(slot.id) holds GPUs \(gpus) of \(node.name), which Slurm has not allocated (\(node.allocated))")
            }
            guard held.intersection(gpus).isEmpty else {
                throw .inconsistent("GPUs \(held.intersection(gpus)) of \(node.name) are held by job \(slot.id) and another job")
            }
            held = held.union(gpus)
            if slot.draining {
                draining = draining.union(gpus)
            } else {
                candidates.append((s, gpus))
            }
        }
        let other = node.allocated.subtracting(held)
        index.setNode(n, available: node.available, otherAllocated: other, jobs: candidates)
        built.draining[n] = draining
    }

    private mutating func unlink(_ s: Int, _ touched: inout Set<Int>) {
        guard slots.indices.contains(s), let old = slots[s] else { return }
        if slotOfJob[old.id] == s { slotOfJob[old.id] = nil }
        for allocation in old.allocations where !allocation.gpus.isEmpty {
            guard let n = built.clusterNodeOf[allocation.node] else { continue }
            if let at = slotsOnNode[n].firstIndex(of: s) { slotsOnNode[n].remove(at: at) }
            touched.insert(n)
        }
        slots[s] = nil
        index.setJob(s, Self.placeholder(0))
    }

    private static func check(_ slot: LiveSlot, nodeCount: Int) throws(Failure) {
        var seen = Set<Int>()
        for allocation in slot.allocations {
            guard allocation.node >= 0, allocation.node < nodeCount else {
                throw .inconsistent("job \(slot.id) on node index \(allocation.node) of \(nodeCount)")
            }
            guard seen.insert(allocation.node).inserted else { throw .inconsistent("job \(slot.id) lists node index \(allocation.node) twice") }
        }
    }

    /// The planning job of a slot: its GPUs on planned nodes; nil when it has none there or is
    /// being drained (its GPUs then count as free).
    private static func runningJob(_ slot: LiveSlot, clusterNodeOf: [Int?]) -> ClusterSnapshot.RunningJob? {
        guard !slot.draining else { return nil }
        var allocations: [ClusterSnapshot.RunningJob.Allocation] = []
        for allocation in slot.allocations where !allocation.gpus.isEmpty {
            if let n = clusterNodeOf[allocation.node] { allocations.append(.init(node: n, gpus: allocation.gpus)) }
        }
        guard !allocations.isEmpty else { return nil }
        return ClusterSnapshot.RunningJob(id: slot.id, priority: 0, startTime: max(slot.startTime, 0), preemptible: false,
                                          allocations: allocations)
    }

    private static func placeholder(_ id: UInt32) -> ClusterSnapshot.RunningJob {
        ClusterSnapshot.RunningJob(id: id, priority: 0, startTime: 0, preemptible: false, allocations: [])
    }
}

extension PlanningIndex {
    /// Replaces job `j` (a live index's slot); its nodes are derived again by the caller.
    mutating func setJob(_ j: Int, _ job: ClusterSnapshot.RunningJob) {
        snapshot.jobs[j] = job
        jobFacts[j] = JobFacts(priority: 0, start: job.startTime, gpus: job.gpuCount, id: job.id, preemptible: false)
    }

    mutating func truncateJobs(to count: Int) {
        let drop = snapshot.jobs.count - count
        guard drop > 0 else { return }
        snapshot.jobs.removeLast(drop)
        jobFacts.removeLast(drop)
    }

    mutating func appendPlaceholders(_ count: Int) {
        let empty = ClusterSnapshot.RunningJob(id: 0, priority: 0, startTime: 0, preemptible: false, allocations: [])
        snapshot.jobs.append(contentsOf: repeatElement(empty, count: count))
        jobFacts.append(contentsOf: repeatElement(JobFacts(priority: 0, start: 0, gpus: 0, id: 0, preemptible: false), count: count))
    }

    /// A node's state from its jobs: what `init` derives for it.
    mutating func setNode(_ n: Int, available: Bool, otherAllocated: GPUSet, jobs: [(job: Int, gpus: GPUSet)]) {
        setAvailable(n, available)
        snapshot.nodes[n].otherAllocated = otherAllocated
        var allocated = otherAllocated
        for entry in jobs { allocated = allocated.union(entry.gpus) }
        free[n] = GPUSet.first(topologies[snapshot.nodes[n].layout].gpuCount).subtracting(allocated)
        jobsOnNode[n] = jobs
    }

    /// Per job: preemptible when eligible and planned (its work follows the snapshot's time:
    /// `work(of:)`).
    mutating func setEligibility(_ eligible: [Bool]) {
        for j in 0..<min(eligible.count, jobFacts.count) {
            jobFacts[j].preemptible = eligible[j] && jobFacts[j].gpus > 0
        }
    }
}
