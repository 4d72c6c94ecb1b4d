import CSlurmClient
import Glibc
import SlurmStrings
import TopoEngine

/// Reads the live cluster through libslurm's client API, for the command-line tool only.
///
/// Its own module so that no plugin links it: these calls are RPCs to slurmctld and slurmdbd,
/// and a plugin hook runs with slurmctld's locks held, so a call back to the controller would
/// deadlock. The `topo-preempt` executable links libslurm; the plugins link only SlurmBridge.
public enum SlurmClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What was read, and what could not be made sense of (a GRES string that does not parse).
    public struct Reading: Sendable {
        public var state: LiveState
        /// SlurmUser's uid, from the controller's configuration (who may requeue any job).
        public var slurmUserID: UInt32
        public var warnings: [String]
    }

    /// Loads the controller's preemption settings, nodes (with their GPUs), partitions and jobs
    /// (with GRES detail), and with `qos` the QOS records of slurmdbd; copied into Swift values.
    public static func load(qos: Bool) throws(Failure) -> Reading {
        slurm_init(nil)
        var confPointer: UnsafeMutablePointer<slurm_conf_t>?
        var jobsPointer: UnsafeMutablePointer<job_info_msg_t>?
        var nodesPointer: UnsafeMutablePointer<node_info_msg_t>?
        var partitionsPointer: UnsafeMutablePointer<partition_info_msg_t>?
        defer {
            if let confPointer { CSlurmClient_free_ctl_conf(confPointer) }
            if let jobsPointer { slurm_free_job_info_msg(jobsPointer) }
            if let nodesPointer { slurm_free_node_info_msg(nodesPointer) }
            if let partitionsPointer { slurm_free_partition_info_msg(partitionsPointer) }
        }
        guard slurm_load_ctl_conf(0, &confPointer) == SLURM_SUCCESS, let conf = confPointer?.pointee else {
            throw Failure(description: "slurm_load_ctl_conf: \(errorText())")
        }
        // SHOW_DETAIL: slurmctld packs a node's GresUsed (the allocated GPU indices) only then.
        guard slurm_load_node(0, &nodesPointer, CSlurmClient_show_flags(1)) == SLURM_SUCCESS,
              let nodesMessage = nodesPointer?.pointee
        else {
            throw Failure(description: "slurm_load_node: \(errorText())")
        }
        guard slurm_load_partitions(0, &partitionsPointer, CSlurmClient_show_flags(0)) == SLURM_SUCCESS,
              let partitionsMessage = partitionsPointer?.pointee
        else {
            throw Failure(description: "slurm_load_partitions: \(errorText())")
        }
        guard slurm_load_jobs(0, &jobsPointer, CSlurmClient_show_flags(1)) == SLURM_SUCCESS, let jobsMessage = jobsPointer?.pointee else {
            throw Failure(description: "slurm_load_jobs: \(errorText())")
        }
        var warnings: [String] = []

        let nodeCount = Int(nodesMessage.record_count)
        var nodes: [LiveState.Node] = []
        var withoutUsage: [Int] = []
        nodes.reserveCapacity(nodeCount)
        for i in 0..<nodeCount {
            guard let record = nodesMessage.node_array?[i] else { continue }
            let name = CStrings.read(record.name) ?? "?"
            var gpuCount = 0
            var allocated = GPUSet()
            do {
                gpuCount = try GresString.parse(CStrings.read(record.gres) ?? "").filter { $0.name == "gpu" }.reduce(0) { $0 + $1.count }
                if let used = CStrings.read(record.gres_used) {
                    allocated = try GresString.parse(used).filter { $0.name == "gpu" }.reduce(GPUSet()) { $0.union($1.indices ?? GPUSet()) }
                } else if gpuCount > 0 {
                    withoutUsage.append(nodes.count)
                }
            } catch {
                warnings.append("node \(name): GRES \(error)")
            }
            nodes.append(.init(name: name, available: CSlurmClient_node_unavailable(record.node_state) == 0,
                               gpuCount: gpuCount, allocated: allocated))
        }

        var partitions: [LiveState.Partition] = []
        for i in 0..<Int(partitionsMessage.record_count) {
            guard let record = partitionsMessage.partition_array?[i] else { continue }
            partitions.append(.init(name: CStrings.read(record.name) ?? "?", priorityTier: Int(record.priority_tier),
                                    preemptMode: record.preempt_mode == UInt16(NO_VAL16) ? nil : preemptMode(record.preempt_mode),
                                    nodeIndices: indexPairs(record.node_inx, nodeCount: nodeCount)))
        }

        var jobs: [LiveState.Job] = []
        for i in 0..<Int(jobsMessage.record_count) {
            guard let record = jobsMessage.job_array?[i] else { continue }
            let base = record.job_state & UInt32(JOB_STATE_BASE)
            let state: LiveState.Job.State = base == UInt32(JOB_PENDING.rawValue) ? .pending
                : (base == UInt32(JOB_RUNNING.rawValue) ? .running : .other)
            var detail: [String] = []
            if let strings = record.gres_detail_str {
                for d in 0..<Int(record.gres_detail_cnt) { detail.append(CStrings.read(strings[d]) ?? "") }
            }
            jobs.append(.init(
                id: record.job_id, name: CStrings.read(record.name, limit: 256), state: state,
                partition: CStrings.read(record.partition), qos: CStrings.read(record.qos, limit: 256),
                adminComment: CStrings.read(record.admin_comment), priority: Int(record.priority),
                startTime: Int64(record.start_time), preempted: record.preempt_time != 0,
                nodeIndices: indexPairs(record.node_inx, nodeCount: nodeCount), gresDetail: detail,
                tresPerNode: CStrings.read(record.tres_per_node), tresPerSocket: CStrings.read(record.tres_per_socket),
                tresPerJob: CStrings.read(record.tres_per_job),
                socketsPerNode: record.sockets_per_node == UInt16(NO_VAL16) || record.sockets_per_node == 0
                    ? nil : Int(record.sockets_per_node),
                numNodes: Int(max(1, min(record.num_nodes, 1_000_000))), numCPUs: Int(max(1, min(record.num_cpus, 1_000_000))),
                requiredNodeIndices: indexPairs(record.req_node_inx, nodeCount: nodeCount),
                excludedNodeIndices: indexPairs(record.exc_node_inx, nodeCount: nodeCount), userID: record.user_id))
            jobs[jobs.count - 1].stateName = Self.stateNames[base] ?? "UNKNOWN"
            jobs[jobs.count - 1].systemComment = CStrings.read(record.system_comment)
            jobs[jobs.count - 1].submitTime = record.submit_time > 0 ? Int64(record.submit_time) : nil
            jobs[jobs.count - 1].segmentSize = Int(min(withUnsafePointer(to: record) { CSlurmClient_job_segment_size($0) }, UInt32(UInt16.max)))
            jobs[jobs.count - 1].segmentPlacement = SegmentPlacement(rawValue: withUnsafePointer(to: record) { CSlurmClient_job_segment_flags($0) })
        }
        // A node slurmctld sent without GresUsed: its allocated GPUs are those its jobs hold.
        for n in withoutUsage {
            for job in jobs where job.state == .running {
                for (position, node) in job.nodeIndices.enumerated() where node == n {
                    nodes[n].allocated = nodes[n].allocated.union(job.gpus(atPosition: position) ?? GPUSet())
                }
            }
            warnings.append("node \(nodes[n].name): slurmctld sent no GresUsed; allocated GPUs taken from its running jobs")
        }
        let exempt = conf.preempt_exempt_time
        let reported = CStrings.read(conf.version, limit: 64)
        let release = reported.flatMap(SlurmRelease.init) ?? built
        if reported.flatMap(SlurmRelease.init) == nil {
            warnings.append("slurmctld reports no readable version ('\(reported ?? "")'); modelling Slurm \(built), this tool's build")
        }
        let preemptParameters = confPointer.flatMap { CStrings.read(CSlurmClient_preempt_params($0)) }
        let state = LiveState(jobs: jobs, nodes: nodes, partitions: partitions, qos: qos ? try loadQOS() : [],
                              preemptMode: preemptMode(conf.preempt_mode),
                              exemptSeconds: exempt == UInt32(INFINITE) || exempt == UInt32(NO_VAL) ? 0 : Int64(exempt),
                              time: Int64(time(nil)), slurm: release,
                              stock: StockSettings(schedulerParameters: CStrings.read(conf.sched_params),
                                                   preemptParameters: preemptParameters,
                                                   release: release))
        return Reading(state: state, slurmUserID: conf.slurm_user_id, warnings: warnings)
    }

    /// The QOS records of slurmdbd (what `sacctmgr show qos` lists).
    static func loadQOS() throws(Failure) -> [LiveState.QOS] {
        var records: UnsafeMutablePointer<CSlurmClient_qos_t>?
        var count: UInt32 = 0
        guard CSlurmClient_load_qos(&records, &count) == 0 else {
            throw Failure(description: "QOS records from slurmdbd: \(errorText())")
        }
        defer { CSlurmClient_free_qos(records, count) }
        var qos: [LiveState.QOS] = []
        for i in 0..<Int(count) {
            guard let record = records?[i] else { continue }
            let preempts = (CStrings.read(record.preempts) ?? "").split(separator: ",").map(String.init)
            qos.append(.init(name: CStrings.read(record.name) ?? "?", priority: Int(record.priority), preempts: preempts,
                             preemptMode: record.preempt_mode == 0 ? nil : preemptMode(record.preempt_mode)))
        }
        return qos
    }

    /// Slurm's PreemptMode bits (slurm.h PREEMPT_MODE_*) as the engine's value.
    static func preemptMode(_ bits: UInt16) -> LiveState.PreemptMode {
        let within = bits & UInt16(PREEMPT_MODE_WITHIN) != 0
        let priorityFlag = CSlurmClient_preempt_mode_priority()
        let priority = priorityFlag != 0 && bits & priorityFlag != 0
        let action: LiveState.PreemptMode.Action =
            if bits & UInt16(PREEMPT_MODE_CANCEL) != 0 { .cancel }
            else if bits & UInt16(PREEMPT_MODE_REQUEUE) != 0 { .requeue }
            else if bits & UInt16(PREEMPT_MODE_SUSPEND) != 0 { .suspend }
            else { .off }
        return .init(action, within: within, priority: priority)
    }

    /// The Slurm release this tool is built against (its libslurm).
    public static var built: SlurmRelease { SlurmRelease(versionNumber: CSlurmClient_slurm_version()) }

    /// The TRES form of the Slurm release this tool is built for (`gres/` from 23.02).
    public static var tresSyntax: TRESSyntax {
        TRESSyntax(gresPrefix: String(cString: CSlurmClient_tres_gres_prefix())) ?? .slash
    }

    /// `scontrol requeue ID`: Slurm checks the caller's rights (owner, operator or admin).
    /// Slurm's names of the base job states (slurm.h `job_states`), as squeue prints them.
    static let stateNames: [UInt32: String] = [
        UInt32(JOB_PENDING.rawValue): "PENDING", UInt32(JOB_RUNNING.rawValue): "RUNNING",
        UInt32(JOB_SUSPENDED.rawValue): "SUSPENDED", UInt32(JOB_COMPLETE.rawValue): "COMPLETED",
        UInt32(JOB_CANCELLED.rawValue): "CANCELLED", UInt32(JOB_FAILED.rawValue): "FAILED",
        UInt32(JOB_TIMEOUT.rawValue): "TIMEOUT", UInt32(JOB_NODE_FAIL.rawValue): "NODE_FAIL",
        UInt32(JOB_PREEMPTED.rawValue): "PREEMPTED", UInt32(JOB_BOOT_FAIL.rawValue): "BOOT_FAIL",
        UInt32(JOB_DEADLINE.rawValue): "DEADLINE", UInt32(JOB_OOM.rawValue): "OUT_OF_MEMORY",
    ]

    public static func requeue(_ id: UInt32) throws(Failure) {
        slurm_init(nil)
        guard CSlurmClient_requeue(id, 0) == SLURM_SUCCESS else {
            throw Failure(description: "requeue of job \(id) refused by Slurm: \(errorText())")
        }
    }

    /// Slurm's `node_inx` (pairs ending with -1), read at most 2 x nodeCount + 1 entries deep.
    static func indexPairs(_ pointer: UnsafeMutablePointer<Int32>?, nodeCount: Int) -> [Int] {
        guard let pointer else { return [] }
        var pairs: [Int32] = []
        var i = 0
        while i < 2 * nodeCount + 1 {
            let value = pointer[i]
            pairs.append(value)
            if value < 0 { break }
            i += 1
        }
        return LiveState.expandIndexPairs(pairs, nodeCount: nodeCount)
    }

    static func errorText() -> String {
        String(cString: CSlurmClient_error_text())
    }
}
