/// How fragmented the cluster's GPUs are: per node type, level and group size, how many disjoint
/// aligned groups are free now, and how many could be freed by preemption (the exporter's
/// `topo_preempt_free_aligned_groups` and `topo_preempt_freeable_aligned_groups`).
///
/// A group of `size` GPUs is aligned at `level` when it lies inside one affinity group of that
/// level on one node. Groups are counted disjoint, greedily per affinity group (largest first);
/// where the level's groups partition the node's GPUs (NVLink islands, PCIe switches, sockets) the
/// count is exact, where they overlap (NVLink cliques of a hybrid cube mesh) it is a lower bound.
/// Only available nodes count. "Freeable" GPUs are free ones plus those of running jobs that a
/// preemptor class of topo_aware.conf may preempt under the base policy (as the plugin's C side
/// judges them: preemptable, a PreemptMode that frees GPUs, past PreemptExemptTime, not already
/// signalled); draining victims' GPUs are neither.
public struct Fragmentation: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var nodeType: String
        public var level: AffinityLevel
        public var size: Int
        public var free: Int
        public var freeable: Int

        public init(nodeType: String, level: AffinityLevel, size: Int, free: Int, freeable: Int) {
            self.nodeType = nodeType
            self.level = level
            self.size = size
            self.free = free
            self.freeable = freeable
        }
    }

    public struct NodeType: Sendable, Equatable {
        public var name: String
        /// Nodes of the type, and those of them that are available.
        public var nodes: Int
        public var available: Int
        public var gpus: Int
        public var freeGPUs: Int
        public var freeableGPUs: Int
    }

    public var nodeTypes: [NodeType]
    /// Ordered by node type, level, size.
    public var rows: [Row]

    /// Group sizes reported for a node of `gpus` GPUs: powers of two up to it, and the count itself.
    public static func sizes(gpus: Int) -> [Int] {
        guard gpus > 0 else { return [] }
        var sizes: [Int] = []
        var size = 1
        while size <= gpus {
            sizes.append(size)
            size *= 2
        }
        if sizes.last != gpus { sizes.append(gpus) }
        return sizes
    }

    /// A stable, readable name of a node layout: its GPU count and the sizes of its groups at each
    /// level that splits the node and differs from the level before, e.g. `8gpu:nvlink=4x2` (islands
    /// that are also the sockets) or `8gpu:nvlink=2x4,socket=4x2`.
    public static func typeName(_ table: AffinityTable) -> String {
        let all = table.topology.allGPUs
        var parts: [String] = []
        var previous: Set<GPUSet> = []
        for level in AffinityLevel.allCases where level != .node {
            // A level whose groups are the tighter level's (a PCIe switch per NVLink island) adds nothing.
            let groups = Set(table.groups(at: level).map(\.gpus))
            defer { previous = groups }
            let sizes = groups.map(\.count).sorted(by: >)
            guard !sizes.isEmpty, sizes != [all.count], groups != previous else { continue }
            if Set(sizes).count == 1, let size = sizes.first {
                parts.append("\(level.name)=\(size)x\(sizes.count)")
            } else {
                parts.append("\(level.name)=" + sizes.map(String.init).joined(separator: "+"))
            }
        }
        return "\(all.count)gpu" + (parts.isEmpty ? "" : ":" + parts.joined(separator: ","))
    }

    /// Disjoint groups of `size` inside `available`, aligned at `level`, counted greedily.
    public static func alignedGroups(in available: GPUSet, size: Int, level: AffinityLevel, table: AffinityTable) -> Int {
        guard size > 0 else { return 0 }
        if size == 1 { return available.count }
        var left = available
        var count = 0
        let groups = table.groups(at: level).sorted { $0.gpus.count > $1.gpus.count }
        for group in groups {
            let inside = left.intersection(group.gpus)
            let n = inside.count / size
            guard n > 0 else { continue }
            count += n
            // Take the lowest-numbered GPUs of the group (any n*size of them will do).
            for gpu in inside.indices.prefix(n * size) { left.remove(gpu) }
        }
        return count
    }

    /// The cluster's fragmentation from libslurm's view and the topology of slurm.conf/gres.conf.
    public init(_ state: LiveState, topology: ClusterTopology, config: TopoAwareConfig?) {
        let freeable = Self.freeableGPUs(state, config: config)
        let nodeIndex = Dictionary(state.nodes.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        var types: [String: NodeType] = [:]
        var counts: [String: [Int: [Int: (free: Int, freeable: Int)]]] = [:]
        for node in topology.nodes {
            let name = Self.typeName(node.table)
            let all = node.table.topology.allGPUs
            var type = types[name] ?? NodeType(name: name, nodes: 0, available: 0, gpus: all.count, freeGPUs: 0, freeableGPUs: 0)
            type.nodes += 1
            var free = GPUSet()
            var canFree = GPUSet()
            if let index = nodeIndex[node.name], state.nodes[index].available {
                let live = state.nodes[index]
                type.available += 1
                // Slurm's GPU count bounds the GPUs it schedules (gres.conf may describe more).
                let counted = GPUSet(all.indices.filter { $0 < live.gpuCount })
                free = counted.subtracting(live.allocated)
                canFree = free.union(freeable[index] ?? GPUSet()).intersection(counted)
            }
            type.freeGPUs += free.count
            type.freeableGPUs += canFree.count
            types[name] = type
            for level in AffinityLevel.allCases {
                for size in Self.sizes(gpus: all.count) {
                    var cell = counts[name]?[level.rawValue]?[size] ?? (0, 0)
                    cell.free += Self.alignedGroups(in: free, size: size, level: level, table: node.table)
                    cell.freeable += Self.alignedGroups(in: canFree, size: size, level: level, table: node.table)
                    counts[name, default: [:]][level.rawValue, default: [:]][size] = cell
                }
            }
        }
        nodeTypes = types.values.sorted { $0.name < $1.name }
        var rows: [Row] = []
        for type in nodeTypes {
            for level in AffinityLevel.allCases {
                for size in Self.sizes(gpus: type.gpus) {
                    let cell = counts[type.name]?[level.rawValue]?[size] ?? (0, 0)
                    rows.append(Row(nodeType: type.name, level: level, size: size, free: cell.free, freeable: cell.freeable))
                }
            }
        }
        self.rows = rows
    }

    /// Per node index, the GPUs of running jobs some preemptor class may preempt now.
    static func freeableGPUs(_ state: LiveState, config: TopoAwareConfig?) -> [Int: GPUSet] {
        let preemptors = hypotheticalPreemptors(state, config: config)
        guard !preemptors.isEmpty else { return [:] }
        let policy = config?.basePolicy ?? .partitionPriority
        let models = preemptors.map { LiveBasePolicy(state: state, policy: policy, preemptor: $0) }
        var result: [Int: GPUSet] = [:]
        for job in state.jobs where job.state == .running && !job.preempted {
            if state.exemptSeconds > 0, job.startTime > 0, state.time - job.startTime < state.exemptSeconds { continue }
            guard models.contains(where: { $0.preemptable(job) && $0.mode(of: job).freesGPUs }) else { continue }
            for (position, node) in job.nodeIndices.enumerated() where state.nodes.indices.contains(node) {
                if let gpus = job.gpus(atPosition: position), !gpus.isEmpty { result[node] = (result[node] ?? GPUSet()).union(gpus) }
            }
        }
        return result
    }

    /// A pending job of the highest priority for each preemptor class's partitions and QOS (a
    /// class that names none stands for every partition, or every QOS); without classes, one in
    /// the partition of the highest PriorityTier.
    static func hypotheticalPreemptors(_ state: LiveState, config: TopoAwareConfig?) -> [LiveState.Job] {
        func job(partition: String?, qos: String?) -> LiveState.Job {
            LiveState.Job(id: 0, state: .pending, partition: partition, qos: qos, priority: Int.max, startTime: 0)
        }
        let rules = (config?.classes ?? []).filter { if case .preemptor = $0.kind { true } else { false } }
        guard !rules.isEmpty else {
            guard config?.basePolicy ?? .partitionPriority == .partitionPriority,
                  let top = state.partitions.max(by: { $0.priorityTier < $1.priorityTier }) else { return [] }
            return [job(partition: top.name, qos: nil)]
        }
        // Only the partition counts under partition_prio, only the QOS under qos.
        var seen = Set<String>()
        var jobs: [LiveState.Job] = []
        for rule in rules {
            switch config?.basePolicy ?? .partitionPriority {
            case .partitionPriority:
                for name in rule.partitions.map({ $0.sorted() }) ?? state.partitions.map(\.name) where seen.insert(name).inserted {
                    jobs.append(job(partition: name, qos: nil))
                }
            case .qos:
                for name in rule.qos.map({ $0.sorted() }) ?? state.qos.map(\.name) where seen.insert(name).inserted {
                    jobs.append(job(partition: nil, qos: name))
                }
            }
        }
        return jobs
    }
}
