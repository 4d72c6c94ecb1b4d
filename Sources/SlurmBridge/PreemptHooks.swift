import CSlurmShim
import Glibc
import SlurmStrings
import Synchronization
import TopoEngine

/// preempt/topo_aware, Swift side. The C plugin (CSlurmShim/plugins/preempt_topo_aware, built
/// against slurmctld's source tree) copies what it needs out of slurmctld's structs into a
/// `topo_preempt_snapshot_t` and calls these functions through dlsym() of this .so; here the
/// snapshot becomes Swift values, `PreemptController` decides, and the decision goes back as
/// plain C. Called with slurmctld's job locks held: nothing here traps on data, and everything
/// read is bounded by the counts the C side gives.
enum PreemptPlugin {
    static let type = "preempt/topo_aware"
    static let controller = Mutex(PreemptController())

    private static let started = Mutex(false)

    /// Loads topo_aware.conf and the topology on first use (the job_submit side of this .so may
    /// not be configured, so its init cannot be relied on).
    static func ensureLoaded() {
        let first = started.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        // The stores may hold what job_submit's init read: reading the files again here gives
        // the preempt side its own load lines (and the left-out nodes) in the log.
        PluginImage.join(type)
        let paths = PluginPaths.current()
        do {
            let parsed = try PluginImage.config.load(path: paths.topoAwareConf)
            SlurmLog.info("\(type): loaded \(paths.topoAwareConf): \(ConfigStore.summary(parsed.config)), base policy \(parsed.config.basePolicy.rawValue), PlanTimeout=\(parsed.config.planTimeoutSeconds)s PlanTimeBudget=\(parsed.config.planTimeBudgetMilliseconds)ms")
        } catch {
            SlurmLog.error("\(type): \(error); no topology-aware preemption until the file is fixed (base policy answers)")
        }
        PluginImage.topology.load(slurmConf: paths.slurmConf, gresConf: paths.gresConf, logPrefix: type, reportLeftOutAs: type)
    }

    static func reset() {
        DecisionLog.shared.flush(seconds: 1)
        controller.withLock { $0.reset() }
        PluginImage.leave(type)
        started.withLock { $0 = false }
    }

    static var config: TopoAwareConfig? { PluginImage.config.current(logPrefix: type) }

    static func settings(_ out: UnsafeMutablePointer<topo_preempt_settings_t>) -> Int32 {
        ensureLoaded()
        out.pointee.abi_version = TOPO_PREEMPT_ABI_VERSION
        let policy = config?.basePolicy ?? .partitionPriority
        out.pointee.base_policy = policy == .qos ? Int32(TOPO_PREEMPT_BASE_QOS) : Int32(TOPO_PREEMPT_BASE_PARTITION_PRIO)
        out.pointee.stats_interval = UInt32(clamping: config?.statsIntervalSeconds ?? 300)
        return 0
    }

    static func planOwners(_ ids: UnsafeMutablePointer<UInt32>?, max: UInt32) -> UInt32 {
        let owners = controller.withLock { $0.planOwners }
        if let ids {
            for (i, id) in owners.prefix(Int(max)).enumerated() { ids[i] = id }
        }
        return UInt32(clamping: owners.count)
    }

    static func isPreemptor(adminComment: UnsafePointer<CChar>?, partition: UnsafePointer<CChar>?,
                            qos: UnsafePointer<CChar>?) -> Int32 {
        ensureLoaded()
        let p = ControllerSnapshot.Preemptor(
            id: 0, basePriority: 0, gpusPerNode: 0,
            adminComment: adminComment.flatMap { CStrings.read($0, limit: 8192) },
            partitions: SubmittedJob.partitionList(partition.flatMap { CStrings.read($0, limit: 4096) }),
            qos: qos.flatMap { CStrings.read($0, limit: 256) })
        return PreemptController.preemptorClass(p, config: config) == nil ? 0 : 1
    }

    static func decide(_ raw: UnsafePointer<topo_preempt_snapshot_t>,
                       _ out: UnsafeMutablePointer<topo_preempt_decision_t>) -> Int32 {
        ensureLoaded()
        out.pointee.action = Int32(TOPO_PREEMPT_BASE_POLICY)
        out.pointee.victim_count = 0
        out.pointee.planned = 0
        out.pointee.flags = 0
        out.pointee.target_count = 0
        guard raw.pointee.abi_version == TOPO_PREEMPT_ABI_VERSION else {
            SlurmLog.error("\(type): snapshot ABI version \(raw.pointee.abi_version), expected \(TOPO_PREEMPT_ABI_VERSION); base policy")
            return -1
        }
        if raw.pointee.flags & TOPO_PREEMPT_SNAPSHOT_SLOTS != 0 { return decideLive(raw.pointee, out) }
        let snapshot: ControllerSnapshot
        switch read(raw.pointee) {
        case let .success(value): snapshot = value
        case let .failure(message):
            SlurmLog.error("\(type): JobId=\(raw.pointee.preemptor.job_id) unreadable snapshot: \(message); base policy")
            return -1
        }
        let (current, settings, layouts) = decisionInputs()
        let decision = controller.withLock {
            $0.decide(snapshot, config: current, topology: layouts, settings: settings, clock: monotonicNanoseconds)
        }
        deliver(decision, to: out)
        return 0
    }

    /// topo_aware.conf in force, the preempt settings it gives, and the node layouts.
    static func decisionInputs() -> (TopoAwareConfig?, PreemptSettings, ControllerTopology?) {
        let current = config
        configureLog(current)
        let settings = PreemptSettings(planTimeoutSeconds: Int64(current?.planTimeoutSeconds ?? 300),
                                       planBudgetMicroseconds: UInt64(current?.planTimeBudgetMilliseconds ?? 200) * 1000)
        return (current, settings, PluginImage.topology.controllerTopology(logPrefix: type))
    }

    /// The decision log writer follows `DecisionLog=` of the topo_aware.conf in force.
    static func configureLog(_ current: TopoAwareConfig?) {
        DecisionLog.shared.configure(current?.decisionLog.map { path in
            DecisionLog.Settings(path: path, maxBytes: Int64(current?.decisionLogMaxSizeMiB ?? 100) << 20,
                                 keep: current?.decisionLogKeep ?? 5)
        })
    }

    /// A slot snapshot: the controller's kept state follows the plugin's index.
    static func decideLive(_ s: topo_preempt_snapshot_t, _ out: UnsafeMutablePointer<topo_preempt_decision_t>) -> Int32 {
        let header: ControllerSnapshot, update: LiveUpdate
        switch readLive(s) {
        case let .success(value): (header, update) = value
        case let .failure(message):
            SlurmLog.error("\(type): JobId=\(s.preemptor.job_id) unreadable snapshot: \(message); base policy")
            return -1
        }
        let (current, settings, layouts) = decisionInputs()
        let flags = s.slot_eligible, prios = s.slot_base_prio, jobCount = Int(s.job_count)
        let decision = controller.withLock {
            $0.decideLive(header, update: update, attributes: { priorities, eligible in
                guard let flags, let prios else { return }
                for j in 0..<min(jobCount, priorities.count, eligible.count) {
                    priorities[j] = Int(prios[j])
                    eligible[j] = flags[j] != 0
                }
            }, config: current, topology: layouts, settings: settings, clock: monotonicNanoseconds)
        }
        deliver(decision, to: out)
        if decision.resync { out.pointee.flags |= TOPO_PREEMPT_DECISION_RESYNC }
        return 0
    }

    /// Logs the decision's lines and writes it for the C side.
    static func deliver(_ decision: PreemptDecision, to out: UnsafeMutablePointer<topo_preempt_decision_t>) {
        for line in decision.log {
            switch line.level {
            case .info: SlurmLog.info(line.text)
            case .verbose: SlurmLog.verbose(line.text)
            case .debug: SlurmLog.debug(line.text)
            }
        }
        DecisionLog.shared.append(decision.records)
        write(decision.action, to: out)
        out.pointee.planned = decision.newPlan ? 1 : 0
        out.pointee.flags = decision.inconsistent ? TOPO_PREEMPT_DECISION_INCONSISTENT : 0
        let targets = decision.targetNodes.count <= Int(TOPO_PREEMPT_MAX_TARGETS) ? decision.targetNodes : []
        out.pointee.target_count = UInt32(targets.count)
        withUnsafeMutableBytes(of: &out.pointee.target_nodes) { buffer in
            let slots = buffer.bindMemory(to: UInt32.self)
            for (i, node) in targets.enumerated() where i < slots.count { slots[i] = UInt32(clamping: node) }
        }
    }

    static func write(_ action: PreemptAction, to out: UnsafeMutablePointer<topo_preempt_decision_t>) {
        var victims: [UInt32] = []
        switch action {
        case .basePolicy: out.pointee.action = Int32(TOPO_PREEMPT_BASE_POLICY)
        case .noVictims: out.pointee.action = Int32(TOPO_PREEMPT_NO_VICTIMS)
        case let .onlyVictims(list):
            out.pointee.action = Int32(TOPO_PREEMPT_ONLY_VICTIMS)
            victims = list
        case let .victimsFirst(list):
            out.pointee.action = Int32(TOPO_PREEMPT_VICTIMS_FIRST)
            victims = list
        }
        if victims.count > Int(TOPO_PREEMPT_MAX_VICTIMS) {
            SlurmLog.info("\(type): plan has \(victims.count) victims, more than \(TOPO_PREEMPT_MAX_VICTIMS); base policy")
            out.pointee.action = Int32(TOPO_PREEMPT_BASE_POLICY)
            victims = []
        }
        out.pointee.victim_count = UInt32(victims.count)
        withUnsafeMutableBytes(of: &out.pointee.victims) { buffer in
            let slots = buffer.bindMemory(to: UInt32.self)
            for (i, id) in victims.enumerated() where i < slots.count { slots[i] = id }
        }
    }

    enum ReadResult {
        case success(ControllerSnapshot)
        case failure(String)
    }

    /// Limits far above any real cluster: counts beyond them mean a corrupted snapshot.
    static let maxNodes = 1 << 20
    static let maxJobs = 1 << 24

    /// Copies the C snapshot into Swift values; every count and index is checked.
    static func read(_ s: topo_preempt_snapshot_t) -> ReadResult {
        if let problem = arrayProblem(s) { return .failure(problem) }
        let nodeCount = Int(s.node_count), jobCount = Int(s.job_count)
        var nodes: [ControllerSnapshot.Node] = []
        nodes.reserveCapacity(nodeCount)
        for i in 0..<nodeCount {
            guard let node = s.nodes?[i] else { return .failure("node \(i) missing") }
            nodes.append(readNode(node, i))
        }
        var jobs: [ControllerSnapshot.Job] = []
        jobs.reserveCapacity(jobCount)
        for j in 0..<jobCount {
            guard let job = s.jobs?[j] else { return .failure("job \(j) missing") }
            let allocations: [ControllerSnapshot.Job.Allocation]
            switch readAllocations(job, s) {
            case let .success(value): allocations = value
            case let .failure(message): return .failure(message)
            }
            jobs.append(.init(id: job.job_id, basePriority: Int(job.base_prio), eligible: job.eligible != 0,
                              startTime: job.start_time, allocations: allocations,
                              draining: job.flags & TOPO_PREEMPT_JOB_DRAINING != 0))
        }
        let preemptor: ControllerSnapshot.Preemptor
        switch readPreemptor(s.preemptor, nodeCount: nodeCount) {
        case let .success(value): preemptor = value
        case let .failure(message): return .failure(message)
        }
        return .success(ControllerSnapshot(time: s.now, exemptSeconds: Int64(s.exempt_seconds), nodes: nodes, jobs: jobs,
                                           preemptor: preemptor, pendingOwners: owners(s),
                                           slurm: SlurmRelease(versionNumber: s.slurm_version)))
    }

    enum LiveReadResult {
        case success((ControllerSnapshot, LiveUpdate))
        case failure(String)
    }

    /// Reads a slot snapshot: the header (time, preemptor, owners) and what changed; every
    /// count and index is checked, and only the dirty slots' allocations and the dirty nodes'
    /// names are read.
    static func readLive(_ s: topo_preempt_snapshot_t) -> LiveReadResult {
        if let problem = arrayProblem(s) { return .failure(problem) }
        let nodeCount = Int(s.node_count), jobCount = Int(s.job_count)
        guard s.dirty_job_count == TOPO_PREEMPT_DIRTY_ALL || s.dirty_job_count == 0 || s.dirty_jobs != nil,
              s.dirty_node_count == TOPO_PREEMPT_DIRTY_ALL || s.dirty_node_count == 0 || s.dirty_nodes != nil,
              jobCount == 0 || (s.slot_eligible != nil && s.slot_base_prio != nil)
        else { return .failure("missing arrays") }
        let allNodes = s.dirty_node_count == TOPO_PREEMPT_DIRTY_ALL, allJobs = s.dirty_job_count == TOPO_PREEMPT_DIRTY_ALL
        guard allNodes || Int(s.dirty_node_count) <= maxNodes, allJobs || Int(s.dirty_job_count) <= maxJobs else {
            return .failure("dirty lists out of range (nodes \(s.dirty_node_count), jobs \(s.dirty_job_count))")
        }
        var nodes: [(index: Int, node: ControllerSnapshot.Node)] = []
        let nodeList = allNodes ? nodeCount : Int(s.dirty_node_count)
        nodes.reserveCapacity(nodeList)
        for k in 0..<nodeList {
            let i = allNodes ? k : Int(s.dirty_nodes?[k] ?? UInt32.max)
            guard i < nodeCount, let node = s.nodes?[i] else { return .failure("dirty node index \(i) of \(nodeCount)") }
            nodes.append((i, readNode(node, i)))
        }
        var slots: [(slot: Int, job: LiveSlot?)] = []
        let jobList = allJobs ? jobCount : Int(s.dirty_job_count)
        slots.reserveCapacity(jobList)
        for k in 0..<jobList {
            // Dirty slots beyond the count were emptied: the count says so.
            let j = allJobs ? k : Int(s.dirty_jobs?[k] ?? UInt32.max)
            guard j < jobCount else { continue }
            guard let job = s.jobs?[j] else { return .failure("job slot \(j) missing") }
            guard job.alloc_count > 0 else {
                slots.append((j, nil))
                continue
            }
            let allocations: [ControllerSnapshot.Job.Allocation]
            switch readAllocations(job, s) {
            case let .success(value): allocations = value
            case let .failure(message): return .failure(message)
            }
            slots.append((j, LiveSlot(id: job.job_id, startTime: job.start_time,
                                      draining: job.flags & TOPO_PREEMPT_JOB_DRAINING != 0, allocations: allocations)))
        }
        let preemptor: ControllerSnapshot.Preemptor
        switch readPreemptor(s.preemptor, nodeCount: nodeCount) {
        case let .success(value): preemptor = value
        case let .failure(message): return .failure(message)
        }
        let header = ControllerSnapshot(time: s.now, exemptSeconds: Int64(s.exempt_seconds), nodes: [], jobs: [],
                                        preemptor: preemptor, pendingOwners: owners(s), slurm: SlurmRelease(versionNumber: s.slurm_version))
        let update = LiveUpdate(epoch: s.epoch, sequence: s.sequence, everything: allNodes && allJobs, nodeCount: nodeCount,
                                slotCount: jobCount, nodes: nodes, slots: slots)
        return .success((header, update))
    }

    /// What is wrong with a snapshot's counts and arrays of either format, or nil.
    static func arrayProblem(_ s: topo_preempt_snapshot_t) -> String? {
        let nodeCount = Int(s.node_count), jobCount = Int(s.job_count), allocCount = Int(s.alloc_count)
        guard nodeCount <= maxNodes, jobCount <= maxJobs, allocCount <= maxJobs * 4 else {
            return "counts out of range (nodes \(nodeCount), jobs \(jobCount), allocations \(allocCount))"
        }
        guard nodeCount == 0 || s.nodes != nil, jobCount == 0 || s.jobs != nil, allocCount == 0 || s.allocs != nil,
              s.owner_count == 0 || s.pending_owners != nil
        else { return "missing arrays" }
        return nil
    }

    enum AllocationsResult {
        case success([ControllerSnapshot.Job.Allocation])
        case failure(String)
    }

    /// A job's allocations, each checked against the snapshot's counts.
    static func readAllocations(_ job: topo_preempt_job_t, _ s: topo_preempt_snapshot_t) -> AllocationsResult {
        let allocCount = Int(s.alloc_count), nodeCount = Int(s.node_count)
        let first = Int(job.alloc_first), count = Int(job.alloc_count)
        guard first <= allocCount, count <= allocCount - first else {
            return .failure("job \(job.job_id): allocations \(first)+\(count) beyond \(allocCount)")
        }
        var allocations: [ControllerSnapshot.Job.Allocation] = []
        allocations.reserveCapacity(count)
        for a in first..<(first + count) {
            guard let allocation = s.allocs?[a] else { return .failure("allocation \(a) missing") }
            guard Int(allocation.node) < nodeCount else {
                return .failure("job \(job.job_id): node index \(allocation.node) of \(nodeCount)")
            }
            allocations.append(.init(node: Int(allocation.node), gpus: GPUSet(mask: allocation.gpus)))
        }
        return .success(allocations)
    }

    static func readNode(_ node: topo_preempt_node_t, _ i: Int) -> ControllerSnapshot.Node {
        // A removed node (slurmctld keeps its slot empty) has no name: it takes no part.
        let name = node.name.flatMap { CStrings.read($0, limit: 256) } ?? ""
        let count = name.isEmpty ? 0 : Int(node.gpu_count)
        return .init(name: name.isEmpty ? "#\(i)" : name, available: node.available != 0 && !name.isEmpty,
                     gpuCount: count <= GPUSet.capacity ? count : -1, allocated: GPUSet(mask: node.allocated))
    }

    static func owners(_ s: topo_preempt_snapshot_t) -> Set<UInt32> {
        var owners = Set<UInt32>()
        for i in 0..<Int(min(s.owner_count, UInt32(PreemptController.maxKept))) {
            if let id = s.pending_owners?[i] { owners.insert(id) }
        }
        return owners
    }

    enum PreemptorResult {
        case success(ControllerSnapshot.Preemptor)
        case failure(String)
    }

    static func readPreemptor(_ r: topo_preempt_request_t, nodeCount: Int) -> PreemptorResult {
        var candidates: [Int]?
        if r.candidate_count != UInt32.max {
            guard Int(r.candidate_count) <= nodeCount, r.candidate_count == 0 || r.candidate_nodes != nil else {
                return .failure("candidate node list of \(r.candidate_count) for \(nodeCount) nodes")
            }
            var list: [Int] = []
            list.reserveCapacity(Int(r.candidate_count))
            for i in 0..<Int(r.candidate_count) {
                guard let node = r.candidate_nodes?[i], Int(node) < nodeCount else {
                    return .failure("candidate node index out of range")
                }
                list.append(Int(node))
            }
            candidates = list
        }
        guard r.required_count <= r.node_count, Int(r.required_count) <= nodeCount,
              r.required_count == 0 || r.required_nodes != nil else {
            return .failure("required node list of \(r.required_count) for a job of \(r.node_count) nodes")
        }
        var required: [Int] = []
        for i in 0..<Int(r.required_count) {
            guard let node = r.required_nodes?[i], Int(node) < nodeCount else {
                return .failure("required node index out of range")
            }
            required.append(Int(node))
        }
        return .success(ControllerSnapshot.Preemptor(
            id: r.job_id, basePriority: Int(r.base_prio), jobPriority: Int(r.job_prio),
            gpusPerNode: r.gpus_per_node <= UInt32(GPUSet.capacity) ? Int(r.gpus_per_node) : 0,
            nodeCount: Int(min(r.node_count, UInt32(nodeCount > 0 ? nodeCount : 1))), perSocket: r.per_socket != 0,
            cpusPerNode: Int(min(r.cpus_per_node, 1 << 16)),
            adminComment: r.admin_comment.flatMap { CStrings.read($0, limit: 8192) },
            partitions: SubmittedJob.partitionList(r.partition.flatMap { CStrings.read($0, limit: 4096) }),
            qos: r.qos.flatMap { CStrings.read($0, limit: 256) }, candidateNodes: candidates,
            requiredNodes: required, segmentSize: Int(min(r.segment_size, UInt32(UInt16.max))),
            segmentPlacement: SegmentPlacement(rawValue: r.segment_flags & (TOPO_PREEMPT_SEGMENTS_CONSOLIDATE | TOPO_PREEMPT_SEGMENTS_SPREAD))))
    }

    /// A job Slurm preempts now: recorded, and its provenance (and its preemptor's) written for
    /// the C side to put in the jobs' SystemComment.
    static func victim(_ v: topo_preempt_victim_t, _ out: UnsafeMutablePointer<topo_preempt_provenance_t>) -> Int32 {
        ensureLoaded()
        let cap = Int(TOPO_PREEMPT_COMMENT_MAX)
        out.pointee = topo_preempt_provenance_t()
        var gpus: [DecisionRecord.Target] = []
        if let names = v.node_names, let masks = v.gpus {
            for i in 0..<Int(min(v.alloc_count, 64)) {
                guard let name = CStrings.read(names[i], limit: 256) else { continue }
                gpus.append(.init(node: name, gpus: GPUSet(mask: masks[i])))
            }
        }
        let preemption = PreemptController.Preemption(
            victim: v.victim_id, preemptor: v.preemptor_id, time: v.time, startTime: v.start_time,
            mode: v.mode.flatMap { CStrings.read($0, limit: 64) } ?? "?", gpus: gpus)
        let (current, _, _) = decisionInputs()
        let provenance = controller.withLock {
            $0.preempted(preemption, basePolicy: (current?.basePolicy ?? .partitionPriority).rawValue)
        }
        SlurmLog.verbose("\(PreemptController.prefix) \(provenance.record.message)")
        DecisionLog.shared.append([provenance.record])
        func read(_ p: UnsafePointer<CChar>?) -> String? { p.flatMap { CStrings.read($0, limit: 8192) } }
        let victimSystem = PreemptController.systemComment(replacing: read(v.victim_system_comment), with: provenance.victimText,
                                                           limit: cap - 1)
        let victimAdmin = AdminCommentTag.recording(provenance.victimTag, in: read(v.victim_admin_comment))
        withUnsafeMutableBytes(of: &out.pointee.victim_system) { copy(victimSystem, to: $0) }
        withUnsafeMutableBytes(of: &out.pointee.victim_admin) { copy(victimAdmin, to: $0) }
        if !provenance.preemptorText.isEmpty {
            let system = PreemptController.systemComment(replacing: read(v.preemptor_system_comment), with: provenance.preemptorText,
                                                         limit: cap - 1)
            let admin = AdminCommentTag.recording(provenance.preemptorTag, in: read(v.preemptor_admin_comment))
            withUnsafeMutableBytes(of: &out.pointee.preemptor_system) { copy(system, to: $0) }
            withUnsafeMutableBytes(of: &out.pointee.preemptor_admin) { copy(admin, to: $0) }
        }
        return 0
    }

    /// `text` into a C buffer, NUL-terminated; a text that does not fit is not written (the
    /// buffer stays empty: the job's field is left as it is, never cut).
    static func copy(_ text: String, to buffer: UnsafeMutableRawBufferPointer) {
        let bytes = text.utf8
        guard bytes.count < buffer.count, !bytes.contains(0) else { return }
        for (i, byte) in bytes.enumerated() { buffer[i] = byte }
        buffer[bytes.count] = 0
    }

    /// The C plugin's counters as a `stats` record.
    static func recordStats(_ r: topo_preempt_stats_record_t) {
        configureLog(config)
        var stats = DecisionRecord.PluginStats()
        stats.decisions = r.stats.decisions
        stats.kept = r.stats.kept
        stats.partial = r.stats.partial
        stats.full = r.stats.full
        stats.disagreements = r.stats.disagreements
        let names = ["start", "reconfigure", "period", "disagreement", "overflow"]
        withUnsafeBytes(of: r.stats.rebuilds) { raw in
            for (i, count) in raw.bindMemory(to: UInt64.self).enumerated() where i < names.count { stats.rebuilds[names[i]] = count }
        }
        stats.indexedJobs = UInt64(r.stats.indexed_jobs)
        stats.indexedGPUJobs = UInt64(r.stats.indexed_gpu_jobs)
        stats.p50Microseconds = r.p50_us
        stats.p99Microseconds = r.p99_us
        stats.maxMicroseconds = r.max_us
        stats.sumMicroseconds = r.stats.decide_ns / 1000
        withUnsafeBytes(of: r.buckets) { raw in
            for (i, count) in raw.bindMemory(to: UInt64.self).enumerated() { stats.buckets.append((UInt64(1) << (4 + UInt64(i)), count)) }
        }
        var record = DecisionRecord(.stats, time: Int64(time(nil)), job: 0,
                                    message: "since start: \(stats.decisions) decisions, deciding p50 \(stats.p50Microseconds)us p99 \(stats.p99Microseconds)us")
        record.stats = stats
        DecisionLog.shared.append([record])
    }

    /// A fallback the C side decided, as a record.
    static func recordFallback(_ job: UInt32, reason: String, message: String) {
        configureLog(config)
        DecisionLog.shared.append([DecisionRecord(.fallback, time: Int64(time(nil)), job: job, message: message, reason: reason)])
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(max(0, ts.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, ts.tv_nsec))
    }
}

// MARK: - C entry points (declared in CSlurmShim/include/topo_preempt_abi.h)

@_cdecl("TopoAwareSwift_preemptSettings")
public func topoAwareSwiftPreemptSettings(_ settings: UnsafeMutablePointer<topo_preempt_settings_t>?) -> Int32 {
    guard let settings else { return -1 }
    return PreemptPlugin.settings(settings)
}

@_cdecl("TopoAwareSwift_preemptPlanOwners")
public func topoAwareSwiftPreemptPlanOwners(_ ids: UnsafeMutablePointer<UInt32>?, _ max: UInt32) -> UInt32 {
    PreemptPlugin.planOwners(ids, max: max)
}

@_cdecl("TopoAwareSwift_preemptIsPreemptor")
public func topoAwareSwiftPreemptIsPreemptor(_ adminComment: UnsafePointer<CChar>?, _ partition: UnsafePointer<CChar>?,
                                             _ qos: UnsafePointer<CChar>?) -> Int32 {
    PreemptPlugin.isPreemptor(adminComment: adminComment, partition: partition, qos: qos)
}

@_cdecl("TopoAwareSwift_preemptDecide")
public func topoAwareSwiftPreemptDecide(_ snapshot: UnsafePointer<topo_preempt_snapshot_t>?,
                                        _ decision: UnsafeMutablePointer<topo_preempt_decision_t>?) -> Int32 {
    guard let snapshot, let decision else { return -1 }
    return PreemptPlugin.decide(snapshot, decision)
}

@_cdecl("TopoAwareSwift_preemptVictim")
public func topoAwareSwiftPreemptVictim(_ victim: UnsafePointer<topo_preempt_victim_t>?,
                                        _ out: UnsafeMutablePointer<topo_preempt_provenance_t>?) -> Int32 {
    guard let victim, let out else { return -1 }
    return PreemptPlugin.victim(victim.pointee, out)
}

@_cdecl("TopoAwareSwift_preemptRecordStats")
public func topoAwareSwiftPreemptRecordStats(_ raw: UnsafePointer<topo_preempt_stats_record_t>?) {
    guard let raw else { return }
    PreemptPlugin.recordStats(raw.pointee)
}

@_cdecl("TopoAwareSwift_preemptRecordFallback")
public func topoAwareSwiftPreemptRecordFallback(_ job: UInt32, _ reason: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?) {
    PreemptPlugin.recordFallback(job, reason: CStrings.read(reason, limit: 64) ?? "?", message: CStrings.read(message, limit: 1024) ?? "")
}

@_cdecl("TopoAwareSwift_preemptReset")
public func topoAwareSwiftPreemptReset() {
    PreemptPlugin.reset()
}
