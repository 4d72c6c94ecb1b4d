import CSlurmMock
import CSlurmShim
import Foundation
import Testing

extension MockedSlurm {
    /// job_submit/topo_aware with the cluster's topology (slurm.conf and gres.conf beside
    /// topo_aware.conf, found through the mocked Slurm): rejection of requests no node can align,
    /// shaping to one socket, and fail-open when the topology files are unusable.
    @Suite struct TopologySubmitShimTests {
        static let slurmConf = """
            ClusterName=test
            NodeName=node[1-2] Sockets=2 CoresPerSocket=8 ThreadsPerCore=1 Gres=gpu:8
            PartitionName=infer Nodes=ALL
            """
        static let gresConf = (0..<8).map { g in
            let links = (0..<8).map { p in p == g ? "-1" : (p / 4 == g / 4 ? "4" : "0") }.joined(separator: ",")
            return "NodeName=node[1-2] Name=gpu File=/dev/nvidia\(g) Cores=\(g < 4 ? "0-7" : "8-15") Links=\(links)"
        }.joined(separator: "\n")

        /// A mock with topo_aware.conf, slurm.conf and gres.conf in one directory, plugin initialised.
        func mock(config: String = MockedSlurm.JobSubmitShimTests.config, gres: String? = Self.gresConf) throws -> MockSlurm {
            let mock = try MockSlurm(config: config, viaEnvironment: false)
            try Self.slurmConf.write(toFile: mock.directory + "/slurm.conf", atomically: true, encoding: .utf8)
            if let gres { try gres.write(toFile: mock.directory + "/gres.conf", atomically: true, encoding: .utf8) }
            try #require(CSlurmShim_job_submit_init() == SLURM_SUCCESS)
            return mock
        }

        @Test func initLogsTheTopology() throws {
            let mock = try mock()
            #expect(mock.logs.contains(
                "info: job_submit/topo_aware: loaded GPU topology from \(mock.directory)/gres.conf: 2 GPU nodes, 1 layout; largest group nvlink 4, pcie-switch 4, host-bridge 4, numa 4, socket 4, node 8; levels one socket wide: nvlink, pcie-switch, host-bridge, numa, socket"))
            #expect(mock.finish() == .clean)
        }

        @Test func guaranteedRequestIsShapedToOneSocket() throws {
            let mock = try mock()
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:4")
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.tresPerNode == nil)
            #expect(job.tresPerSocket == "gres:gpu:4")
            #expect(job.desc.pointee.sockets_per_node == 1)
            #expect(job.adminComment == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,shape=gpus-per-socket:4")
            #expect(job.errMsg?.hasPrefix("topo_aware: GPU request shaped to --gpus-per-socket=4 --sockets-per-node=1") == true)
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func otherGRESStayPerNodeAndTypesAreKept() throws {
            let mock = try mock()
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:a100:2,gres:mps:100")
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.tresPerNode == "gres:mps:100")
            #expect(job.tresPerSocket == "gres:gpu:a100:2")
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func requestNoNodeCanAlignIsRejected() throws {
            let mock = try mock()
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:6")
            #expect(job.submit() == Int32(ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE.rawValue))
            #expect(job.errMsg == "topo_aware: 6 GPUs per node can never be nvlink-aligned on this cluster: the largest nvlink group has 4 GPUs ({0-3} {4-7} on each node). Ask for at most 4 GPUs per node, or use --gpu-affinity=node or --gpu-affinity=best-effort")
            #expect(mock.logs.contains { $0.hasPrefix("info: job_submit/topo_aware: job_submit: rejected uid=1000") })
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test(arguments: [
            ("infer", "gres:gpu:6", ["TOPO_AWARE_GPU_AFFINITY=best-effort"]),  // best-effort: best reachable, no reject
            ("batch", "gres:gpu:8", []),  // not a preemptor
            ("infer", "gres:gpu:4", ["TOPO_AWARE_GPU_AFFINITY=node"]),  // node level: nothing to align
        ])
        func leftUnchanged(partition: String, tres: String, env: [String]) throws {
            let mock = try mock()
            let job = JobDesc(partition: partition, spankEnv: env, tresPerNode: tres)
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.tresPerNode == tres)
            #expect(job.tresPerSocket == nil)
            #expect(job.desc.pointee.sockets_per_node == UInt16(NO_VAL16))
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func shapingCanBeTurnedOff() throws {
            let mock = try mock(config: MockedSlurm.JobSubmitShimTests.config + "\nShapeRequests=no\n")
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:4")
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.tresPerNode == "gres:gpu:4")
            #expect(job.adminComment == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed")
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func unusableTopologyFailsOpen() throws {
            let mock = try mock(gres: "Name=gpu File=/dev/nvidia[0-1 Links=\n")
            #expect(mock.logs.contains { $0.hasPrefix("error: job_submit/topo_aware: GPU topology unavailable (") && $0.contains("gres.conf:1:") })
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:64")
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.tresPerNode == "gres:gpu:64")
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func editedGresConfIsReloaded() throws {
            let mock = try mock()
            // Every GPU pair NVLinked: the whole node is one group, 6 GPUs fit, no shaping.
            let allLinked = (0..<8).map { g in
                let links = (0..<8).map { $0 == g ? "-1" : "12" }.joined(separator: ",")
                return "NodeName=node[1-2] Name=gpu File=/dev/nvidia\(g) Cores=\(g < 4 ? "0-7" : "8-15") Links=\(links)"
            }.joined(separator: "\n")
            try allLinked.write(toFile: mock.directory + "/gres.conf", atomically: true, encoding: .utf8)
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:6")
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.tresPerNode == "gres:gpu:6")
            #expect(mock.logs.contains { $0.contains("reloaded GPU topology") && $0.contains("largest group nvlink 8") })
            job.release()
            #expect(mock.finish() == .clean)
        }
    }
}
