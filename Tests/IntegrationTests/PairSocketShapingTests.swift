import Foundation
import Testing
import TopoEngine

/// Misaligned starts below the socket (issue 16): a guaranteed job that fits at once on free
/// GPUs split across NVLink groups starts there without any preemption hook being asked
/// (`_run_now` tries the current usage first). job_submit/topo_aware prevents it only by
/// shaping the request to one Slurm socket, so it can where each group is a socket of its own:
/// here NVLink pairs with one socket per pair, as `SlurmdParameters=numa_node_as_socket` makes
/// of a machine with one NUMA node per GPU pair. Before (ShapeRequests=no)
/// the job starts at once on the split free GPUs; after (shaped), preempt/topo_aware frees a
/// pair with one victim.
enum PairSocketShaping {
    /// Fills node1 with eight 1-GPU batch jobs, ends those on GPUs 1 and 2 (one GPU free in each
    /// of the pairs 0-1 and 2-3), then starts a 2-GPU infer job.
    static func run(on cluster: Cluster, shaping: Bool) throws -> (placed: GPUSet?, victims: [String], infer: String, batch: [String], log: [String]) {
        var batch: [String] = []
        try cluster.finishingOnError(&batch) { batch in
            for _ in 0..<8 { batch.append(try cluster.start("batch", gpus: 1)) }
        }
        let layout = try batch.map { try #require(try cluster.gpuIndices($0), "job \($0) has no GPUs") }
        let ended = zip(batch, layout).filter { $0.1 == GPUSet([1]) || $0.1 == GPUSet([2]) }.map(\.0)
        try #require(ended.count == 2, "GPUs of the fill: \(layout.map(\.description))")
        try cluster.finish(ended)
        let running = batch.filter { !ended.contains($0) }
        let offset = cluster.logSize()
        return try cluster.withShaping(shaping) {
            var all = running
            var infer = ""
            try cluster.finishingOnError(&all) { all in
                infer = try cluster.start("infer", gpus: 2)
                all.append(infer)
            }
            let victims = try running.filter { try cluster.restarts($0) > 0 || cluster.state($0) != "RUNNING" }
            return (try cluster.gpuIndices(infer), victims, infer, running, cluster.logLines(from: offset))
        }
    }
}

extension TopoAwarePairSocketsCluster {
    @Suite(.needs("the preempt/topo_aware cluster with one socket per NVLink pair", Cluster.topoAwarePairSockets != nil))
    struct Shaping {
        @Test func splitStartBeforeAlignedPairAfter() throws {
            let cluster = try #require(Cluster.topoAwarePairSockets, "no cluster (TOPO_PREEMPT_CLUSTER_TOPO_AWARE_PAIR_SOCKETS)")
            #expect(cluster.topology == "pairs" && cluster.sockets == 4)
            // Before: plain --gres=gpu:2 fits on GPUs 1 and 2 and starts there, nothing preempted.
            let before = try PairSocketShaping.run(on: cluster, shaping: false)
            #expect(before.placed == GPUSet([1, 2]) && before.victims.isEmpty, "before: \(before.placed?.description ?? "-"), victims \(before.victims)")
            #expect(!before.log.contains { $0.contains("JobId=\(before.infer) plan node") }, "no plan was asked for")
            try cluster.finish(before.batch + [before.infer])
            // After: shaped to one socket (= one pair), the job preempts one batch job and gets a pair.
            let after = try PairSocketShaping.run(on: cluster, shaping: true)
            defer { try? cluster.finish(after.batch + [after.infer]) }
            let comment = try cluster.job(after.infer)["AdminComment"] ?? ""
            #expect(comment.contains("shape=gpus-per-socket:2"), "AdminComment \(comment)")
            let placed = try #require(after.placed, "after: the infer job did not start")
            #expect(cluster.isAligned(placed) && placed.count == 2, "after: \(placed)")
            #expect(after.victims.count == 1, "after: victims \(after.victims)")
            for victim in after.victims { #expect(try cluster.restarts(victim) == 1, "victim \(victim) requeued") }
            print("pair sockets, Slurm \(cluster.slurmRelease): unshaped 2-GPU job started at once on \(before.placed?.description ?? "-") (split); shaped: GPUs \(placed), victims \(after.victims)")
        }
    }
}

/// preempt/topo_aware on NVLink pairs with one Slurm socket per pair (`Cluster.topoAwarePairSockets`).
enum TopoAwarePairSocketsCluster {}
