/// The exhaustive optimum, for checking the planner on small clusters (`topo-preempt simulate
/// --policies oracle`): every subset of each node's eligible jobs, Slurm's pick model on the GPUs
/// they leave free, the cheapest set whose picks are all aligned at the required level (or, in
/// best-effort mode, the tightest level reached, then the cost), with the CPUs and memory the
/// snapshot gives checked as the planner checks them. Exponential: nodes with more
/// than `maxJobsPerNode` eligible jobs are skipped.
public enum ExhaustivePlanner {
    public static let maxJobsPerNode = 14

    public struct Choice: Sendable, Equatable {
        public var node: Int
        public var victims: [UInt32]
        public var gpus: GPUSet
        public var level: AffinityLevel
        public var cost: PlanCost
    }

    public static func plan(_ request: PreemptorRequest, in index: PlanningIndex, policy: PlannerPolicy) -> Choice? {
        // rough-work, as the planner selects: the least work, then the rest within the tolerance of it.
        if let passes = policy.nearWorkPasses() {
            guard let least = plan(request, in: index, policy: passes.exact) else { return nil }
            return plan(request, in: index, policy: passes.near(least.cost.gpuSeconds)) ?? least
        }
        let snapshot = index.snapshot
        let eligible = Planner.eligibility(request, index: index, policy: policy)
        var best: Choice?
        let k = request.gpusPerNode
        for node in snapshot.nodes.indices where snapshot.nodes[node].available {
            if let candidates = request.candidateNodes, !candidates.contains(snapshot.nodes[node].name) { continue }
            let jobs = index.jobsOnNode[node].filter { eligible[$0.job] }
            guard jobs.count <= maxJobsPerNode else { continue }
            let context = index.pickContexts[snapshot.nodes[node].layout]
            let free = index.free[node]
            for mask in 0..<(1 << jobs.count) {
                var freed = GPUSet()
                var chosen: [Int] = []
                var cpus = 0
                var memory: Int64 = 0
                for (i, entry) in jobs.enumerated() where mask & (1 << i) != 0 {
                    freed = freed.union(entry.gpus)
                    chosen.append(i)
                    let held = index.resources(ofJob: entry.job, onNode: node)
                    cpus += held.cpus
                    memory += held.memory
                }
                guard free.count + freed.count >= k,
                      index.resourcesFit(request, node: node, freedCPUs: cpus, freedMemory: memory) else { continue }
                if policy.requireEveryVictim {
                    let needed = chosen.allSatisfy { i in
                        let held = index.resources(ofJob: jobs[i].job, onNode: node)
                        return !Planner.fitsByCount(free.union(freed.subtracting(jobs[i].gpus)), k: k, shape: request.shape,
                                                    topology: context.topology)
                            || !index.resourcesFit(request, node: node, freedCPUs: cpus - held.cpus, freedMemory: memory - held.memory)
                    }
                    if !needed { continue }
                }
                guard let (level, picks) = SlurmGPUPick.worstAlignment(context, free: free.union(freed), count: k,
                                                                       shape: request.shape, cpus: request.cpusPerNode),
                      let pick = picks.first
                else { continue }
                if request.mode == .guaranteed && level > request.level { continue }
                let victims = chosen.map { jobs[$0].job }
                let cost = PlanCost(maxPriority: victims.map { index.jobFacts[$0].priority }.max(), victims: victims.count,
                                    gpuSeconds: victims.reduce(0) { $0 &+ index.work(of: $1) },
                                    collateral: max(0, victims.reduce(0) { $0 + index.jobFacts[$1].gpus } - max(0, k - free.count)),
                                    victimIDs: victims.map { index.jobFacts[$0].id }.sorted())
                if let ceiling = policy.workCeiling, cost.gpuSeconds > ceiling { continue }
                let choice = Choice(node: node, victims: cost.victimIDs, gpus: pick, level: level, cost: cost)
                guard let current = best else { best = choice; continue }
                let rank = max(level, request.level), currentRank = max(current.level, request.level)
                if rank != currentRank {
                    if rank < currentRank { best = choice }
                    continue
                }
                let c = cost.compare(current.cost, order: policy.order)
                if c < 0 || (c == 0 && snapshot.nodes[node].name < snapshot.nodes[current.node].name) { best = choice }
            }
        }
        return best
    }
}
