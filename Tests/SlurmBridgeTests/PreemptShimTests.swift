import CSlurmMock
import CSlurmShim
import Foundation
@testable import SlurmBridge
import Testing
import TopoEngine

extension MockedSlurm {
    /// preempt/topo_aware's Swift side through the C entry points the preempt plugin calls
    /// (TopoAwareSwift_preempt*, topo_preempt_abi.h), with flat snapshots as the C shim builds
    /// them from slurmctld's structs, against the mocked Slurm API.
    @Suite struct PreemptShimTests {
        /// node1 filled 2 2 2 1 1 (GPUs 0-1 | 4-5 | 2-3 | 6 | 7), node2 idle but not a candidate.
        struct Snapshot {
            var names: [UnsafeMutablePointer<CChar>?] = [strdup("node1"), strdup("node2")]
            var nodes: [topo_preempt_node_t] = []
            var jobs: [topo_preempt_job_t] = []
            var allocs: [topo_preempt_alloc_t] = []
            var candidates: [UInt32] = [0]
            var owners: [UInt32] = []
            var admin = strdup("topo_aware:preemptor=inference,level=nvlink,mode=guaranteed")
            var partition = strdup("infer")
            var abi = TOPO_PREEMPT_ABI_VERSION

            init() {
                let fill: [UInt64] = [0b11, 0b11_0000, 0b1100, 0b100_0000, 0b1000_0000]
                nodes = [topo_preempt_node_t(name: names[0], available: 1, gpu_count: 8, allocated: 0xff),
                         topo_preempt_node_t(name: names[1], available: 1, gpu_count: 8, allocated: 0)]
                for (i, mask) in fill.enumerated() {
                    allocs.append(topo_preempt_alloc_t(node: 0, reserved: 0, gpus: mask))
                    jobs.append(topo_preempt_job_t(job_id: UInt32(i + 1), base_prio: 1 << 16 | 1, eligible: 1, alloc_count: 1,
                                                   start_time: Int64(i * 60), alloc_first: UInt32(i), flags: 0))
                }
            }

            func decide() -> (rc: Int32, action: Int32, victims: [UInt32], planned: UInt32) {
                var decision = topo_preempt_decision_t()
                let rc = nodes.withUnsafeBufferPointer { n in
                    jobs.withUnsafeBufferPointer { j in
                        allocs.withUnsafeBufferPointer { a in
                            candidates.withUnsafeBufferPointer { c in
                                owners.withUnsafeBufferPointer { o in
                                    var s = topo_preempt_snapshot_t()
                                    s.abi_version = abi
                                    s.slurm_version = 0x160508
                                    s.now = 3600
                                    s.node_count = UInt32(n.count)
                                    s.nodes = n.baseAddress
                                    s.job_count = UInt32(j.count)
                                    s.jobs = j.baseAddress
                                    s.alloc_count = UInt32(a.count)
                                    s.allocs = a.baseAddress
                                    s.owner_count = UInt32(o.count)
                                    s.pending_owners = o.baseAddress
                                    s.preemptor.job_id = 6
                                    s.preemptor.base_prio = 10 << 16 | 1
                                    s.preemptor.gpus_per_node = 4
                                    s.preemptor.node_count = 1
                                    s.preemptor.cpus_per_node = 1
                                    s.preemptor.candidate_count = UInt32(c.count)
                                    s.preemptor.candidate_nodes = c.baseAddress
                                    s.preemptor.admin_comment = UnsafePointer(admin)
                                    s.preemptor.partition = UnsafePointer(partition)
                                    return TopoAwareSwift_preemptDecide(&s, &decision)
                                }
                            }
                        }
                    }
                }
                let victims = withUnsafeBytes(of: decision.victims) { Array($0.bindMemory(to: UInt32.self).prefix(Int(decision.victim_count))) }
                return (rc, decision.action, victims, decision.planned)
            }

            func release() {
                names.forEach { free($0) }
                free(admin)
                free(partition)
            }
        }

        func mock() throws -> MockSlurm {
            TopoAwareSwift_preemptReset()
            let mock = try MockSlurm(config: MockedSlurm.JobSubmitShimTests.config, viaEnvironment: false)
            try TopologySubmitShimTests.slurmConf.write(toFile: mock.directory + "/slurm.conf", atomically: true, encoding: .utf8)
            try TopologySubmitShimTests.gresConf.write(toFile: mock.directory + "/gres.conf", atomically: true, encoding: .utf8)
            return mock
        }

        @Test func settingsReportTheBasePolicy() throws {
            let mock = try mock()
            var settings = topo_preempt_settings_t()
            #expect(TopoAwareSwift_preemptSettings(&settings) == 0)
            #expect(settings.abi_version == TOPO_PREEMPT_ABI_VERSION)
            #expect(settings.base_policy == Int32(TOPO_PREEMPT_BASE_PARTITION_PRIO))
            try mock.rewrite(MockedSlurm.JobSubmitShimTests.config + "\nBasePolicy=qos\n")
            #expect(TopoAwareSwift_preemptSettings(&settings) == 0)
            #expect(settings.base_policy == Int32(TOPO_PREEMPT_BASE_QOS))
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        @Test func classifiesPreemptors() throws {
            let mock = try mock()
            #expect(TopoAwareSwift_preemptIsPreemptor("topo_aware:preemptor=inference,level=nvlink,mode=guaranteed", "batch", nil) == 1)
            #expect(TopoAwareSwift_preemptIsPreemptor(nil, "infer", nil) == 1)
            #expect(TopoAwareSwift_preemptIsPreemptor(nil, "batch", nil) == 0)
            #expect(TopoAwareSwift_preemptIsPreemptor("topo_aware:preemptible=batch", "infer", nil) == 0)
            #expect(TopoAwareSwift_preemptIsPreemptor(nil, nil, nil) == 0)
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// The lab's full node through the C ABI: only the jobs on 0-1 and 2-3, and the plan
        /// line in Slurm's log; the plan is kept and reported as an owner.
        @Test func labScenarioThroughTheABI() throws {
            let mock = try mock()
            let snapshot = Snapshot()
            defer { snapshot.release() }
            let result = snapshot.decide()
            #expect(result.rc == 0)
            #expect(result.action == Int32(TOPO_PREEMPT_ONLY_VICTIMS))
            #expect(result.victims == [1, 3])
            #expect(result.planned == 1)
            #expect(mock.logs.contains { $0.hasPrefix("info: preempt/topo_aware: JobId=6 plan node1 gpus=0-3 level=nvlink victims=1,3 ") })
            var owners = [UInt32](repeating: 0, count: 4)
            #expect(TopoAwareSwift_preemptPlanOwners(&owners, 4) == 1)
            #expect(owners[0] == 6)
            TopoAwareSwift_preemptReset()
            #expect(TopoAwareSwift_preemptPlanOwners(nil, 0) == 0)
            #expect(mock.finish(fini: false) == .clean)
        }

        /// With DecisionLog= the plan is written as a record; a victim Slurm preempts is recorded
        /// and gets its provenance (and the preemptor its plan) for SystemComment, keeping what
        /// was there.
        @Test func decisionsAndProvenanceThroughTheABI() throws {
            let mock = try mock()
            let path = mock.directory + "/decisions.jsonl"
            try mock.rewrite(MockedSlurm.JobSubmitShimTests.config + "\nDecisionLog=\(path)\n")
            let snapshot = Snapshot()
            defer { snapshot.release() }
            #expect(snapshot.decide().victims == [1, 3])
            let node = strdup("node1"), mode = strdup("REQUEUE"), system = strdup("burst_buffer: note")
            let admin = strdup("site:keep topo_aware:preemptible=batch")
            defer { free(node); free(mode); free(system); free(admin) }
            var names: [UnsafePointer<CChar>?] = [UnsafePointer(node)]
            var gpus: [UInt64] = [0b11]
            var out = topo_preempt_provenance_t()
            let rc = names.withUnsafeMutableBufferPointer { n in
                gpus.withUnsafeMutableBufferPointer { g in
                    var v = topo_preempt_victim_t()
                    v.victim_id = 1
                    v.preemptor_id = 6
                    v.time = 3600
                    v.start_time = 0
                    v.alloc_count = 1
                    v.mode = UnsafePointer(mode)
                    v.node_names = UnsafePointer(n.baseAddress)
                    v.gpus = UnsafePointer(g.baseAddress)
                    v.victim_system_comment = UnsafePointer(system)
                    v.victim_admin_comment = UnsafePointer(admin)
                    v.preemptor_admin_comment = UnsafePointer(snapshot.admin)
                    return TopoAwareSwift_preemptVictim(&v, &out)
                }
            }
            #expect(rc == 0)
            func text<T>(_ field: T) -> String {
                withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
            #expect(text(out.victim_system).hasPrefix("burst_buffer: note; topo_aware: preempted (REQUEUE) by JobId=6 on node1 gpus=0-1; chosen by its guaranteed plan node1 gpus=0-3 level=nvlink victims=1,3 "),
                    "\(text(out.victim_system))")
            #expect(text(out.victim_admin) == "site:keep topo_aware:preemptible=batch,preempted_by=6,preempted_gpus=node1:0-1,preempted_at=3600,chosen_by=plan")
            #expect(text(out.preemptor_system).hasPrefix("topo_aware: guaranteed plan node1 gpus=0-3 level=nvlink victims=1,3 "))
            #expect(text(out.preemptor_admin) == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,plan=node1:0-3,reached=nvlink,victims=1+3")
            #expect(DecisionLog.shared.flush())
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 2)
            #expect(lines.first?.hasPrefix(#"{"seq":1,"time":3600,"event":"plan","job":6,"mode":"guaranteed","level":"nvlink","reached":"nvlink","degraded":false,"targets":[{"node":"node1","gpus":"0-3"}],"victims":[1,3],"#) == true, "\(lines)")
            #expect(lines.last?.hasPrefix(#"{"seq":2,"time":3600,"event":"preempted","job":1,"other":6,"reason":"plan","mode":"guaranteed","#) == true, "\(lines)")
            try mock.rewrite(MockedSlurm.JobSubmitShimTests.config)
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// Broken snapshots are refused with one error line and the base policy, never a trap.
        @Test func corruptSnapshotsFallBack() throws {
            let mock = try mock()
            var wrongABI = Snapshot()
            wrongABI.abi = 99
            #expect(wrongABI.decide().rc == -1)
            wrongABI.release()
            var badNode = Snapshot()
            badNode.allocs[2].node = 9
            let bad = badNode.decide()
            #expect(bad.rc == -1 && bad.action == Int32(TOPO_PREEMPT_BASE_POLICY))
            badNode.release()
            var badRange = Snapshot()
            badRange.jobs[4].alloc_first = 4
            badRange.jobs[4].alloc_count = 7
            #expect(badRange.decide().rc == -1)
            badRange.release()
            var badCandidate = Snapshot()
            badCandidate.candidates = [5]
            #expect(badCandidate.decide().rc == -1)
            badCandidate.release()
            #expect(mock.logs.contains("error: preempt/topo_aware: snapshot ABI version 99, expected \(TOPO_PREEMPT_ABI_VERSION); base policy"))
            #expect(mock.logs.contains("error: preempt/topo_aware: JobId=6 unreadable snapshot: job 3: node index 9 of 2; base policy"))
            #expect(mock.logs.contains("error: preempt/topo_aware: JobId=6 unreadable snapshot: job 5: allocations 4+7 beyond 5; base policy"))
            #expect(TopoAwareSwift_preemptDecide(nil, nil) == -1)
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// A removed node (no name in slurmctld's table) takes no part; the plan is unchanged.
        @Test func unnamedNodeIsSkipped() throws {
            let mock = try mock()
            var snapshot = Snapshot()
            snapshot.nodes[1].name = nil
            let result = snapshot.decide()
            #expect(result.rc == 0 && result.victims == [1, 3])
            snapshot.release()
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// gres.conf Links= that contradict themselves (GPU 0 says NVLink to GPU 5, GPU 5 says
        /// PCIe): the node is named in an error line with file and line, and left to the base
        /// policy; the other node is still planned.
        @Test func inconsistentLinksLeaveTheNodeOut() throws {
            let mock = try mock()
            var gres = TopologySubmitShimTests.gresConf.replacingOccurrences(of: "node[1-2]", with: "node2")
            gres += "\n" + TopologySubmitShimTests.gresConf.replacingOccurrences(of: "node[1-2]", with: "node1")
                .replacingOccurrences(of: "nvidia0 Cores=0-7 Links=-1,4,4,4,0,0", with: "nvidia0 Cores=0-7 Links=-1,4,4,4,0,4")
            try gres.write(toFile: mock.directory + "/gres.conf", atomically: true, encoding: .utf8)
            var snapshot = Snapshot()
            // Only node1 is a candidate: Slurm's own order among its preemptable jobs.
            let result = snapshot.decide()
            #expect(result.action == Int32(TOPO_PREEMPT_ONLY_VICTIMS) && result.victims == [1, 2, 3, 4, 5])
            #expect(mock.logs.contains { $0.hasPrefix("error: preempt/topo_aware: node node1: gres.conf Links= disagree (\(mock.directory)/gres.conf:9:") && $0.hasSuffix("the node is left to the base policy") }, "\(mock.logs)")
            // node2 (consistent) as the candidate: planned as before.
            snapshot.candidates = [1]
            snapshot.nodes[1].allocated = 0xff
            snapshot.allocs = snapshot.allocs.map { topo_preempt_alloc_t(node: 1, reserved: 0, gpus: $0.gpus) }
            let planned = snapshot.decide()
            #expect(planned.action == Int32(TOPO_PREEMPT_ONLY_VICTIMS) && planned.victims == [1, 3])
            snapshot.release()
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// A node Slurm counts differently from gres.conf: inconsistent, base policy for it.
        @Test func inconsistentNodeIsLeftToTheBasePolicy() throws {
            let mock = try mock()
            var snapshot = Snapshot()
            snapshot.nodes[0].gpu_count = 6
            snapshot.nodes[0].allocated = 0x3f
            let result = snapshot.decide()
            #expect(result.action == Int32(TOPO_PREEMPT_ONLY_VICTIMS) && result.victims == [1, 2, 3, 4, 5])
            #expect(mock.logs.contains { $0.contains("node node1: Slurm counts 6 GPUs") })
            #expect(mock.logs.contains { $0.contains("JobId=6 no plan on nodes of known topology") && $0.contains("base policy on node(s) node1") })
            snapshot.release()
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// With TopologyPlugin=topology/block the store reads topology.conf beside slurm.conf and
        /// gives the planner each node's block; a broken file is logged (file:line:column) and
        /// leaves the planner without blocks, the GPU topology in force.
        @Test func blocksFromTopologyConf() throws {
            let mock = try mock()
            let slurmConf = mock.directory + "/slurm.conf", gresConf = mock.directory + "/gres.conf"
            try (TopologySubmitShimTests.slurmConf + "\nTopologyPlugin=topology/block\n").write(toFile: slurmConf, atomically: true, encoding: .utf8)
            try "BlockName=b1 Nodes=node1\nBlockName=b2 Nodes=node2\n".write(toFile: mock.directory + "/topology.conf", atomically: true, encoding: .utf8)
            let store = TopologyStore()
            store.load(slurmConf: slurmConf, gresConf: gresConf, logPrefix: "preempt/topo_aware")
            #expect(store.controllerTopology(logPrefix: "preempt/topo_aware")?.blockOfNode == ["node1": "b1", "node2": "b2"])
            #expect(mock.logs.contains("info: preempt/topo_aware: loaded 2 blocks of 1 nodes from \(mock.directory)/topology.conf"), "\(mock.logs)")
            // Broken: logged with its place, no blocks; the GPU topology stays.
            try "BlockName=b1 Nodes=node1\nBlockName=b1 Nodes=node2\n".write(toFile: mock.directory + "/topology.conf", atomically: true, encoding: .utf8)
            let broken = try #require(store.controllerTopology(logPrefix: "preempt/topo_aware"))
            #expect(broken.blockOfNode.isEmpty)
            #expect(broken.layoutOfNode.count == 2)
            #expect(mock.logs.contains { $0.hasPrefix("error: preempt/topo_aware: blocks unavailable (\(mock.directory)/topology.conf:2:11: block 'b1' is already defined on line 1)") }, "\(mock.logs)")
            // Another topology plugin: topology.conf is not read for blocks.
            try (TopologySubmitShimTests.slurmConf + "\nTopologyPlugin=topology/tree\n").write(toFile: slurmConf, atomically: true, encoding: .utf8)
            #expect(store.controllerTopology(logPrefix: "preempt/topo_aware")?.blockOfNode.isEmpty == true)
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }

        /// topology/tree: the leaf switches of topology.conf reach the planner's nodes; a broken
        /// file is logged with its place and leaves plans without switches.
        @Test func switchesFromTopologyConf() throws {
            let mock = try mock()
            let slurmConf = mock.directory + "/slurm.conf", gresConf = mock.directory + "/gres.conf"
            try (TopologySubmitShimTests.slurmConf + "\nTopologyPlugin=topology/tree\n").write(toFile: slurmConf, atomically: true, encoding: .utf8)
            try "SwitchName=s1 Nodes=node1\nSwitchName=s2 Nodes=node2\nSwitchName=top Switches=s[1-2]\n"
                .write(toFile: mock.directory + "/topology.conf", atomically: true, encoding: .utf8)
            let store = TopologyStore()
            store.load(slurmConf: slurmConf, gresConf: gresConf, logPrefix: "preempt/topo_aware")
            let topology = try #require(store.controllerTopology(logPrefix: "preempt/topo_aware"))
            #expect(topology.leafSwitchOfNode == ["node1": "s1", "node2": "s2"] && topology.blockOfNode.isEmpty)
            #expect(mock.logs.contains("info: preempt/topo_aware: loaded 2 leaf switches of 2 nodes from \(mock.directory)/topology.conf"), "\(mock.logs)")
            try "SwitchName=s1 Nodes=node1\nSwitchName=s1 Nodes=node2\n".write(toFile: mock.directory + "/topology.conf", atomically: true, encoding: .utf8)
            let broken = try #require(store.controllerTopology(logPrefix: "preempt/topo_aware"))
            #expect(broken.leafSwitchOfNode.isEmpty && broken.layoutOfNode.count == 2)
            #expect(mock.logs.contains { $0.hasPrefix("error: preempt/topo_aware: switches unavailable (\(mock.directory)/topology.conf:2:") }, "\(mock.logs)")
            TopoAwareSwift_preemptReset()
            #expect(mock.finish(fini: false) == .clean)
        }
    }
}
