/// The planning index the simulator keeps from one preemption attempt to the next, as
/// preempt/topo_aware keeps its own inside slurmctld (`LiveIndex`): running jobs hold slots
/// (reused once free), a start or an end changes the slot and its nodes only, and an attempt
/// brings the dirty nodes and the time up to date (a job's work is computed when read). It stands for the snapshot the
/// simulator built per attempt before (`Simulator.snapshotNow`): the planner, the stock model and
/// the oracle see the same nodes, jobs and ids (a job's id is its trace index + 1), and each
/// node's jobs in id order, as they were listed in that snapshot (checked at every attempt by
/// `Simulator.verifyKeptIndex` in the tests).
struct KeptIndex {
    private(set) var index = PlanningIndex()
    /// Per slot: the trace index of the job there (-1 when free) and its neighbours in the
    /// start log, in one record: a job's end reads one line for the three, not three lines
    /// (at 10,000 nodes the slots are far beyond the caches).
    private var slots: [Slot] = []
    struct Slot {
        var job: Int32 = -1
        var next: Int32 = -1
        var previous: Int32 = -1
    }
    private var freeSlots: [Int] = []
    /// The preemptible jobs by start time, then id, as a list through their slots (start times
    /// never decrease in a replay: a job goes at the end, before those of its second with higher
    /// ids; a job that ends is unlinked): stock Slurm's candidate order without sorting every
    /// running job per attempt, and without passing the jobs gone since.
    private var logHead: Int32 = -1
    private var logTail: Int32 = -1
    /// Live jobs in the log by priority.
    private var loggedPriorities: [Int: Int] = [:]
    /// Stock oldest-first's first pass without walking the log (`oldestFirstCandidates`): per
    /// GPU count asked for, the nodes by the log position (start, id) of the job whose removal
    /// gives them that many free GPUs (entries of an older version of a node are skipped); the
    /// nodes changed since; preemptible jobs on several nodes (none: the shortcut holds).
    private var fitHeaps: [MinHeap<FitKey>?] = []
    private var fitVersion: [UInt32] = []
    private var fitChanged: [Int] = []
    private var isFitChanged: [Bool] = []
    private var multiNodeJobs = 0
    /// Whether the index gives each node's CPUs and memory and every job's.
    private(set) var resources = false
    private var eligible: [Bool] = []

    /// No nodes yet (`Simulator.prepare` builds the cluster's).
    init() {}

    /// The index of the cluster before any job runs (`empty`: its snapshot).
    init(empty: ClusterSnapshot, resources: Bool) throws(SnapshotError) {
        index = try PlanningIndex(empty)
        self.resources = resources
        fitVersion = Array(repeating: 0, count: empty.nodes.count)
        isFitChanged = Array(repeating: false, count: empty.nodes.count)
    }

    var slotCount: Int { slots.count }

    /// The trace index of the job in `slot`; nil when the slot is free.
    func job(inSlot slot: Int) -> Int? {
        guard slots.indices.contains(slot), slots[slot].job >= 0 else { return nil }
        return Int(slots[slot].job)
    }

    /// Job `j` starts on `allocations` at `start`: it takes a slot, and is listed on its nodes
    /// in id order. Returns the slot.
    mutating func add(job j: Int, priority: Int, start: Int64, preemptible: Bool,
                      allocations: [ClusterSnapshot.RunningJob.Allocation]) -> Int {
        let id = UInt32(truncatingIfNeeded: j + 1)
        let job = ClusterSnapshot.RunningJob(id: id, priority: priority, startTime: start, preemptible: preemptible, allocations: allocations)
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            slot = slots.count
            slots.append(Slot())
            index.appendPlaceholders(1)
        }
        slots[slot].job = Int32(truncatingIfNeeded: j)
        index.setJob(slot, job)
        index.jobFacts[slot].preemptible = preemptible
        index.jobFacts[slot].priority = priority
        if preemptible, allocations.count > 1 { multiNodeJobs += 1 }
        for allocation in allocations {
            fitChange(allocation.node)
            var list = index.jobsOnNode[allocation.node]
            let at = list.firstIndex { index.jobFacts[$0.job].id > id } ?? list.count
            list.insert((slot, allocation.gpus), at: at)
            index.jobsOnNode[allocation.node] = list
        }
        if preemptible {
            // After the last job that started earlier, or at the same time with a lower id.
            var after = logTail
            while after >= 0, index.jobFacts[Int(after)].start == start, index.jobFacts[Int(after)].id > id { after = slots[Int(after)].previous }
            let before = after >= 0 ? slots[Int(after)].next : logHead
            slots[slot].previous = after
            slots[slot].next = before
            if after >= 0 { slots[Int(after)].next = Int32(slot) } else { logHead = Int32(slot) }
            if before >= 0 { slots[Int(before)].previous = Int32(slot) } else { logTail = Int32(slot) }
            loggedPriorities[priority, default: 0] += 1
        }
        return slot
    }

    /// The job in `slot` ends (completed or preempted).
    mutating func remove(slot: Int) {
        guard slots.indices.contains(slot), slots[slot].job >= 0 else { return }
        let allocations = index.snapshot.jobs[slot].allocations
        if index.jobFacts[slot].preemptible, allocations.count > 1 { multiNodeJobs -= 1 }
        for allocation in allocations {
            fitChange(allocation.node)
            index.jobsOnNode[allocation.node].removeAll { $0.job == slot }
        }
        if index.jobFacts[slot].preemptible {
            let priority = index.jobFacts[slot].priority
            if let count = loggedPriorities[priority] { loggedPriorities[priority] = count > 1 ? count - 1 : nil }
            let after = slots[slot].previous, before = slots[slot].next
            if after >= 0 { slots[Int(after)].next = before } else { logHead = before }
            if before >= 0 { slots[Int(before)].previous = after } else { logTail = after }
        }
        slots[slot] = Slot()
        index.setJob(slot, ClusterSnapshot.RunningJob(id: 0, priority: 0, startTime: 0, preemptible: false, allocations: []))
        freeSlots.append(slot)
    }

    /// A node's GPUs free and held outside the listed jobs (draining victims, a waiting plan),
    /// its free CPUs and memory, and those held outside the listed jobs (a waiting plan's).
    mutating func setNode(_ n: Int, free: GPUSet, other: GPUSet, freeCPUs: Int, freeMemory: Int64) {
        if index.free[n] != free { fitChange(n) }
        index.free[n] = free
        index.snapshot.nodes[n].otherAllocated = other.isEmpty ? nil : other
        guard resources else { return }
        var listedCPUs = 0
        var listedMemory: Int64 = 0
        for entry in index.jobsOnNode[n] {
            let held = index.resources(ofJob: entry.job, onNode: n)
            listedCPUs += held.cpus
            listedMemory += held.memory
        }
        index.freeCPUs[n] = freeCPUs
        index.freeMemory[n] = freeMemory
        if let cpus = index.snapshot.nodes[n].cpus { index.snapshot.nodes[n].otherCPUs = cpus - freeCPUs - listedCPUs }
        if let memory = index.snapshot.nodes[n].memoryMB { index.snapshot.nodes[n].otherMemoryMB = memory - freeMemory - listedMemory }
    }

    /// The index as of `time` (each job's work follows: `PlanningIndex.work(of:)`).
    mutating func prepare(time: Int64) {
        index.snapshot.time = time
    }

    /// Stock Slurm's candidates for `request`, in `slurm_find_preemptable_jobs`'s order: what
    /// `StockPreemption.candidateOrder` sorts from the whole index, from the start log. Oldest
    /// first: by priority, then start, then id; youngest first: by start, latest first, then id.
    mutating func stockOrder(_ request: PreemptorRequest, policy: PlannerPolicy, settings: StockSettings) -> [Int] {
        var order: [Int] = []
        switch settings.order {
        case .oldestFirst:
            Planner.eligibility(request, index: index, policy: policy, into: &eligible)
            var slot = logHead
            while slot >= 0 {
                if eligible[Int(slot)] { order.append(Int(slot)) }
                slot = slots[Int(slot)].next
            }
            let facts = index.jobFacts
            if let first = order.first, order.contains(where: { facts[$0].priority != facts[first].priority }) {
                // Stable: by priority, each priority in start order.
                var byPriority: [Int: [Int]] = [:]
                for slot in order { byPriority[facts[slot].priority, default: []].append(slot) }
                return byPriority.keys.sorted().flatMap { byPriority[$0] ?? [] }
            }
        case .youngestFirst:
            if let lazy = stockCandidates(request, policy: policy, settings: settings) { order.append(contentsOf: IteratorSequence(lazy)) }
        }
        return order
    }

    /// The same order drawn lazily from the log (a preemption removes the first few candidates
    /// of tens of thousands): oldest first while the eligible jobs have one priority, youngest
    /// first always; nil where `stockOrder` must sort by priority. The index must not change
    /// while it is drawn.
    func stockCandidates(_ request: PreemptorRequest, policy: PlannerPolicy, settings: StockSettings) -> AnyIterator<Int>? {
        let slots = self.slots, index = self.index
        func eligible(_ slot: Int32) -> Bool { Planner.isEligible(Int(slot), request, index: index, policy: policy) }
        switch settings.order {
        case .oldestFirst:
            guard loggedPriorities.keys.filter({ $0 < request.priority }).count <= 1 else { return nil }
            var at = logHead
            return AnyIterator {
                while at >= 0 {
                    let slot = at
                    at = slots[Int(slot)].next
                    if eligible(slot) { return Int(slot) }
                }
                return nil
            }
        case .youngestFirst:
            // Latest start first; one start's jobs by id (the log's order inside a start).
            var end = logTail
            var group: [Int] = []
            var taken = 0
            return AnyIterator {
                while taken == group.count {
                    guard end >= 0 else { return nil }
                    let start = index.jobFacts[Int(end)].start
                    var from = end
                    while slots[Int(from)].previous >= 0, index.jobFacts[Int(slots[Int(from)].previous)].start == start { from = slots[Int(from)].previous }
                    group.removeAll(keepingCapacity: true)
                    var slot = from
                    while true {
                        if eligible(slot) { group.append(Int(slot)) }
                        if slot == end { break }
                        slot = slots[Int(slot)].next
                    }
                    taken = 0
                    end = slots[Int(from)].previous
                }
                taken += 1
                return group[taken - 1]
            }
        }
    }

    /// Stock oldest-first's candidates for a one-node `request`, shortened where the order
    /// allows (one eligible priority, no exempt time, no job on several nodes, every node a
    /// candidate): `_run_now`'s first pass over the whole order stops at the first job whose
    /// removal lets a node take the job, node X; only X's jobs matter to X, and no node reaches
    /// the GPUs asked for earlier (the kept positions). So the jobs of X up to that one, then
    /// the whole order without them, give the same first pass (X fits after the same jobs),
    /// and the same order for the reorder passes (the last job, X's before it, the others,
    /// the rest): the same victims. Nil where the shortcut does not hold, or X's pick fails
    /// there (then an earlier node might fit later in the order): the caller walks the order.
    mutating func oldestFirstCandidates(_ request: PreemptorRequest, policy: PlannerPolicy) -> AnyIterator<Int>? {
        let k = request.gpusPerNode
        guard k > 0, request.nodeCount == 1, request.candidateNodes == nil, request.jobID == UInt32.max,
              policy.exemptSeconds <= 0, multiNodeJobs == 0, loggedPriorities.count == 1,
              let priority = loggedPriorities.keys.first, priority < request.priority
        else { return nil }
        // Nodes changed since: new positions in every heap kept.
        if fitHeaps.count <= k { fitHeaps += Array(repeating: nil, count: k + 1 - fitHeaps.count) }
        for n in fitChanged {
            isFitChanged[n] = false
            fitVersion[n] &+= 1
            let jobs = jobsByPosition(n)
            for count in fitHeaps.indices where fitHeaps[count] != nil {
                if let key = fitKey(n, k: count, jobs: jobs) { fitHeaps[count]!.push(key) }
            }
        }
        fitChanged.removeAll(keepingCapacity: true)
        // A heap is built when first asked for, and again once stale entries outnumber the nodes.
        for count in fitHeaps.indices where (fitHeaps[count]?.count ?? (count == k ? Int.max : 0)) > 4 * index.free.count + 1024 {
            var heap = MinHeap<FitKey>()
            for n in index.free.indices { if let key = fitKey(n, k: count, jobs: jobsByPosition(n)) { heap.push(key) } }
            fitHeaps[count] = heap
        }
        while let top = fitHeaps[k]?.first, top.version != fitVersion[Int(top.node)] { _ = fitHeaps[k]?.pop() }
        // A node with the GPUs free already did not take the job: Slurm's first pass may end
        // anywhere.
        guard let top = fitHeaps[k]?.first, top.start > Int64.min else { return nil }
        let node = Int(top.node)
        let jobs = jobsByPosition(node).prefix { (index.jobFacts[$0.job].start, index.jobFacts[$0.job].id) <= (top.start, top.id) }
        var free = index.free[node]
        var cpus = 0
        var memory: Int64 = 0
        for (j, gpus) in jobs {
            let held = index.resources(ofJob: j, onNode: node)
            free = free.union(gpus)
            (cpus, memory) = (cpus + held.cpus, memory + held.memory)
        }
        guard StockPreemption.pick(request, node: node, in: index, free: free, freedCPUs: cpus, freedMemory: memory,
                                   sockets: index.pickContexts[index.layoutOfNode[node]].sockets) != nil
        else { return nil }
        let first = jobs.map(\.job), slots = self.slots
        var at = 0
        var slot = logHead
        return AnyIterator {
            if at < first.count {
                at += 1
                return first[at - 1]
            }
            while slot >= 0 {
                let candidate = Int(slot)
                slot = slots[candidate].next
                if !first.contains(candidate) { return candidate }
            }
            return nil
        }
    }

    /// Node `n`'s preemptible jobs and their GPUs there by log position (start, then id).
    private func jobsByPosition(_ n: Int) -> [(job: Int, gpus: GPUSet)] {
        index.jobsOnNode[n].filter { index.jobFacts[$0.job].preemptible }
            .sorted { (index.jobFacts[$0.job].start, index.jobFacts[$0.job].id) < (index.jobFacts[$1.job].start, index.jobFacts[$1.job].id) }
    }

    /// Where node `n` (available) first has `k` GPUs free as its `jobs` (`jobsByPosition`) are
    /// removed oldest first: the position of that job; nil when never.
    private func fitKey(_ n: Int, k: Int, jobs: [(job: Int, gpus: GPUSet)]) -> FitKey? {
        guard index.snapshot.nodes[n].available else { return nil }
        var free = index.free[n]
        guard free.count < k else { return FitKey(start: Int64.min, id: 0, node: Int32(n), version: fitVersion[n]) }
        for (j, gpus) in jobs {
            free = free.union(gpus)
            if free.count >= k { return FitKey(start: index.jobFacts[j].start, id: index.jobFacts[j].id, node: Int32(n), version: fitVersion[n]) }
        }
        return nil
    }

    private mutating func fitChange(_ n: Int) {
        guard isFitChanged.indices.contains(n), !isFitChanged[n] else { return }
        isFitChanged[n] = true
        fitChanged.append(n)
    }
}

/// A node's position in `KeptIndex.fitHeaps`.
struct FitKey: Comparable, Sendable {
    var start: Int64
    var id: UInt32
    var node: Int32
    var version: UInt32
    static func < (a: FitKey, b: FitKey) -> Bool { (a.start, a.id, a.node) < (b.start, b.id, b.node) }
    /// Equal where neither is before the other (the version aside, as `<`).
    static func == (a: FitKey, b: FitKey) -> Bool { (a.start, a.id, a.node) == (b.start, b.id, b.node) }
}
