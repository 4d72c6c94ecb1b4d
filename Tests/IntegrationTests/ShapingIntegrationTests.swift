import Foundation
import Testing
import TopoEngine

extension LiveCluster {
    /// Real jobs on node1 of the local cluster (islands topology: GPUs 0-3 on socket 0, 4-7 on
    /// socket 1): what the plain request and the request job_submit/topo_aware shapes to one
    /// socket get from stock Slurm's scheduler and preemption.
    @Suite(.enabled(if: Cluster.current?.topology == "islands", "needs the islands topology"))
    struct ShapingIntegrationTests {
        let cluster: Cluster

        init() throws {
            cluster = try #require(Cluster.current)
        }

        /// A running job's GPU indices on its node, from `scontrol show job -d`.
        func gpuIndices(_ id: String) throws -> GPUSet? {
            let detail = try cluster.run(["scontrol", "show", "job", "-d", id]).stdout
            guard let range = detail.range(of: #"GRES=[^ ]*\(IDX:[^)]*\)"#, options: .regularExpression) else { return nil }
            let text = String(detail[range].dropFirst("GRES=".count))
            return try GresString.parse(text).first?.indices
        }

        func state(_ id: String) throws -> String {
            try cluster.run(["squeue", "-h", "-j", id, "-o", "%T"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func restarts(_ id: String) throws -> Int { Int(try cluster.job(id)["Restarts"] ?? "") ?? -1 }

        /// Submits a running job on node1 and waits until it runs.
        func start(_ partition: String, gpus: Int, waitForRunning: Bool = true) throws -> String {
            let result = try cluster.run(["sbatch", "--parsable", "-p", partition, "-w", "node1", "-c", "1",
                                          "--gres=gpu:\(gpus)", "-o", "/dev/null", "--wrap", "sleep 600"])
            try #require(result.status == 0, "\(result.stderr)")
            let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if waitForRunning {
                let running = try cluster.waitUntil(seconds: 30) { try state(id) == "RUNNING" }
                try #require(running, "job \(id) did not start")
            }
            return id
        }

        /// Cancels and waits until the jobs have left node1's GPUs.
        func finish(_ ids: [String]) throws {
            cluster.cancel(ids)
            let active: Set<String> = ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING"]
            let gone = try cluster.waitUntil(seconds: 30) { try ids.allSatisfy { !active.contains(try state($0)) } }
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
            let path = cluster.topoAwareConf
            let original = try String(contentsOfFile: path, encoding: .utf8)
            defer { try? original.write(toFile: path, atomically: true, encoding: .utf8) }
            let others = original.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.lowercased().hasPrefix("shaperequests=") }
            try (others + ["ShapeRequests=\(on ? "yes" : "no")"]).joined(separator: "\n")
                .write(toFile: path, atomically: true, encoding: .utf8)
            return try body()
        }

        /// Full node: the shaped 4-GPU inference job preempts exactly the two jobs that free
        /// island 0-3 and runs there; stock Slurm with the plain request preempts the jobs on
        /// 0-1 and 4-5 and runs across both islands.
        @Test func fullNodeShapedPreemptsForOneIsland() throws {
            for shaping in [false, true] {
                let batch = try fillNode()
                let infer = try withShaping(shaping) { try start("infer", gpus: 4) }
                defer { try? finish(batch + [infer]) }
                let placed = try #require(try gpuIndices(infer))
                let victims = try batch.filter { try restarts($0) > 0 || state($0) != "RUNNING" }
                if shaping {
                    #expect(placed == GPUSet(0...3))
                    #expect(victims == [batch[0], batch[2]], "victims \(victims)")
                    #expect(try cluster.job(infer)["AdminComment"]?.hasSuffix(",shape=gpus-per-socket:4") == true)
                } else {
                    #expect(placed == GPUSet([0, 1, 4, 5]), "stock Slurm changed: \(placed)")
                    #expect(victims == [batch[0], batch[1]], "victims \(victims)")
                }
                try finish(batch + [infer])
            }
        }

        /// Free GPUs 0,1,4,5: the plain request starts at once on 0-1,4-5 with no preemption;
        /// the shaped one does not, and in the infer partition preempts the job on 2-3 (one
        /// victim) to run on island 0-3.
        @Test func freeButSplitGPUsAreNotTakenByTheShapedRequest() throws {
            for shaping in [false, true] {
                let batch = try fillNode()
                try finish([batch[0], batch[1]])
                let remaining = [batch[2], batch[3], batch[4]]
                let infer = try withShaping(shaping) { try start("infer", gpus: 4) }
                defer { try? finish(remaining + [infer]) }
                let placed = try #require(try gpuIndices(infer))
                let victims = try remaining.filter { try restarts($0) > 0 || state($0) != "RUNNING" }
                if shaping {
                    #expect(placed == GPUSet(0...3))
                    #expect(victims == [batch[2]], "victims \(victims)")
                } else {
                    #expect(placed == GPUSet([0, 1, 4, 5]))
                    #expect(victims.isEmpty)
                }
                try finish(remaining + [infer])
            }
        }
    }
}
