import Testing
@testable import TopoEngine

/// topology/block's topology.conf, and multi-node plans that keep a job inside one block.
@Suite struct BlockTopologyTests {
    static let twoBlocks = "BlockName=b1 Nodes=node[1-4]\nBlockName=b2 Nodes=node[5-8]\n"

    @Test func parsesBlocksAndSlurmsDefaultSizes() throws {
        let topology = try BlockTopology.parse(Self.twoBlocks, file: "topology.conf")
        #expect(topology.blocks.map(\.name) == ["b1", "b2"])
        #expect(topology.blocks[1].nodes == ["node5", "node6", "node7", "node8"])
        #expect(topology.baseBlockNodes == 4)
        // Default 1, 2, 4, 8, 16 base blocks, cut after the first size that holds every block.
        #expect(topology.levels == [1, 2])
        #expect(topology.alignment(of: ["node1", "node4"]) == .block("b1"))
        #expect(topology.alignment(of: ["node2", "node7"]) == .aggregate(size: 2, blocks: ["b1", "b2"]))
        #expect(topology.alignment(of: ["node2", "node9"]) == .none)
    }

    @Test func aggregatesFollowSlurmsAlignment() throws {
        // Five blocks of 2 nodes, sizes 2 (base), 4 and 8 nodes: pairs b1-b2, b3-b4; quads b1-b4;
        // b5 alone is in no aggregate: Slurm makes none for a trailing rest the next smaller size
        // already holds.
        let text = (1...5).map { "BlockName=b\($0) Nodes=n[\($0 * 2 - 1)-\($0 * 2)]" }.joined(separator: "\n") + "\nBlockSizes=2,4,8\n"
        let topology = try BlockTopology.parse(text, file: "t")
        #expect(topology.levels == [1, 2, 4])
        #expect(topology.aggregates(of: 2) == [0..<2, 2..<4])
        #expect(topology.aggregates(of: 4) == [0..<4])
        #expect(topology.alignment(of: ["n3", "n4"]) == .block("b2"))
        #expect(topology.alignment(of: ["n1", "n4"]) == .aggregate(size: 2, blocks: ["b1", "b2"]))
        #expect(topology.alignment(of: ["n4", "n5"]) == .aggregate(size: 4, blocks: ["b1", "b2", "b3", "b4"]))
        #expect(topology.alignment(of: ["n1", "n10"]) == .none)
    }

    @Test(arguments: [
        ("BlockName=b1 Nodes=n[1-2]\nBlockName=b1 Nodes=n3", "t:2:11: block 'b1' is already defined on line 1"),
        ("BlockName=b1 Nodes=n1\nSwitchName=s1 Nodes=n2", "t:2:1: 'SwitchName' is topology/tree's; a topology/block file has BlockName, Nodes, BlockSizes"),
        ("BlockName=b1 Nodes=n1 Speed=4", "t:1:23: unknown topology.conf key 'Speed' (expected BlockName, Nodes, BlockSizes)"),
        ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,12", "t:2:12: BlockSizes: 12 is not 4 (the first size) times a power of two up to 2^15"),
        ("BlockName=b1 Nodes=n[1-4]\nBlockSizes=4,x", "t:2:12: BlockSizes: 'x' is not a positive number of nodes"),
        ("BlockName=b1 Nodes=n[1-", "t:1:20: Nodes: '[1-' is not a number or range"),
        ("Nodes=n1", "t:1:1: Nodes= needs a BlockName= on its line"),
        ("# nothing\n", "t:1:1: no BlockName= line"),
        ("BlockName=b1\nBlockName=b2", "t:1:1: blocks hold no nodes and BlockSizes is not set"),
    ])
    func errorsNameFileLineAndColumn(_ text: String, _ message: String) {
        #expect(throws: TextDiagnostic.self) { try BlockTopology.parse(text, file: "t") }
        do { _ = try BlockTopology.parse(text, file: "t") } catch { #expect(error.description == message) }
    }

    /// The issue's scenario (observed on stock 26.05.3): block b2 full of sixteen 1-GPU batch
    /// jobs, b1 of eight 2-GPU jobs; a 4-node, 4-GPU-per-node inference job. The whole block b1
    /// is freed with its eight jobs; b2 would take sixteen.
    @Test func aMultiNodeJobGetsTheCheapestWholeBlock() throws {
        let four = ClusterSnapshot.LayoutSpec(paths: (0..<4).map { i in (0..<4).map { $0 == i ? "X" : "NV4" } },
                                              sockets: [0, 0, 1, 1])
        let blocks = try BlockTopology.parse(Self.twoBlocks, file: "topology.conf")
        let nodes = (1...8).map { ClusterSnapshot.NodeState(name: "node\($0)", layout: 0, block: blocks.blocks[blocks.blockIndex["node\($0)"]!].name) }
        var jobs: [ClusterSnapshot.RunningJob] = []
        for node in 4..<8 {  // b2 first: 1-GPU jobs, ids 1-16
            for gpu in 0..<4 {
                jobs.append(.init(id: UInt32(jobs.count + 1), priority: 1, startTime: Int64(jobs.count),
                                  allocations: [.init(node: node, gpus: GPUSet([gpu]))]))
            }
        }
        for node in 0..<4 {  // then b1: 2-GPU jobs, ids 17-24
            for pair in [[0, 1], [2, 3]] {
                jobs.append(.init(id: UInt32(jobs.count + 1), priority: 1, startTime: Int64(jobs.count),
                                  allocations: [.init(node: node, gpus: GPUSet(pair))]))
            }
        }
        let snapshot = ClusterSnapshot(layouts: [four], nodes: nodes, jobs: jobs, time: 3600)
        let request = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10)
        guard case let .plan(plan) = try Lab.plan(snapshot, request) else { Issue.record("no plan"); return }
        #expect(Set(plan.nodes.map(\.node)) == ["node1", "node2", "node3", "node4"])
        #expect(plan.victims.sorted() == Array(17...24))
        #expect(plan.reasons.first == "all 4 nodes in block b1 (topology.conf)")
        // Without blocks the planner also takes the cheapest nodes (fewest victims): b1's.
        // Five nodes fit in no block: the plan spans blocks and says so.
        var five = request
        five.nodeCount = 5
        guard case let .plan(spanning) = try Lab.plan(snapshot, five) else { Issue.record("no plan"); return }
        #expect(spanning.reasons.first == "no block can host all 5 nodes: the plan spans blocks")
        #expect(spanning.victims.count == 12)
    }
}

@Suite struct ControllerBlocksTests {
    /// preempt/topo_aware's planning nodes carry the blocks the topology store read.
    @Test func planningNodesCarryTheirBlocks() {
        var topology = ControllerTopology(layouts: [Lab.islands], gpuCounts: [8], layoutOfNode: ["node1": 0, "node2": 0, "node3": 0])
        topology.blockOfNode = ["node1": "b1", "node2": "b2"]
        let nodes = (1...3).map { ControllerSnapshot.Node(name: "node\($0)", available: true, gpuCount: 8, allocated: GPUSet()) }
        #expect(PreemptController.planningNodes(nodes, topology: topology).nodes.map(\.block) == ["b1", "b2", nil])
    }
}

@Suite struct SlurmConfParameterTests {
    @Test func readsTheLastValueOfALineParameter() throws {
        let text = "ClusterName=c\nTopologyPlugin=topology/tree\n  topologyplugin=\"topology/block\" # blocks\nNodeName=n TopologyPlugin=x\n"
        #expect(SlurmConfNodes.parameter("TopologyPlugin", in: text) == "topology/block")
        #expect(SlurmConfNodes.parameter("TopologyPlugin", in: "TopologyPlugin=topology/block#c\r\n") == "topology/block")
        #expect(SlurmConfNodes.parameter("TopologyPlugin", in: "NodeName=n TopologyPlugin=x") == nil)
        #expect(BlockTopology.isSelected(bySlurmConf: "TopologyPlugin=Topology/Block\n"))
        #expect(!BlockTopology.isSelected(bySlurmConf: "TopologyPlugin=topology/tree\n"))
        #expect(BlockTopology.path(besideSlurmConf: "/etc/slurm/slurm.conf") == "/etc/slurm/topology.conf")
        #expect(try BlockTopology.parse(BlockTopologyTests.twoBlocks, file: "t").blockOfNode["node6"] == "b2")
    }
}
