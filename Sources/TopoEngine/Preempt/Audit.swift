/// One running preemptor and how aligned its GPUs are.
public struct AuditEntry: Sendable, Equatable {
    public var jobID: UInt32
    public var name: String?
    public var className: String
    public var required: AffinityLevel
    public var mode: PlacementMode
    /// Node name and GPUs, per node.
    public var gpus: [(node: String, gpus: GPUSet)]
    public var reached: AffinityLevel
    public var aligned: Bool
    /// When it started, and the seconds from its submission to its start (nil when not known).
    public var startTime: Int64 = 0
    public var waitSeconds: Int64?

    public static func == (a: AuditEntry, b: AuditEntry) -> Bool {
        a.jobID == b.jobID && a.className == b.className && a.required == b.required && a.mode == b.mode
            && a.reached == b.reached && a.gpus.map(\.node) == b.gpus.map(\.node) && a.gpus.map(\.gpus) == b.gpus.map(\.gpus)
    }
}

public enum Audit {
    /// Running jobs preempt/topo_aware treats as preemptors (`PreemptController.preemptorClass`:
    /// the AdminComment tag, else the class lines of topo_aware.conf), with the alignment level
    /// of the GPUs they hold (the worst over their nodes).
    public static func preemptors(_ state: LiveState, topology: ClusterTopology, config: TopoAwareConfig?) -> [AuditEntry] {
        let tables = Dictionary(topology.nodes.map { ($0.name, $0.table) }, uniquingKeysWith: { first, _ in first })
        var entries: [AuditEntry] = []
        for job in state.jobs where job.state == .running {
            let preemptor = ControllerSnapshot.Preemptor(id: job.id, basePriority: 0, gpusPerNode: 0, adminComment: job.adminComment,
                                                         partitions: SubmittedJob.partitionList(job.partition), qos: job.qos)
            guard let (level, mode) = PreemptController.preemptorClass(preemptor, config: config) else { continue }
            let (held, worst) = Self.held(by: job, in: state, tables: tables)
            let reached = worst ?? .nvlink
            var entry = AuditEntry(jobID: job.id, name: job.name, className: Self.className(of: job, config: config),
                                   required: level, mode: mode, gpus: held, reached: reached, aligned: reached <= level)
            entry.startTime = job.startTime
            if let submitted = job.submitTime, job.startTime >= submitted { entry.waitSeconds = job.startTime - submitted }
            entries.append(entry)
        }
        return entries
    }

    /// The GPUs `job` holds, per node (nodes where it holds none left out), and their alignment:
    /// the worst over its nodes, `node` on a node of unknown topology; nil when it holds none.
    public static func held(by job: LiveState.Job, in state: LiveState,
                            tables: [String: AffinityTable]) -> (gpus: [(node: String, gpus: GPUSet)], reached: AffinityLevel?) {
        var held: [(node: String, gpus: GPUSet)] = []
        var reached: AffinityLevel?
        for (position, node) in job.nodeIndices.enumerated() where state.nodes.indices.contains(node) {
            let name = state.nodes[node].name
            guard let gpus = job.gpus(atPosition: position), !gpus.isEmpty else { continue }
            held.append((name, gpus))
            let level = tables[name].map { $0.alignment(of: gpus) } ?? .node
            reached = max(reached ?? level, level)
        }
        return (held, reached)
    }

    /// The class name: from the AdminComment tag, else the matching class line.
    static func className(of job: LiveState.Job, config: TopoAwareConfig?) -> String {
        if case let .preemptor(name, _, _, _)? = AdminCommentTag.parse(adminComment: job.adminComment) { return name }
        let submitted = SubmittedJob(partitions: SubmittedJob.partitionList(job.partition), qos: job.qos)
        return config?.rule(for: submitted)?.0.name ?? "?"
    }
}
