/// The planning index the simulator keeps from one preemption attempt to the next, as
/// preempt/topo_aware keeps its own inside slurmctld (`LiveIndex`): running jobs hold slots
/// (reused once free), a start or an end changes the slot and its nodes only, and an attempt
/// brings the dirty nodes and the work of each job up to date. It stands for the snapshot the
/// simulator built per attempt before (`Simulator.snapshotNow`): the planner, the stock model and
/// the oracle see the same nodes, jobs and ids (a job's id is its trace index + 1), and each
/// node's jobs in id order, as they were listed in that snapshot (checked at every attempt by
/// `Simulator.verifyKeptIndex` in the tests).
struct KeptIndex {
    private(set) var index = PlanningIndex()
    /// Per slot: the trace index of the job there, -1 when free.
    private(set) var jobOfSlot: [Int] = []
    /// Per slot: how often it was filled (the start log's entries name a filling).
    private var filling: [UInt32] = []
    private var freeSlots: [Int] = []
    /// Preemptible jobs by start time, then id (start times never decrease in a replay: a job
    /// goes at the end, before those of its second with higher ids), entries of jobs gone since
    /// included until the log is compacted: stock Slurm's candidate order without sorting every
    /// running job per attempt.
    private var startLog: [(slot: Int32, filling: UInt32, start: Int64, id: UInt32)] = []
    private var liveInLog = 0
    /// Live jobs in the log by priority.
    private var loggedPriorities: [Int: Int] = [:]
    /// Whether the index gives each node's CPUs and memory and every job's.
    private(set) var resources = false
    private var eligible: [Bool] = []

    /// No nodes yet (`Simulator.prepare` builds the cluster's).
    init() {}

    /// The index of the cluster before any job runs (`empty`: its snapshot).
    init(empty: ClusterSnapshot, resources: Bool) throws(SnapshotError) {
        index = try PlanningIndex(empty)
        self.resources = resources
    }

    var slotCount: Int { jobOfSlot.count }

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
            slot = jobOfSlot.count
            jobOfSlot.append(-1)
            filling.append(0)
            index.appendPlaceholders(1)
        }
        jobOfSlot[slot] = j
        filling[slot] &+= 1
        index.setJob(slot, job)
        index.jobPreemptible[slot] = preemptible
        index.jobPriority[slot] = priority
        for allocation in allocations {
            var list = index.jobsOnNode[allocation.node]
            let at = list.firstIndex { index.jobID[$0.job] > id } ?? list.count
            list.insert((slot, allocation.gpus), at: at)
            index.jobsOnNode[allocation.node] = list
        }
        if preemptible {
            var at = startLog.count
            while at > 0, startLog[at - 1].start == start, startLog[at - 1].id > id { at -= 1 }
            startLog.insert((Int32(slot), filling[slot], start, id), at: at)
            liveInLog += 1
            loggedPriorities[priority, default: 0] += 1
        }
        return slot
    }

    /// The job in `slot` ends (completed or preempted).
    mutating func remove(slot: Int) {
        guard jobOfSlot.indices.contains(slot), jobOfSlot[slot] >= 0 else { return }
        for allocation in index.snapshot.jobs[slot].allocations {
            index.jobsOnNode[allocation.node].removeAll { $0.job == slot }
        }
        if index.jobPreemptible[slot] {
            liveInLog -= 1
            let priority = index.jobPriority[slot]
            if let count = loggedPriorities[priority] { loggedPriorities[priority] = count > 1 ? count - 1 : nil }
            if startLog.count > 2 * liveInLog + 1024 { compactLog() }
        }
        jobOfSlot[slot] = -1
        index.setJob(slot, ClusterSnapshot.RunningJob(id: 0, priority: 0, startTime: 0, preemptible: false, allocations: []))
        freeSlots.append(slot)
    }

    /// A node's GPUs free and held outside the listed jobs (draining victims, a waiting plan),
    /// its free CPUs and memory, and those held outside the listed jobs (a waiting plan's).
    mutating func setNode(_ n: Int, free: GPUSet, other: GPUSet, freeCPUs: Int, freeMemory: Int64) {
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

    /// The index as of `time`: each job's work so far (`work` false: left as it was, for a
    /// caller that does not read it: the stock model).
    mutating func prepare(time: Int64, work: Bool = true) {
        index.snapshot.time = time
        guard work else { return }
        for slot in jobOfSlot.indices where jobOfSlot[slot] >= 0 {
            let (product, overflow) = Int64(index.jobGPUs[slot]).multipliedReportingOverflow(by: Planner.age(at: time, since: index.jobStart[slot]))
            index.work[slot] = overflow ? PlanningIndex.maxWork : min(product, PlanningIndex.maxWork)
        }
    }

    /// Stock Slurm's candidates for `request`, in `slurm_find_preemptable_jobs`'s order: what
    /// `StockPreemption.candidateOrder` sorts from the whole index, from the start log. Oldest
    /// first: by priority, then start, then id; youngest first: by start, latest first, then id.
    mutating func stockOrder(_ request: PreemptorRequest, policy: PlannerPolicy, settings: StockSettings) -> [Int] {
        Planner.eligibility(request, index: index, policy: policy, into: &eligible)
        var live: [Int] = []
        live.reserveCapacity(liveInLog)
        for entry in startLog {
            let slot = Int(entry.slot)
            if jobOfSlot[slot] >= 0, filling[slot] == entry.filling, eligible[slot] { live.append(slot) }
        }
        switch settings.order {
        case .oldestFirst:
            let priority = index.jobPriority
            if let first = live.first, live.contains(where: { priority[$0] != priority[first] }) {
                // Stable: by priority, each priority in start order.
                var byPriority: [Int: [Int]] = [:]
                for slot in live { byPriority[priority[slot], default: []].append(slot) }
                return byPriority.keys.sorted().flatMap { byPriority[$0] ?? [] }
            }
            return live
        case .youngestFirst:
            // Latest start first, equal starts still by id.
            var out: [Int] = []
            out.reserveCapacity(live.count)
            var to = live.count
            while to > 0 {
                var from = to - 1
                let start = index.jobStart[live[from]]
                while from > 0, index.jobStart[live[from - 1]] == start { from -= 1 }
                out.append(contentsOf: live[from..<to])
                to = from
            }
            return out
        }
    }

    /// The same order drawn lazily from the log (a preemption removes the first few candidates
    /// of tens of thousands): oldest first while the eligible jobs have one priority, youngest
    /// first always; nil where `stockOrder` must sort by priority. The index must not change
    /// while it is drawn.
    mutating func stockCandidates(_ request: PreemptorRequest, policy: PlannerPolicy, settings: StockSettings) -> AnyIterator<Int>? {
        // Entries of jobs gone at either end are dropped (each once).
        func live(_ entry: (slot: Int32, filling: UInt32, start: Int64, id: UInt32)) -> Bool {
            jobOfSlot[Int(entry.slot)] >= 0 && filling[Int(entry.slot)] == entry.filling
        }
        while let last = startLog.last, !live(last) { startLog.removeLast() }
        var head = 0
        while head < startLog.count, !live(startLog[head]) { head += 1 }
        if head > 1024 { startLog.removeFirst(head); head = 0 }
        let log = startLog, slots = jobOfSlot, fillings = filling, index = self.index
        func eligible(_ entry: (slot: Int32, filling: UInt32, start: Int64, id: UInt32)) -> Bool {
            let slot = Int(entry.slot)
            return slots[slot] >= 0 && fillings[slot] == entry.filling && Planner.isEligible(slot, request, index: index, policy: policy)
        }
        switch settings.order {
        case .oldestFirst:
            guard loggedPriorities.keys.filter({ $0 < request.priority }).count <= 1 else { return nil }
            var at = head
            return AnyIterator {
                while at < log.count {
                    let entry = log[at]
                    at += 1
                    if eligible(entry) { return Int(entry.slot) }
                }
                return nil
            }
        case .youngestFirst:
            // Latest start first; one start's jobs by id (the log's order inside a start).
            var end = log.count
            var group: [Int] = []
            var next = 0
            return AnyIterator {
                while next == group.count {
                    guard end > head else { return nil }
                    var from = end - 1
                    while from > head, log[from - 1].start == log[end - 1].start { from -= 1 }
                    group.removeAll(keepingCapacity: true)
                    for entry in log[from..<end] where eligible(entry) { group.append(Int(entry.slot)) }
                    next = 0
                    end = from
                }
                next += 1
                return group[next - 1]
            }
        }
    }

    private mutating func compactLog() {
        startLog.removeAll { entry in
            let slot = Int(entry.slot)
            return jobOfSlot[slot] < 0 || filling[slot] != entry.filling
        }
    }
}
