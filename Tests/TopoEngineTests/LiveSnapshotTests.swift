import Testing
@testable import TopoEngine

/// `ControllerSnapshot(live:preemptor:basePolicy:)`: what `topo-preempt plan --job` hands to
/// `PreemptController`, built from libslurm's values the way the plugin's C side copies
/// slurmctld's (preempt_topo_aware.c). Expectations are Slurm's documented base policies.
@Suite struct LiveSnapshotTests {
    /// node1 full (2 2 2 1 1 as in the lab), node2 idle; partitions batch (tier 1), infer
    /// (tier 10, PreemptMode OFF); QOS batch (10), infer (100, Preempt=batch).
    static func lab(pendingTres: String = "gres:gpu:4", pendingQOS: String = "infer", partition: String = "infer",
                    batchMode: LiveState.PreemptMode? = .init(.requeue)) -> LiveState {
        let fill: [[Int]] = [[0, 1], [4, 5], [2, 3], [6], [7]]
        var jobs = fill.enumerated().map { i, gpus in
            LiveState.Job(id: UInt32(i + 1), state: .running, partition: "batch", qos: "batch", priority: 100,
                          startTime: Int64(1000 + i), nodeIndices: [0], gresDetail: ["gpu:\(gpus.count)(IDX:\(GPUSet(gpus)))"])
        }
        jobs.append(.init(id: 9, state: .pending, partition: partition, qos: pendingQOS, priority: 5000, startTime: 0,
                          tresPerNode: pendingTres, numCPUs: 1, requiredNodeIndices: [0]))
        return LiveState(jobs: jobs,
                         nodes: [.init(name: "node1", available: true, gpuCount: 8, allocated: GPUSet(0...7)),
                                 .init(name: "node2", available: true, gpuCount: 8, allocated: GPUSet())],
                         partitions: [.init(name: "batch", priorityTier: 1, preemptMode: batchMode, nodeIndices: [0, 1]),
                                      .init(name: "infer", priorityTier: 10, preemptMode: .init(.off), nodeIndices: [0, 1])],
                         qos: [.init(name: "batch", priority: 10, preemptMode: .init(.requeue)),
                               .init(name: "infer", priority: 100, preempts: ["batch"])],
                         time: 5000)
    }

    @Test func partitionTiersMirrorThePlugin() throws {
        let s = try ControllerSnapshot(live: Self.lab(), preemptor: 9, basePolicy: .partitionPriority)
        #expect(s.jobs.map(\.id) == [1, 2, 3, 4, 5])
        #expect(s.jobs.allSatisfy { $0.eligible && $0.basePriority == 1 << 16 | 1 && !$0.draining })
        #expect(s.jobs[0].allocations == [.init(node: 0, gpus: GPUSet(0...1))])
        #expect(s.nodes.map(\.allocated) == [GPUSet(0...7), GPUSet()])
        #expect(s.preemptor.basePriority == 10 << 16 && s.preemptor.gpusPerNode == 4 && !s.preemptor.perSocket)
        #expect(s.preemptor.candidateNodes == [0] && s.preemptor.partitions == ["infer"] && s.preemptor.qos == "infer")
    }

    /// A lower tier is not enough: a partition with PreemptMode OFF, or one whose mode does not
    /// free GPUs (SUSPEND), gives no victims; a job Slurm already signalled is draining.
    @Test(arguments: [(LiveState.PreemptMode(.off), false), (.init(.suspend), false), (.init(.cancel), true), (.init(.requeue), true)])
    func partitionModeDecidesEligibility(mode: LiveState.PreemptMode, eligible: Bool) throws {
        let s = try ControllerSnapshot(live: Self.lab(batchMode: mode), preemptor: 9, basePolicy: .partitionPriority)
        #expect(s.jobs.allSatisfy { $0.eligible == eligible })
    }

    @Test func unsetPartitionModeTakesTheClusters() throws {
        var state = Self.lab(batchMode: nil)
        state.preemptMode = .init(.suspend)
        #expect(try ControllerSnapshot(live: state, preemptor: 9, basePolicy: .partitionPriority).jobs.allSatisfy { !$0.eligible })
        state.preemptMode = .init(.requeue)
        #expect(try ControllerSnapshot(live: state, preemptor: 9, basePolicy: .partitionPriority).jobs.allSatisfy(\.eligible))
    }

    /// PreemptMode's PRIORITY flag (Slurm 25.05+), on the cluster or the preemptor's partition
    /// (or QOS): only jobs of lower job priority may be preempted; the flag itself is no mode.
    @Test(arguments: [TopoAwareConfig.BasePolicy.partitionPriority, .qos])
    func priorityFlagKeepsHigherPriorityJobs(policy: TopoAwareConfig.BasePolicy) throws {
        var state = Self.lab(batchMode: .init(.requeue, priority: true))
        state.jobs[1].priority = 9000  // above the preemptor's 5000
        #expect(try ControllerSnapshot(live: state, preemptor: 9, basePolicy: policy).jobs.allSatisfy(\.eligible),
                "the flag on the preemptee's partition does not count")
        state.preemptMode = .init(.requeue, priority: true)
        let s = try ControllerSnapshot(live: state, preemptor: 9, basePolicy: policy)
        #expect(s.jobs.map(\.eligible) == [true, false, true, true, true])
        state.preemptMode = .init(.requeue)
        state.partitions[1].preemptMode = .init(.off, priority: true)
        state.qos[1].preemptMode = .init(.off, priority: true)
        #expect(try ControllerSnapshot(live: state, preemptor: 9, basePolicy: policy).jobs.map(\.eligible)
            == [true, false, true, true, true])
    }

    @Test func signalledJobsAreDrainingNotEligible() throws {
        var state = Self.lab()
        state.jobs[2].preempted = true
        let s = try ControllerSnapshot(live: state, preemptor: 9, basePolicy: .partitionPriority)
        #expect(s.jobs[2].draining && !s.jobs[2].eligible)
        #expect(s.jobs.filter { $0.id != 3 }.allSatisfy { $0.eligible && !$0.draining })
    }

    /// Under QOS the partition tier no longer counts: infer preempts batch by its Preempt= list;
    /// batch does not preempt batch (no WITHIN), even from the infer partition.
    @Test func qosPreemptList() throws {
        let byQOS = try ControllerSnapshot(live: Self.lab(partition: "batch"), preemptor: 9, basePolicy: .qos)
        #expect(byQOS.jobs.allSatisfy { $0.eligible && $0.basePriority == 10 << 16 | 1 })
        #expect(byQOS.preemptor.basePriority == 100 << 16)
        let batchQOS = try ControllerSnapshot(live: Self.lab(pendingQOS: "batch"), preemptor: 9, basePolicy: .qos)
        #expect(batchQOS.jobs.allSatisfy { !$0.eligible })
    }

    /// PreemptMode=WITHIN on the QOS (or the cluster): same QOS preempts by job priority.
    @Test func qosWithinByJobPriority() throws {
        var state = Self.lab(pendingQOS: "batch")
        state.qos[0].preemptMode = .init(.requeue, within: true)
        state.jobs[1].priority = 6000
        let s = try ControllerSnapshot(live: state, preemptor: 9, basePolicy: .qos)
        #expect(s.jobs.map(\.eligible) == [true, false, true, true, true])
    }

    @Test func perSocketRequestAndExcludedNodes() throws {
        var state = Self.lab()
        state.jobs[5].tresPerNode = nil
        state.jobs[5].tresPerSocket = "gres:gpu:4"
        state.jobs[5].socketsPerNode = 1
        state.jobs[5].requiredNodeIndices = []
        state.jobs[5].excludedNodeIndices = [1]
        let s = try ControllerSnapshot(live: state, preemptor: 9, basePolicy: .partitionPriority)
        #expect(s.preemptor.perSocket && s.preemptor.gpusPerNode == 4 && s.preemptor.candidateNodes == [0])
    }

    @Test func unknownJobIsAnError() {
        #expect(throws: SnapshotError("job 77 is not in the cluster's job list")) {
            try ControllerSnapshot(live: Self.lab(), preemptor: 77, basePolicy: .partitionPriority)
        }
    }

    /// The whole path the CLI takes: the lab's full node, decided by `PreemptController`, gives
    /// the lab's aligned victims (jobs on 0-1 and 2-3), under partition tiers and under QOS.
    @Test(arguments: [TopoAwareConfig.BasePolicy.partitionPriority, .qos])
    func labDecisionThroughTheController(policy: TopoAwareConfig.BasePolicy) throws {
        let config = try TopoAwareConfig.parse("""
            BasePolicy=\(policy.rawValue)
            PreemptorClass=inference \(policy == .qos ? "QOS=infer" : "Partitions=infer") Level=nvlink Mode=guaranteed
            """, file: "topo_aware.conf").config
        let state = Self.lab(partition: policy == .qos ? "batch" : "infer")
        let snapshot = try ControllerSnapshot(live: state, preemptor: 9, basePolicy: policy)
        let layout = try Lab.islands.topology()
        let topology = ControllerTopology(layouts: [Lab.islands], gpuCounts: [layout.gpuCount], layoutOfNode: ["node1": 0, "node2": 0])
        var controller = PreemptController()
        let decision = controller.decide(snapshot, config: config, topology: topology, settings: PreemptSettings(), clock: { 0 })
        #expect(decision.action == .onlyVictims([1, 3]))
        guard case let .plan(plan)? = decision.planning?.outcome else {
            Issue.record("no plan: \(decision.log)")
            return
        }
        #expect(plan.nodes.first?.expectedGPUs.first == GPUSet(0...3))
    }
}
