import Foundation
import Testing
import TopoEngine

/// Running real jobs on node1 of the local cluster (for the suites that submit and preempt).
extension Cluster {
    /// A running job's GPU indices on its node, from `scontrol show job -d`.
    func gpuIndices(_ id: String) throws -> GPUSet? {
        let detail = try run(["scontrol", "show", "job", "-d", id]).stdout
        guard let range = detail.range(of: #"GRES=[^ ]*\(IDX:[^)]*\)"#, options: .regularExpression) else { return nil }
        let text = String(detail[range].dropFirst("GRES=".count))
        return try GresString.parse(text).first?.indices
    }

    func state(_ id: String) throws -> String {
        try run(["squeue", "-h", "-j", id, "-o", "%T"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func restarts(_ id: String) throws -> Int { Int(try job(id)["Restarts"] ?? "") ?? -1 }

    /// Submits a running job on node1 and waits until it runs.
    func start(_ partition: String, gpus: Int, waitForRunning: Bool = true) throws -> String {
        let result = try run(["sbatch", "--parsable", "-p", partition, "-w", "node1", "-c", "1",
                              "--gres=gpu:\(gpus)", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(result.status == 0, "\(result.stderr)")
        let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if waitForRunning {
            let running = try waitUntil(seconds: 30) { try state(id) == "RUNNING" }
            try #require(running, "job \(id) did not start")
        }
        return id
    }

    /// Cancels and waits until the jobs have left node1's GPUs.
    func finish(_ ids: [String]) throws {
        cancel(ids)
        let active: Set<String> = ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING"]
        let gone = try waitUntil(seconds: 30) { try ids.allSatisfy { !active.contains(try state($0)) } }
        try #require(gone, "jobs \(ids) did not end")
    }

    /// Fills node1 with batch jobs of 2 2 2 1 1 GPUs: IDX 0-1 | 4-5 | 2-3 | 6 | 7.
    func fillNode() throws -> [String] {
        var ids: [String] = []
        for size in [2, 2, 2, 1, 1] { ids.append(try start("batch", gpus: size)) }
        let layout = try ids.map { try gpuIndices($0)?.description ?? "?" }
        try #require(layout == ["0-1", "4-5", "2-3", "6", "7"], "Slurm placed the batch jobs differently: \(layout)")
        return ids
    }

    func withShaping<T>(_ on: Bool, _ body: () throws -> T) throws -> T {
        let path = topoAwareConf
        let original = try String(contentsOfFile: path, encoding: .utf8)
        defer { try? original.write(toFile: path, atomically: true, encoding: .utf8) }
        let others = original.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.lowercased().hasPrefix("shaperequests=") }
        try (others + ["ShapeRequests=\(on ? "yes" : "no")"]).joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return try body()
    }

    /// The lab's full node: node1 filled (2 2 2 1 1 GPUs), then a 4-GPU infer job with
    /// job_submit's shaping on or off, run until it starts. Returns the batch job ids, the infer
    /// job id, the infer job's GPUs and the batch jobs that were preempted; the caller finishes
    /// the jobs.
    func fullNodeScenario(shaping: Bool) throws -> (batch: [String], infer: String, placed: GPUSet, victims: [String]) {
        let batch = try fillNode()
        let infer = try withShaping(shaping) { try start("infer", gpus: 4) }
        let placed = try #require(try gpuIndices(infer))
        let victims = try batch.filter { try restarts($0) > 0 || state($0) != "RUNNING" }
        return (batch, infer, placed, victims)
    }

    /// Submits a held job on node1 (it waits until released).
    func submitHeldOnNode1(_ partition: String, gpus: Int) throws -> String {
        let result = try run(["sbatch", "--parsable", "--hold", "-p", partition, "-w", "node1", "-c", "1",
                              "--gres=gpu:\(gpus)", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
