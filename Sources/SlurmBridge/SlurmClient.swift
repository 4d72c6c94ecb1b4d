import CSlurmShim
import Glibc
import TopoEngine

/// Reads the live cluster through libslurm's client API, for the command-line tool.
///
/// Never call this from a plugin hook: slurmctld holds its locks there, and these RPCs go back
/// to slurmctld itself. The plugins leave these symbols unresolved and never reach them; the
/// `topo-preempt` executable links libslurm.
public enum SlurmClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Loads jobs (with GRES detail), nodes and partitions, copied into Swift values.
    public static func load() throws(Failure) -> LiveState {
        slurm_init(nil)
        var jobsPointer: UnsafeMutablePointer<job_info_msg_t>?
        var nodesPointer: UnsafeMutablePointer<node_info_msg_t>?
        var partitionsPointer: UnsafeMutablePointer<partition_info_msg_t>?
        defer {
            if let jobsPointer { slurm_free_job_info_msg(jobsPointer) }
            if let nodesPointer { slurm_free_node_info_msg(nodesPointer) }
            if let partitionsPointer { slurm_free_partition_info_msg(partitionsPointer) }
        }
        let flags = UInt16(SHOW_ALL | SHOW_DETAIL)
        guard slurm_load_node(0, &nodesPointer, UInt16(SHOW_ALL)) == SLURM_SUCCESS, let nodesMessage = nodesPointer?.pointee else {
            throw Failure(description: "slurm_load_node: \(errorText())")
        }
        guard slurm_load_partitions(0, &partitionsPointer, UInt16(SHOW_ALL)) == SLURM_SUCCESS,
              let partitionsMessage = partitionsPointer?.pointee
        else {
            throw Failure(description: "slurm_load_partitions: \(errorText())")
        }
        guard slurm_load_jobs(0, &jobsPointer, flags) == SLURM_SUCCESS, let jobsMessage = jobsPointer?.pointee else {
            throw Failure(description: "slurm_load_jobs: \(errorText())")
        }

        let nodeCount = Int(nodesMessage.record_count)
        var nodes: [LiveState.Node] = []
        nodes.reserveCapacity(nodeCount)
        for i in 0..<nodeCount {
            guard let record = nodesMessage.node_array?[i] else { continue }
            nodes.append(.init(name: CStrings.read(record.name) ?? "?",
                               available: CSlurmShim_node_unavailable(record.node_state) == 0))
        }

        var partitions: [LiveState.Partition] = []
        for i in 0..<Int(partitionsMessage.record_count) {
            guard let record = partitionsMessage.partition_array?[i] else { continue }
            let mode = record.preempt_mode
            partitions.append(.init(name: CStrings.read(record.name) ?? "?", priorityTier: Int(record.priority_tier),
                                    preemptable: mode == UInt16(NO_VAL16) || (mode & ~UInt16(PREEMPT_MODE_GANG)) != UInt16(PREEMPT_MODE_OFF),
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
                partition: CStrings.read(record.partition), adminComment: CStrings.read(record.admin_comment),
                startTime: Int64(record.start_time), nodeIndices: indexPairs(record.node_inx, nodeCount: nodeCount),
                gresDetail: detail, tresPerNode: CStrings.read(record.tres_per_node),
                tresPerSocket: CStrings.read(record.tres_per_socket),
                socketsPerNode: record.sockets_per_node == UInt16(NO_VAL16) || record.sockets_per_node == 0
                    ? nil : Int(record.sockets_per_node),
                numNodes: Int(max(1, min(record.num_nodes, 1_000_000))), numCPUs: Int(max(1, min(record.num_cpus, 1_000_000))),
                requiredNodeIndices: indexPairs(record.req_node_inx, nodeCount: nodeCount)))
            jobs[jobs.count - 1].userID = record.user_id
        }
        return LiveState(jobs: jobs, nodes: nodes, partitions: partitions, time: Int64(time(nil)))
    }

    /// SlurmUser's uid, from the controller's configuration.
    public static func slurmUserID() throws(Failure) -> UInt32 {
        slurm_init(nil)
        var pointer: UnsafeMutablePointer<slurm_conf_t>?
        guard slurm_load_ctl_conf(0, &pointer) == SLURM_SUCCESS, let conf = pointer?.pointee else {
            throw Failure(description: "slurm_load_ctl_conf: \(errorText())")
        }
        defer { slurm_free_ctl_conf(pointer) }
        return conf.slurm_user_id
    }

    /// `scontrol requeue ID`: Slurm checks the caller's rights (owner, operator or admin).
    public static func requeue(_ id: UInt32) throws(Failure) {
        slurm_init(nil)
        guard slurm_requeue(id, 0) == SLURM_SUCCESS else {
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
        String(cString: slurm_strerror(slurm_get_errno()))
    }
}
