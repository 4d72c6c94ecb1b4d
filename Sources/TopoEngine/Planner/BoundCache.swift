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

    /// A node's kept bound (none: no plan possible), when it was computed, whether it must be
    /// computed again (changed), and the stamp of its current heap entry: one record of 40
    /// bytes, so that a node pushed, popped or bounded again reads one record, not four arrays
    /// (at 10,000 nodes a class's nodes are beyond the caches). Victims and collateral GPUs are
    /// clamped to 32 bits: a smaller bound is still a lower bound.
    struct NodeBound: Sendable {
        var maxPriority = 0
        var gpuSeconds: Int64 = 0
        var time = Int64.min
        var victims: Int32 = 0
        var collateral: Int32 = 0
        var stamp: UInt32 = 0
        var hasBound = false
        var hasPriority = false
        var stale = true

        var bound: Planner.CostBound? {
            get {
                guard hasBound else { return nil }
                return Planner.CostBound(maxPriority: hasPriority ? maxPriority : nil, victims: Int(victims),
                                         gpuSeconds: gpuSeconds, collateral: Int(collateral))
            }
            set {
                hasBound = newValue != nil
                guard let newValue else { return }
                hasPriority = newValue.maxPriority != nil
                maxPriority = newValue.maxPriority ?? 0
                gpuSeconds = newValue.gpuSeconds
                victims = Int32(clamping: newValue.victims)
                collateral = Int32(clamping: newValue.collateral)
            }
        }
    }

    /// One request class's bounds.
    struct Kept: Sendable {
        var time = Int64.min
        var nodes: [NodeBound]
        var staleList: [Int]
        var heap = MinHeap<Entry>()

        init(nodes: Int) {
            self.nodes = Array(repeating: NodeBound(), count: nodes)
            staleList = Array(0..<nodes)
        }

        mutating func invalidate(_ n: Int) {
            guard !nodes[n].stale else { return }
            nodes[n].stale = true
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
            case .work, .roughWork: values[i] = bound.gpuSeconds
            case .collateral: values[i] = Int64(bound.collateral)
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
            kept.nodes[n].stamp &+= 1
            guard let bound = kept.nodes[n].bound else { return }
            kept.heap.push(Entry(keys: Self.keys(bound, order: order), rank: nameRank[n], node: Int32(n), stamp: kept.nodes[n].stamp))
        }
        func compute(_ n: Int) {
            kept.nodes[n].bound = Planner.lowerBound(n, level: level, k: request.gpusPerNode, index: index, eligible: eligible, scratch: &items)
            kept.nodes[n].time = time
            push(n)
        }
        for n in kept.staleList where kept.nodes[n].stale {
            kept.nodes[n].stale = false
            compute(n)
        }
        kept.staleList.removeAll(keepingCapacity: true)
        var best: NodePlan?
        var searched = 0
        var visited: [Int] = []
        while let top = kept.heap.first {
            let n = Int(top.node)
            guard top.stamp == kept.nodes[n].stamp, let bound = kept.nodes[n].bound else {
                _ = kept.heap.pop()
                continue
            }
            if let best, bound.compare(Planner.CostBound(best.cost), order: order) > 0 { break }
            _ = kept.heap.pop()
            kept.nodes[n].stamp &+= 1
            if kept.nodes[n].time < time {
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
            for n in 0..<nodes where !kept.nodes[n].stale { push(n) }
        }
        return (best.map { [$0] } ?? [], searched)
    }
}
