import Foundation
import Testing
import TopoEngine

extension LiveCluster {
    /// `topo-preempt plan --job` and `audit` on the live cluster, and the fidelity of the stock
    /// Slurm model: what the model predicts for a held inference job is what the real
    /// slurmctld then does when the job is released.
    @Suite(.needs("the stock islands cluster and the topo-preempt binary", Cluster.current?.topology == "islands" && CLI.binary != nil))
    struct PlanIntegrationTests {
        let cluster: Cluster

        init() throws {
            cluster = try #require(Cluster.current)
        }

        func cli(_ arguments: [String]) throws -> Cluster.Result { try cluster.cli(arguments) }

        func json(_ result: Cluster.Result) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
        }

        @Test(arguments: [true, false])
        func planExplainsTheLabJobAndTheStockModelPredictsSlurm(shaping: Bool) throws {
            let batch = try cluster.fillNode()  // ids of jobs on 0-1 | 4-5 | 2-3 | 6 | 7
            let infer = try cluster.withShaping(shaping) { try cluster.submitHeldOnNode1("infer", gpus: 4) }
            defer { try? cluster.finish(batch + [infer]) }
            let ids = batch.compactMap { UInt32($0) }

            let result = try cli(["plan", "--job", infer, "--compare-stock", "--format", "json"])
            #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
            let plan = try json(result)
            // The planner frees island 0-3 (jobs on 0-1 and 2-3), shaped or not.
            #expect(plan["victims"] as? [UInt32] == [ids[0], ids[2]])
            #expect(plan["level"] as? String == "nvlink")
            let stock = try #require(plan["stock"] as? [String: Any])
            let predictedVictims = try #require(stock["victims"] as? [UInt32])
            let predictedGPUs = try #require(stock["gpus"] as? String)
            #expect(predictedVictims == (shaping ? [ids[0], ids[2]] : [ids[0], ids[1]]))

            // Release it: the real controller does what the model said.
            #expect(try cluster.run(["scontrol", "release", infer]).status == 0)
            let running = try cluster.waitUntil(seconds: 60) { try cluster.state(infer) == "RUNNING" }
            try #require(running)
            let victims = try batch.filter { try cluster.restarts($0) > 0 || cluster.state($0) != "RUNNING" }.compactMap { UInt32($0) }
            #expect(victims == predictedVictims, "model \(predictedVictims), Slurm \(victims)")
            #expect(try cluster.gpuIndices(infer)?.description == predictedGPUs)

            // audit: the running preemptor and its alignment.
            let audit = try cli(["audit", "--format", "json"])
            #expect(audit.status == 0)
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [[String: Any]])
            let entry = try #require(entries.first { ($0["job"] as? Int).map(String.init) == infer })
            #expect(entry["aligned"] as? Bool == shaping)
            #expect(entry["reached"] as? String == (shaping ? "nvlink" : "node"))
            #expect((entry["gpus"] as? [String: String])?["node1"] == predictedGPUs)
        }

        @Test func planForAJobNotInTheCluster() throws {
            let result = try cli(["plan", "--job", "999999"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("job 999999 is not in the cluster's job list"))
        }
    }
}
