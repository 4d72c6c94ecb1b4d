/// What stock Slurm 22.05 does for the same preemptor, as a baseline: the preemptable jobs
/// sorted by preemption priority (lowest first), then in job-list order (oldest first, as
/// measured on the local cluster, ../shared/slurm-lab), removed one by one from a
/// simulated usage map until the job fits on a node, reordered and retried as `_run_now` in
/// cons_common/job_test.c does; the victims are the removed jobs on the node it then uses, and
/// the GPUs it gets are Slurm's pick (`SlurmGPUPick`) with its cores on the first socket. Slurm
/// sorts with qsort (not stable): where it reorders jobs of equal rank, this model keeps them in
/// order, so ties may come out differently on a real controller.
public enum StockPreemption {
    public struct Outcome: Sendable, Equatable {
        public var node: String
        public var victims: [UInt32]
        public var gpus: GPUSet
        public var level: AffinityLevel
    }

    /// SchedulerParameters `preempt_reorder_count` (Slurm's default: 1).
    public static func simulate(_ request: PreemptorRequest, in index: PlanningIndex,
                                policy: PlannerPolicy = PlannerPolicy(), reorderCount: Int = 1) -> Outcome? {
        let snapshot = index.snapshot
        let k = request.gpusPerNode
        var free = index.free
        func usable(_ node: Int) -> Bool {
            let state = snapshot.nodes[node]
            return state.available && (request.candidateNodes?.contains(state.name) ?? true)
        }
        let socketsOfLayout = index.pickContexts.map { SlurmGPUPick.sockets($0.topology) }
        func fits(_ node: Int) -> GPUSet? {
            guard free[node].count >= k else { return nil }
            let layout = index.layoutOfNode[node]
            let sockets = socketsOfLayout[layout]
            switch request.shape {
            case .perNode:
                return SlurmGPUPick.pickPerNode(index.pickContexts[layout], free: free[node], count: k,
                                                usedSockets: Set(sockets.prefix(1)))
            case .perSocket:
                for socket in sockets {
                    if let pick = SlurmGPUPick.pickPerSocket(index.pickContexts[layout], free: free[node], count: k,
                                                             socket: socket) { return pick }
                }
                return nil
            }
        }
        func outcome(_ node: Int, _ pick: GPUSet, _ victims: [UInt32]) -> Outcome {
            Outcome(node: snapshot.nodes[node].name, victims: victims.sorted(), gpus: pick,
                    level: index.topology(ofNode: node).alignment(of: pick))
        }
        for node in snapshot.nodes.indices where usable(node) {
            if let pick = fits(node) { return outcome(node, pick, []) }
        }
        let eligible = Planner.eligibility(request, index: index, policy: policy)
        let candidates = snapshot.jobs.indices.filter { eligible[$0] }.sorted { a, b in
            let ja = snapshot.jobs[a], jb = snapshot.jobs[b]
            if ja.priority != jb.priority { return ja.priority < jb.priority }
            if ja.startTime != jb.startTime { return ja.startTime < jb.startTime }
            return ja.id < jb.id
        }
        // _run_now: remove candidates in order until the job fits; then (preempt_reorder_count
        // times) move the last removed job to the front, the earlier removed ones on the chosen
        // node next, and try again; the victims are the removed jobs on the node it fits.
        var order = candidates
        var passCount = 0
        while true {
            var trial = index.free
            var fitted: (position: Int, node: Int, pick: GPUSet)?
            for (position, j) in order.enumerated() {
                var touched: [Int] = []
                for allocation in snapshot.jobs[j].allocations {
                    trial[allocation.node] = trial[allocation.node].union(allocation.gpus)
                    touched.append(allocation.node)
                }
                free = trial
                for node in touched.sorted() where usable(node) {
                    if let pick = fits(node) {
                        fitted = (position, node, pick)
                        break
                    }
                }
                if fitted != nil { break }
            }
            guard let (position, node, pick) = fitted else { return nil }
            let old = passCount
            passCount += 1
            if old > reorderCount || order.count <= passCount {
                let victims = order[...position].filter { r in snapshot.jobs[r].allocations.contains { $0.node == node } }
                return outcome(node, pick, victims.map { snapshot.jobs[$0].id })
            }
            let last = order[position]
            let onNode = { (r: Int) in snapshot.jobs[r].allocations.contains { $0.node == node } }
            let before = order[..<position]
            order = [last] + before.filter(onNode) + before.filter { !onNode($0) } + order[(position + 1)...]
        }
    }
}
