/// Lower bounds of the nodes' plans, kept from one plan to the next by a caller that names every
/// node whose jobs or GPUs change (`invalidate`) and whose index only moves forward in time (the
/// simulator's kept index). A bound computed earlier stays a lower bound later while the node is
/// unchanged (its jobs' work only grows, eligibility does not change without an exempt time), so
/// a single-node search visits nodes in the order of their kept bounds, brings each up to date
/// when it reaches it, and stops once a kept bound exceeds the cheapest plan found: it visits
/// exactly the nodes `Planner.search` visits, in the same order (bound, then name), and returns
/// the same plan, without bounding every node of the cluster per plan.
struct BoundCache: Sendable {
    /// What a node's bound depends on besides the node and the time.
    struct Key: Hashable {
        var level: AffinityLevel
        var k: Int
        var priority: Int
        var jobID: UInt32?
        var order: [CostCriterion]
    }

    /// A heap entry: the bound's values in the cost order, then the node's name rank.
    struct Entry: Comparable, Sendable {
        var keys: (Int64, Int64, Int64, Int64)
        var rank: Int32
        var node: Int32
        var stamp: UInt32

        static func < (a: Entry, b: Entry) -> Bool {
            (a.keys.0, a.keys.1, a.keys.2, a.keys.3, a.rank) < (b.keys.0, b.keys.1, b.keys.2, b.keys.3, b.rank)
        }

        static func == (a: Entry, b: Entry) -> Bool { !(a < b) && !(b < a) }
    }

    /// One request class's bounds.
    struct Kept: Sendable {
        var time = Int64.min
        /// Per node: its kept bound (nil: no plan possible), when it was computed, whether it
        /// must be computed again (changed), and the stamp of its current heap entry.
        var bound: [Planner.CostBound?]
        var boundTime: [Int64]
        var stale: [Bool]
        var staleList: [Int]
        var stamp: [UInt32]
        var heap = MinHeap<Entry>()

        init(nodes: Int) {
            bound = Array(repeating: nil, count: nodes)
            boundTime = Array(repeating: Int64.min, count: nodes)
            stale = Array(repeating: true, count: nodes)
            staleList = Array(0..<nodes)
            stamp = Array(repeating: 0, count: nodes)
        }

        mutating func invalidate(_ n: Int) {
            guard !stale[n] else { return }
            stale[n] = true
            staleList.append(n)
        }
    }

    /// The request classes' bounds, and where each class's are (an array, so that an
    /// invalidation updates each class in place).
    private(set) var classes: [Kept] = []
    private var classOfKey: [Key: Int] = [:]
    /// Per node: the position of its name in name order (the search's tiebreak).
    private var nameRank: [Int32] = []

    init() {}

    /// `n`'s jobs, GPUs or resources changed: its bound is computed again when next needed.
    mutating func invalidate(_ n: Int) {
        for c in classes.indices { classes[c].invalidate(n) }
    }

    static func keys(_ bound: Planner.CostBound, order: [CostCriterion]) -> (Int64, Int64, Int64, Int64) {
        var values: [Int64] = [0, 0, 0, 0]
        for (i, criterion) in order.prefix(4).enumerated() {
            switch criterion {
            case .priority: values[i] = bound.maxPriority.map { Int64($0) } ?? Int64.min
            case .victims: values[i] = Int64(bound.victims)
            case .work: values[i] = bound.gpuSeconds
            case .collateral: values[i] = Int64(bound.collateral)
            case .roughWork: values[i] = Int64(CostCriterion.roughStep(bound.gpuSeconds))
            }
        }
        return (values[0], values[1], values[2], values[3])
    }

    /// The single-node search of `Planner.search` over all nodes, from the kept bounds.
    mutating func search(level: AffinityLevel, request: PreemptorRequest, index: PlanningIndex, eligible: [Bool],
                         policy: PlannerPolicy) -> (plans: [NodePlan], searched: Int) {
        let nodes = index.snapshot.nodes.count
        let time = index.snapshot.time
        if nameRank.count != nodes {
            classes = []
            classOfKey = [:]
            nameRank = Array(repeating: 0, count: nodes)
            for (rank, n) in (0..<nodes).sorted(by: { index.snapshot.nodes[$0].name < index.snapshot.nodes[$1].name }).enumerated() {
                nameRank[n] = Int32(rank)
            }
        }
        let key = Key(level: level, k: request.gpusPerNode, priority: request.priority, jobID: request.jobID, order: policy.order)
        let c: Int
        if let known = classOfKey[key] {
            c = known
        } else {
            c = classes.count
            classes.append(Kept(nodes: nodes))
            classOfKey[key] = c
        }
        // Moved out while searched (no copy), back on return.
        var kept = classes[c]
        classes[c] = Kept(nodes: 0)
        defer { classes[c] = kept }
        if time < kept.time { kept = Kept(nodes: nodes) }
        kept.time = time
        var items: [(priority: Int, gain: Int, work: Int64)] = []
        items.reserveCapacity(64)
        let order = policy.order
        func push(_ n: Int) {
            kept.stamp[n] &+= 1
            guard let bound = kept.bound[n] else { return }
            kept.heap.push(Entry(keys: Self.keys(bound, order: order), rank: nameRank[n], node: Int32(n), stamp: kept.stamp[n]))
        }
        func compute(_ n: Int) {
            kept.bound[n] = Planner.lowerBound(n, level: level, k: request.gpusPerNode, index: index, eligible: eligible, scratch: &items)
            kept.boundTime[n] = time
            push(n)
        }
        for n in kept.staleList where kept.stale[n] {
            kept.stale[n] = false
            compute(n)
        }
        kept.staleList.removeAll(keepingCapacity: true)
        var best: NodePlan?
        var searched = 0
        var visited: [Int] = []
        while let top = kept.heap.first {
            let n = Int(top.node)
            guard top.stamp == kept.stamp[n], kept.bound[n] != nil else {
                _ = kept.heap.pop()
                continue
            }
            if let best, let bound = kept.bound[n], bound.compare(Planner.CostBound(best.cost), order: order) > 0 { break }
            _ = kept.heap.pop()
            kept.stamp[n] &+= 1
            if kept.boundTime[n] < time {
                // Up to date first; it goes back to its place.
                compute(n)
                continue
            }
            visited.append(n)
            searched += 1
            if let plan = Planner.planNode(n, level: level, request: request, index: index, eligible: eligible, policy: policy,
                                           ceiling: best?.cost) {
                if best.map({ plan.cost.compare($0.cost, order: order) < 0 || (plan.cost.compare($0.cost, order: order) == 0 && plan.node < $0.node) }) ?? true {
                    best = plan
                }
            }
        }
        for n in visited { push(n) }
        if kept.heap.count > 2 * nodes + 1024 {
            // Entries left behind by nodes bounded again: rebuilt from the current ones.
            kept.heap = MinHeap<Entry>()
            for n in 0..<nodes where !kept.stale[n] { push(n) }
        }
        return (best.map { [$0] } ?? [], searched)
    }
}
