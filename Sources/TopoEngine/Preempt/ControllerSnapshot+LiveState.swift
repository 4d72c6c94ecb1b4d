/// The snapshot preempt/topo_aware would take inside slurmctld, built from what libslurm's
/// client API shows, so that `topo-preempt plan --job` and `audit` decide through the same
/// `PreemptController` as the plugin. Each field follows what the C side of the plugin copies
/// out of slurmctld (CSlurmShim/plugins/preempt_topo_aware/preempt_topo_aware.c: `_collect`,
/// `_base_prio`, `_base_mode`, `_base_preemptable`, `_decide`); the comments name the function.
extension ControllerSnapshot {
    /// The snapshot for pending job `id` under `basePolicy` (topo_aware.conf `BasePolicy=`).
    public init(live state: LiveState, preemptor id: UInt32, basePolicy: TopoAwareConfig.BasePolicy) throws(SnapshotError) {
        guard let pending = state.jobs.first(where: { $0.id == id }) else {
            throw SnapshotError("job \(id) is not in the cluster's job list")
        }
        let model = LiveBasePolicy(state: state, policy: basePolicy, preemptor: pending)
        // _collect: running jobs holding GPUs, each with its base priority, whether the base
        // policy lets this preemptor take it (and its mode frees GPUs), and whether Slurm has
        // already signalled it.
        var jobs: [Job] = []
        for job in state.jobs where job.state == .running && job.id != id {
            var allocations: [Job.Allocation] = []
            for (position, node) in job.nodeIndices.enumerated() where state.nodes.indices.contains(node) {
                if let gpus = job.gpus(atPosition: position), !gpus.isEmpty { allocations.append(.init(node: node, gpus: gpus)) }
            }
            guard !allocations.isEmpty else { continue }
            let eligible = model.preemptable(job) && !job.preempted && model.mode(of: job).freesGPUs
            jobs.append(Job(id: job.id, basePriority: model.basePriority(job), eligible: eligible, startTime: job.startTime,
                            allocations: allocations, draining: job.preempted))
        }
        // _gpus_per_node: per node, per socket (times the sockets asked for), or per job over its nodes.
        let request = GPURequest(tresPerNode: pending.tresPerNode, tresPerSocket: pending.tresPerSocket,
                                 tresPerJob: pending.tresPerJob, maxNodes: pending.numNodes,
                                 socketsPerNode: pending.socketsPerNode)
        let perSocket = ((try? GresString.gpuCount(inTRES: pending.tresPerSocket)) ?? 0) > 0
        let gpusPerNode = (try? request.gpusPerNode()).flatMap { $0 } ?? 0
        let nodeCount = max(1, pending.numNodes)
        // _decide: candidate nodes are the partition's, within -w, without -x.
        let partitions = SubmittedJob.partitionList(pending.partition)
        var candidates = Set(state.partitions.filter { partitions.contains($0.name) }.flatMap(\.nodeIndices))
        // Named nodes (-w) as many as the job's are its candidates; fewer, each is one of its nodes.
        let named = pending.requiredNodeIndices
        if !named.isEmpty, named.count >= nodeCount { candidates.formIntersection(named) }
        candidates.subtract(pending.excludedNodeIndices)
        let preemptor = Preemptor(id: id, basePriority: model.basePriority(pending), jobPriority: pending.priority,
                                  gpusPerNode: gpusPerNode <= GPUSet.capacity ? gpusPerNode : 0, nodeCount: nodeCount,
                                  perSocket: perSocket, cpusPerNode: pending.numCPUs / nodeCount,
                                  adminComment: pending.adminComment, partitions: partitions, qos: pending.qos,
                                  candidateNodes: candidates.sorted(),
                                  requiredNodes: named.count < nodeCount ? named.sorted() : [], segmentSize: pending.segmentSize,
                                  segmentPlacement: pending.segmentPlacement)
        // _decide: every node, with Slurm's GPU count and allocated GPUs.
        self.init(time: state.time, exemptSeconds: max(0, state.exemptSeconds), nodes: state.nodes, jobs: jobs, preemptor: preemptor,
                  slurm: state.slurm)
    }
}

/// Slurm's base preemption policy (preempt/partition_prio or preempt/qos) as the plugin's C side
/// applies it, over libslurm's values.
struct LiveBasePolicy {
    let state: LiveState
    let policy: TopoAwareConfig.BasePolicy
    let preemptor: LiveState.Job
    let partitions: [String: LiveState.Partition]
    let qos: [String: LiveState.QOS]

    init(state: LiveState, policy: TopoAwareConfig.BasePolicy, preemptor: LiveState.Job) {
        self.state = state
        self.policy = policy
        self.preemptor = preemptor
        partitions = Dictionary(state.partitions.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        qos = Dictionary(state.qos.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The partition a job is in: the first listed for a pending job with several, as slurmctld
    /// tries them in order (highest tier first when the job lists several tiers).
    func partition(of job: LiveState.Job) -> LiveState.Partition? {
        let listed = SubmittedJob.partitionList(job.partition).compactMap { partitions[$0] }
        return listed.max { $0.priorityTier < $1.priorityTier }
    }

    /// `_base_mode`: the QOS's mode (else the cluster's) without WITHIN, or the partition's
    /// (else the cluster's).
    func mode(of job: LiveState.Job) -> LiveState.PreemptMode {
        switch policy {
        case .qos:
            let mode = job.qos.flatMap { qos[$0]?.preemptMode } ?? state.preemptMode
            return LiveState.PreemptMode(mode.action)
        case .partitionPriority:
            return partition(of: job)?.preemptMode ?? state.preemptMode
        }
    }

    /// `_base_prio`: the PriorityTier (or QOS priority, at most 0xffff) above the node count.
    func basePriority(_ job: LiveState.Job) -> Int {
        let high: Int
        switch policy {
        case .qos: high = min(max(job.qos.flatMap { qos[$0]?.priority } ?? 0, 0), 0xffff)
        case .partitionPriority: high = min(max(partition(of: job)?.priorityTier ?? 0, 0), 0xffff)
        }
        return high << 16 | min(job.nodeIndices.count, 0xffff)
    }

    /// `_base_preemptable`: may the base policy preempt `job` for the preemptor?
    func preemptable(_ job: LiveState.Job) -> Bool {
        switch policy {
        case .qos:
            // _qos_preempts: Preempt= lists the other QOS; within one QOS only with WITHIN,
            // by job priority.
            guard let mine = preemptor.qos.flatMap({ qos[$0] }), let theirs = job.qos.flatMap({ qos[$0] }) else { return false }
            if mine.name == theirs.name {
                let within = (mine.preemptMode?.within ?? false) || state.preemptMode.within
                return within && preemptor.priority > job.priority
            }
            guard mine.preempts.contains(theirs.name) else { return false }
            // _priority_flag: PRIORITY on the preemptor's QOS or the cluster.
            let priorityFlag = (mine.preemptMode?.priority ?? false) || state.preemptMode.priority
            return !priorityFlag || preemptor.priority > job.priority
        case .partitionPriority:
            guard let mine = partition(of: preemptor), let theirs = partition(of: job) else { return false }
            // _priority_flag: PRIORITY on the preemptor's partition or the cluster.
            let priorityFlag = (mine.preemptMode?.priority ?? false) || state.preemptMode.priority
            if priorityFlag && preemptor.priority < job.priority { return false }
            if theirs.preemptMode?.action == .off { return false }
            return theirs.priorityTier < mine.priorityTier
        }
    }
}
