import Foundation
import Testing
import TopoEngine

extension LiveCluster {
    /// Real jobs on node1 of the local cluster (islands topology: GPUs 0-3 on socket 0, 4-7 on
    /// socket 1): what the plain request and the request job_submit/topo_aware shapes to one
    /// socket get from stock Slurm's scheduler and preemption.
    @Suite(.needs("the stock islands cluster", Cluster.current?.topology == "islands"))
    struct ShapingIntegrationTests {
        let cluster: Cluster

        init() throws {
            cluster = try #require(Cluster.current)
        }

        /// Full node: the shaped 4-GPU inference job preempts exactly the two jobs that free
        /// island 0-3 and runs there; stock Slurm with the plain request preempts the jobs on
        /// 0-1 and 4-5 and runs across both islands.
        @Test func fullNodeShapedPreemptsForOneIsland() throws {
            for shaping in [false, true] {
                let (batch, infer, placed, victims) = try cluster.fullNodeScenario(shaping: shaping)
                defer { try? cluster.finish(batch + [infer]) }
                if shaping {
                    #expect(placed == GPUSet(0...3))
                    #expect(victims == [batch[0], batch[2]], "victims \(victims)")
                    #expect(try cluster.job(infer)["AdminComment"]?.hasSuffix(",shape=gpus-per-socket:4") == true)
                } else {
                    #expect(placed == GPUSet([0, 1, 4, 5]), "stock Slurm changed: \(placed)")
                    #expect(victims == [batch[0], batch[1]], "victims \(victims)")
                }
                try cluster.finish(batch + [infer])
            }
        }

        /// Free GPUs 0,1,4,5: the plain request starts at once on 0-1,4-5 with no preemption;
        /// the shaped one does not, and in the infer partition preempts the job on 2-3 (one
        /// victim) to run on island 0-3.
        @Test func freeButSplitGPUsAreNotTakenByTheShapedRequest() throws {
            for shaping in [false, true] {
                let batch = try cluster.fillNode()
                try cluster.finish([batch[0], batch[1]])
                let remaining = [batch[2], batch[3], batch[4]]
                let infer = try cluster.withShaping(shaping) { try cluster.start("infer", gpus: 4) }
                defer { try? cluster.finish(remaining + [infer]) }
                let placed = try #require(try cluster.gpuIndices(infer))
                let victims = try remaining.filter { try cluster.restarts($0) > 0 || cluster.state($0) != "RUNNING" }
                if shaping {
                    #expect(placed == GPUSet(0...3))
                    #expect(victims == [batch[2]], "victims \(victims)")
                } else {
                    #expect(placed == GPUSet([0, 1, 4, 5]))
                    #expect(victims.isEmpty)
                }
                try cluster.finish(remaining + [infer])
            }
        }
    }
}
