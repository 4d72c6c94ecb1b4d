/// What stock Slurm does for the same preemptor, as a baseline: the preemptable jobs in the
/// order `slurm_find_preemptable_jobs` sorts them (by preemption priority, lowest first, then in
/// job-list order, oldest first, as measured on the local cluster, ../shared/slurm-lab; or, with
/// `youngest_first`, by start time only, youngest first), removed one by one from a simulated
/// usage map until the job fits on a node, reordered and retried as `_run_now` in
/// cons_common/job_test.c (cons_tres/job_test.c from 23.02) does; the victims are the removed
/// jobs on the node it then uses, and the GPUs it gets are Slurm's pick (`SlurmGPUPick`) with its
/// cores on the first socket. Slurm sorts with qsort: glibc's is a stable merge sort where
/// memory allows, so jobs of equal rank keep their job-list order (id order), as this model
/// keeps them; another libc may order such ties differently.
public enum StockPreemption {
    public struct Outcome: Sendable, Equatable {
        public var node: String
        public var victims: [UInt32]
        public var gpus: GPUSet
        public var level: AffinityLevel
    }

    /// `first`: jobs the preempt plugin ranks before all others (preempt/topo_aware's
    /// best-effort victims: the lowest preemption priority, so first in either order).
    /// `candidates`: the order `candidateOrder` gives, drawn as far as needed, from a caller
    /// that keeps it between calls (the simulator); nil: sorted here. `mayFit`: the nodes that
    /// may hold the job without preemption (all with at least its GPUs free), ascending; nil:
    /// every node is tried.
    public static func simulate(_ request: PreemptorRequest, in index: PlanningIndex,
                                policy: PlannerPolicy = PlannerPolicy(), settings: StockSettings = StockSettings(),
                                first: Set<UInt32> = [], candidates given: AnyIterator<Int>? = nil, mayFit: [Int]? = nil) -> Outcome? {
        var scratch = Scratch()
        return simulate(request, in: index, policy: policy, settings: settings, first: first, candidates: given, mayFit: mayFit,
                        scratch: &scratch)
    }

    /// What `simulate` frees on each node while it removes candidates, kept by a caller that
    /// simulates often (the simulator) so that an attempt touches only the nodes it frees
    /// instead of copying every node's; left empty by each call.
    public struct Scratch: Sendable {
        var freedGPUs: [GPUSet] = []
        var freedCPUs: [Int] = []
        var freedMemory: [Int64] = []
        public init() {}
    }

    /// `simulate` with the caller's `scratch`.
    public static func simulate(_ request: PreemptorRequest, in index: PlanningIndex,
                                policy: PlannerPolicy = PlannerPolicy(), settings: StockSettings = StockSettings(),
                                first: Set<UInt32> = [], candidates given: AnyIterator<Int>? = nil, mayFit: [Int]? = nil,
                                scratch: inout Scratch) -> Outcome? {
        let snapshot = index.snapshot
        if scratch.freedGPUs.count != snapshot.nodes.count {
            scratch.freedGPUs = Array(repeating: GPUSet(), count: snapshot.nodes.count)
            scratch.freedCPUs = Array(repeating: 0, count: snapshot.nodes.count)
            scratch.freedMemory = Array(repeating: 0, count: snapshot.nodes.count)
        }
        // The nodes this pass freed GPUs, CPUs or memory on (cleared before each pass and on return).
        var touchedInPass: [Int] = []
        defer { for node in touchedInPass { (scratch.freedGPUs[node], scratch.freedCPUs[node], scratch.freedMemory[node]) = (GPUSet(), 0, 0) } }
        func usable(_ node: Int) -> Bool {
            let state = snapshot.nodes[node]
            return state.available && (request.candidateNodes?.contains(state.name) ?? true)
        }
        // GPUs, CPUs and memory freed so far on each node (Slurm's test is the whole job's: GPUs,
        // CPUs and memory where they are consumable).
        func fits(_ node: Int) -> GPUSet? {
            StockPreemption.pick(request, node: node, in: index, free: index.free[node].union(scratch.freedGPUs[node]),
                 freedCPUs: scratch.freedCPUs[node], freedMemory: scratch.freedMemory[node], sockets: index.pickContexts[index.layoutOfNode[node]].sockets)
        }
        func outcome(_ node: Int, _ pick: GPUSet, _ victims: [UInt32]) -> Outcome {
            Outcome(node: snapshot.nodes[node].name, victims: victims.sorted(), gpus: pick,
                    level: index.topology(ofNode: node).alignment(of: pick))
        }
        for node in mayFit ?? Array(snapshot.nodes.indices) where usable(node) {
            if let pick = fits(node) { return outcome(node, pick, []) }
        }
        // The candidates in order, drawn as far as a pass needs them.
        let source = given ?? AnyIterator(candidateOrder(request, index: index, policy: policy, settings: settings, first: first).makeIterator())
        var order: [Int] = []
        func candidate(_ position: Int) -> Int? {
            while order.count <= position {
                guard let next = source.next() else { return nil }
                order.append(next)
            }
            return order[position]
        }
        // _run_now: remove candidates in order until the job fits; then (reorder count times)
        // move the last removed job to the front, the earlier removed ones on the chosen node
        // next (strict order: the others as they were), and try again; the victims are the
        // removed jobs on the node it fits.
        var passCount = 0
        while true {
            // Each pass starts from the snapshot's usage again (the nodes the last one touched).
            for node in touchedInPass { (scratch.freedGPUs[node], scratch.freedCPUs[node], scratch.freedMemory[node]) = (GPUSet(), 0, 0) }
            touchedInPass.removeAll(keepingCapacity: true)
            var fitted: (position: Int, node: Int, pick: GPUSet)?
            var position = 0
            while fitted == nil, let j = candidate(position) {
                var touched: [Int] = []
                for allocation in snapshot.jobs[j].allocations {
                    scratch.freedGPUs[allocation.node] = scratch.freedGPUs[allocation.node].union(allocation.gpus)
                    scratch.freedCPUs[allocation.node] += allocation.cpus ?? 0
                    scratch.freedMemory[allocation.node] += allocation.memoryMB ?? 0
                    touched.append(allocation.node)
                }
                touchedInPass.append(contentsOf: touched)
                for node in touched.sorted() where usable(node) {
                    if let pick = fits(node) {
                        fitted = (position, node, pick)
                        break
                    }
                }
                position += 1
            }
            guard let (position, node, pick) = fitted else { return nil }
            let old = passCount
            passCount += 1
            if old > settings.reorderCount || candidate(passCount) == nil {
                let victims = order[...position].filter { r in snapshot.jobs[r].allocations.contains { $0.node == node } }
                return outcome(node, pick, victims.map { snapshot.jobs[$0].id })
            }
            let last = order[position]
            if settings.strictOrder {
                order.remove(at: position)
                order.insert(last, at: 0)
                continue
            }
            let onNode = { (r: Int) in snapshot.jobs[r].allocations.contains { $0.node == node } }
            let before = order[..<position]
            order = [last] + before.filter(onNode) + before.filter { !onNode($0) } + order[(position + 1)...]
        }
    }

    /// The GPUs Slurm's pick gives `request` on `node` with `free` GPUs free there and the CPUs
    /// and memory freed by the candidates removed, nil when the job does not fit (`sockets`:
    /// the node layout's sockets, the first one holding the job's core).
    static func pick(_ request: PreemptorRequest, node: Int, in index: PlanningIndex, free: GPUSet,
                     freedCPUs: Int, freedMemory: Int64, sockets: [Int]) -> GPUSet? {
        let k = request.gpusPerNode
        guard free.count >= k, index.resourcesFit(request, node: node, freedCPUs: freedCPUs, freedMemory: freedMemory) else { return nil }
        let context = index.pickContexts[index.layoutOfNode[node]]
        switch request.shape {
        case .perNode:
            return SlurmGPUPick.pickPerNode(context, free: free, count: k, usedSockets: Set(sockets.prefix(1)))
        case .perSocket:
            for socket in sockets {
                if let pick = SlurmGPUPick.pickPerSocket(context, free: free, count: k, socket: socket) { return pick }
            }
            return nil
        }
    }

    /// The preemptable jobs (indices) in the order `slurm_find_preemptable_jobs` sorts them,
    /// `first` ahead of all.
    static func candidateOrder(_ request: PreemptorRequest, index: PlanningIndex, policy: PlannerPolicy,
                               settings: StockSettings, first: Set<UInt32>) -> [Int] {
        let snapshot = index.snapshot
        let eligible = Planner.eligibility(request, index: index, policy: policy)
        return snapshot.jobs.indices.filter { eligible[$0] }.sorted { a, b in
            let ja = snapshot.jobs[a], jb = snapshot.jobs[b]
            let fa = first.contains(ja.id), fb = first.contains(jb.id)
            if fa != fb { return fa }
            switch settings.order {
            case .oldestFirst:
                if ja.priority != jb.priority { return ja.priority < jb.priority }
                if ja.startTime != jb.startTime { return ja.startTime < jb.startTime }
            case .youngestFirst:
                if ja.startTime != jb.startTime { return ja.startTime > jb.startTime }
            }
            return ja.id < jb.id
        }
    }

    /// `simulate` for a job of one node; for several, `simulateMultiNode` told as one outcome:
    /// its nodes comma-separated, the first node's GPUs, the worst level over the nodes.
    public static func simulateAny(_ request: PreemptorRequest, in index: PlanningIndex, policy: PlannerPolicy = PlannerPolicy(),
                                   settings: StockSettings = StockSettings()) -> Outcome? {
        guard request.nodeCount > 1 else { return simulate(request, in: index, policy: policy, settings: settings) }
        guard let multi = simulateMultiNode(request, in: index, policy: policy, settings: settings), let first = multi.nodes.first
        else { return nil }
        let level = multi.nodes.compactMap { n in index.nodeByName[n.name].map { index.topology(ofNode: $0).alignment(of: n.gpus) } }.max()
        return Outcome(node: multi.nodes.map(\.name).joined(separator: ","), victims: multi.victims, gpus: first.gpus, level: level ?? .node)
    }

    /// A multi-node job's outcome: each node with the GPUs Slurm's pick gives the job there.
    public struct MultiOutcome: Sendable, Equatable {
        public var nodes: [(name: String, gpus: GPUSet)]
        public var victims: [UInt32]
        public static func == (a: MultiOutcome, b: MultiOutcome) -> Bool {
            a.victims == b.victims && a.nodes.map(\.name) == b.nodes.map(\.name) && a.nodes.map(\.gpus) == b.nodes.map(\.gpus)
        }
    }

    /// Where Slurm may place a job of `nodes` nodes: the units of topology/block (one block, or
    /// one aggregate for a job larger than a block), as node indices; without blocks, all nodes.
    public static func units(forNodes nodes: Int, in snapshot: ClusterSnapshot) -> [[Int]] {
        guard let levels = snapshot.blockLevels ?? BlockLevels.derived(from: snapshot.nodes) else {
            return [Array(snapshot.nodes.indices)]
        }
        return levels.nodeUnits(forNodes: nodes, of: snapshot.nodes).map(\.nodes)
    }

    /// Stock Slurm's preemption for a job of several nodes: the same candidate order and
    /// `_run_now` passes as `simulate`, the job fitting once some unit Slurm may place it in
    /// (`units`) has `nodeCount` nodes where its GPUs fit; the victims are the removed jobs on
    /// the nodes it then uses (the first fitting nodes of the first such unit). Checked against
    /// stock 24.11.5 and 26.05.3 controllers with topology/block (RandomBlockFillsTests: the
    /// model's victims are the controller's, fill by fill).
    public static func simulateMultiNode(_ request: PreemptorRequest, in index: PlanningIndex,
                                         policy: PlannerPolicy = PlannerPolicy(), settings: StockSettings = StockSettings(),
                                         first: Set<UInt32> = [], candidates given: [Int]? = nil) -> MultiOutcome? {
        let snapshot = index.snapshot
        let k = request.gpusPerNode
        // --segment: each segment inside one unit of its size's level, one after another.
        var segment = 0
        let levels = snapshot.blockLevels ?? BlockLevels.derived(from: snapshot.nodes)
        if let levels {
            switch Planner.segments(request, baseNodes: levels.baseNodes, release: snapshot.slurm) {
            case let .success(size): segment = size
            case .failure: return nil
            }
        }
        let units = units(forNodes: segment > 0 ? segment : request.nodeCount, in: snapshot)
        // --consolidate-segments: all segments inside one unit of the job's (spread: whole base
        // blocks per segment) level, the first in which they all fit; --spread-segments: a unit
        // (of a segment's level) holds one segment.
        let spread = request.segmentPlacement.contains(.spread)
        var domains: [Set<Int>?] = [nil]
        if segment > 0, request.segmentPlacement.contains(.consolidate), let levels {
            let base = max(1, levels.baseNodes), count = request.nodeCount / segment
            let whole = spread ? count * ((segment + base - 1) / base) * base : request.nodeCount
            domains = levels.nodeUnits(forNodes: whole, of: snapshot.nodes).map { Set($0.nodes) }
        }
        // Nodes named by -w: in the job (fewer than its nodes), or its only nodes.
        let named = request.requiredNodes.compactMap { index.nodeByName[$0] }.sorted()
        guard named.count == request.requiredNodes.count else { return nil }
        let required = named.count < request.nodeCount ? named : []
        func usable(_ node: Int) -> Bool {
            let state = snapshot.nodes[node]
            return state.available && (request.candidateNodes?.contains(state.name) ?? true)
                && (named.isEmpty || !required.isEmpty || named.contains(node))
        }
        var freedCPUs = [Int](repeating: 0, count: snapshot.nodes.count)
        var freedMemory = [Int64](repeating: 0, count: snapshot.nodes.count)
        func pick(_ node: Int, _ free: GPUSet) -> GPUSet? {
            guard free.count >= k, usable(node),
                  index.resourcesFit(request, node: node, freedCPUs: freedCPUs[node], freedMemory: freedMemory[node])
            else { return nil }
            let layout = index.layoutOfNode[node]
            let sockets = index.pickContexts[layout].sockets
            switch request.shape {
            case .perNode:
                return SlurmGPUPick.pickPerNode(index.pickContexts[layout], free: free, count: k, usedSockets: Set(sockets.prefix(1)))
            case .perSocket:
                for socket in sockets {
                    if let p = SlurmGPUPick.pickPerSocket(index.pickContexts[layout], free: free, count: k, socket: socket) { return p }
                }
                return nil
            }
        }
        func fit(_ free: [GPUSet]) -> [(node: Int, gpus: GPUSet)]? {
            if segment > 0 {
                domains: for domain in domains {
                    var chosen: [(node: Int, gpus: GPUSet)] = []
                    var taken = Set<Int>(), usedUnits = Set<Int>()
                    for _ in 0..<(request.nodeCount / segment) {
                        var placed = false
                        for (u, unit) in units.enumerated() where !(spread && usedUnits.contains(u)) {
                            var part: [(node: Int, gpus: GPUSet)] = []
                            for node in unit where !taken.contains(node) && (domain?.contains(node) ?? true) {
                                if let gpus = pick(node, free[node]) { part.append((node, gpus)) }
                                if part.count == segment { break }
                            }
                            guard part.count == segment else { continue }
                            chosen += part
                            taken.formUnion(part.map(\.node))
                            usedUnits.insert(u)
                            placed = true
                            break
                        }
                        if !placed { continue domains }
                    }
                    return chosen
                }
                return nil
            }
            for unit in units where required.allSatisfy(unit.contains) {
                var chosen: [(node: Int, gpus: GPUSet)] = []
                for node in required {
                    guard let gpus = pick(node, free[node]) else { break }
                    chosen.append((node, gpus))
                }
                guard chosen.count == required.count else { continue }
                for node in unit where !required.contains(node) {
                    if chosen.count == request.nodeCount { break }
                    if let gpus = pick(node, free[node]) { chosen.append((node, gpus)) }
                }
                if chosen.count == request.nodeCount { return chosen }
            }
            return nil
        }
        func outcome(_ chosen: [(node: Int, gpus: GPUSet)], _ victims: [UInt32]) -> MultiOutcome {
            MultiOutcome(nodes: chosen.map { (snapshot.nodes[$0.node].name, $0.gpus) }, victims: victims.sorted())
        }
        if let chosen = fit(index.free) { return outcome(chosen, []) }
        var order = given ?? candidateOrder(request, index: index, policy: policy, settings: settings, first: first)
        var passCount = 0
        while true {
            var trial = index.free
            for node in freedCPUs.indices { (freedCPUs[node], freedMemory[node]) = (0, 0) }
            var fitted: (position: Int, chosen: [(node: Int, gpus: GPUSet)])?
            for (position, j) in order.enumerated() {
                for allocation in snapshot.jobs[j].allocations {
                    trial[allocation.node] = trial[allocation.node].union(allocation.gpus)
                    freedCPUs[allocation.node] += allocation.cpus ?? 0
                    freedMemory[allocation.node] += allocation.memoryMB ?? 0
                }
                if let chosen = fit(trial) {
                    fitted = (position, chosen)
                    break
                }
            }
            guard let (position, chosen) = fitted else { return nil }
            let nodes = Set(chosen.map(\.node))
            let onChosen = { (r: Int) in snapshot.jobs[r].allocations.contains { nodes.contains($0.node) } }
            let old = passCount
            passCount += 1
            if old > settings.reorderCount || order.count <= passCount {
                return outcome(chosen, order[...position].filter(onChosen).map { snapshot.jobs[$0].id })
            }
            let last = order[position]
            if settings.strictOrder {
                order.remove(at: position)
                order.insert(last, at: 0)
                continue
            }
            let before = order[..<position]
            order = [last] + before.filter(onChosen) + before.filter { !onChosen($0) } + order[(position + 1)...]
        }
    }

    /// The GPUs Slurm's pick gives the job on the outcome's node once its victims are gone, for
    /// each socket its core may be placed on (a plain request; shaped requests do not depend on
    /// it). `simulate` assumes the first socket; Slurm puts a 1-CPU job's core on the socket with
    /// the most free cores, which libslurm clients cannot read from 24.05 on (the per-node CPU ids
    /// of a job left the public API), so the tools report every case.
    public static func gpusByCoreSocket(_ outcome: Outcome, request: PreemptorRequest, in index: PlanningIndex) -> [Int: GPUSet] {
        guard request.shape == .perNode, request.nodeCount == 1, let node = index.nodeByName[outcome.node] else { return [:] }
        var free = index.free[node]
        let victims = Set(outcome.victims)
        for job in index.snapshot.jobs where victims.contains(job.id) {
            for allocation in job.allocations where allocation.node == node { free = free.union(allocation.gpus) }
        }
        let layout = index.layoutOfNode[node]
        let context = index.pickContexts[layout]
        var picks: [Int: GPUSet] = [:]
        for socket in context.sockets {
            picks[socket] = SlurmGPUPick.pickPerNode(context, free: free, count: request.gpusPerNode, usedSockets: [socket])
        }
        return picks
    }
}

/// The slurm.conf settings that change which victims stock Slurm takes, read as slurmctld reads
/// them (case-insensitive substrings of SchedulerParameters, and from 23.02 of PreemptParameters;
/// S: 22.05 src/slurmctld/preempt.c and cons_common.c, 23.11/26.05 src/interfaces/preempt.c and
/// select_cons_tres.c).
public struct StockSettings: Sendable, Hashable, Codable {
    /// The candidates' order before `_run_now` removes them.
    public enum Order: String, Sendable, Hashable, Codable, CaseIterable {
        /// By preemption priority (partition PriorityTier / QOS), lowest first; job-list order
        /// (oldest first) among equals. Slurm's default.
        case oldestFirst = "oldest-first"
        /// By start time only, youngest first (`PreemptParameters=youngest_first`, or 22.05's
        /// `SchedulerParameters=preempt_youngest_first`): priority is not compared at all.
        case youngestFirst = "youngest-first"
    }

    public var order: Order
    /// `reorder_count` (`preempt_reorder_count` in SchedulerParameters): Slurm's default 1.
    public var reorderCount: Int
    /// `strict_order`: a reorder moves only the last removed job to the front.
    public var strictOrder: Bool

    public init(order: Order = .oldestFirst, reorderCount: Int = 1, strictOrder: Bool = false) {
        self.order = order
        self.reorderCount = max(0, reorderCount)
        self.strictOrder = strictOrder
    }

    /// From slurm.conf's SchedulerParameters and PreemptParameters (`scontrol show config`) of
    /// `release`: PreemptParameters exists from 23.02 (22.05 reads SchedulerParameters only),
    /// and its `reorder_count=` wins over SchedulerParameters' `preempt_reorder_count=`.
    public init(schedulerParameters: String?, preemptParameters: String?, release: SlurmRelease) {
        let scheduler = asciiLowercased(schedulerParameters ?? "")
        let preempt = release >= SlurmRelease(23, 2, 0) ? asciiLowercased(preemptParameters ?? "") : ""
        let youngest = preempt.contains("youngest_first") || scheduler.contains("preempt_youngest_first")
        let strict = preempt.contains("strict_order") || scheduler.contains("preempt_strict_order")
        var count = 1
        if let value = Self.integer(after: "reorder_count=", in: preempt) ?? Self.integer(after: "preempt_reorder_count=", in: scheduler) {
            count = value < 0 ? 1 : value  // Slurm: an error, then its default
        }
        self.init(order: youngest ? .youngestFirst : .oldestFirst, reorderCount: count, strictOrder: strict)
    }

    /// `atoi` of the text after the first occurrence of `key` (nil when `key` is absent).
    static func integer(after key: String, in text: String) -> Int? {
        guard let range = text.firstRange(of: key) else { return nil }
        var digits = Substring(text[range.upperBound...])
        var negative = false
        if let sign = digits.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        var value = 0
        for character in digits {
            guard let digit = character.wholeNumberValue, character.isASCII else { break }
            value = min(value * 10 + digit, 1 << 30)
        }
        return negative ? -value : value
    }

    /// How the documentation and the tools name it: `oldest-first` or `youngest-first`, with any
    /// non-default reorder settings.
    public var name: String {
        var parts = [order.rawValue]
        if reorderCount != 1 { parts.append("reorder_count=\(reorderCount)") }
        if strictOrder { parts.append("strict_order") }
        return parts.joined(separator: ",")
    }
}
