import Foundation
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

    /// Where Slurm may place a job of n nodes (eval_nodes_block.c's _get_block_level): one
    /// base block up to its nodes, then the aggregate of the next configured level.
    @Test func unitsFollowSlurmsBlockLevel() throws {
        let text = (1...5).map { "BlockName=b\($0) Nodes=n[\($0 * 2 - 1)-\($0 * 2)]" }.joined(separator: "\n") + "\nBlockSizes=2,8\n"
        let levels = try BlockTopology.parse(text, file: "t").blockLevels
        #expect(levels.levels == [1, 4])
        #expect(levels.level(forNodes: 2) == 1 && levels.level(forNodes: 3) == 4 && levels.level(forNodes: 8) == 4)
        #expect(levels.level(forNodes: 9) == nil)
        #expect(levels.units(forNodes: 2).map(\.name) == ["b1", "b2", "b3", "b4", "b5"])
        #expect(levels.units(forNodes: 5).map(\.name) == ["b1,b2,b3,b4"])  // b5 alone: no trailing aggregate
        #expect(levels.units(forNodes: 10).map(\.name) == ["all blocks"])
        let derived = try #require(BlockLevels.derived(from: ["b2", "b2", "b1", "b1", nil].enumerated().map {
            ClusterSnapshot.NodeState(name: "n\($0.offset)", layout: 0, block: $0.element)
        }))
        #expect(derived == BlockLevels(order: ["b2", "b1"], baseNodes: 2, levels: [1, 2]))
        let json = #"{"order":["b1","b1"],"baseNodes":4,"levels":[1]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BlockLevels.self, from: Data(json.utf8)) }
        let three = #"{"order":["b1"],"baseNodes":4,"levels":[3]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(BlockLevels.self, from: Data(three.utf8)) }
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
        // Five nodes fit in no base block: Slurm places them in the aggregated block of b1 and
        // b2 (levels 1 and 2 base blocks), and so does the plan.
        var five = request
        five.nodeCount = 5
        guard case let .plan(spanning) = try Lab.plan(snapshot, five) else { Issue.record("no plan"); return }
        #expect(spanning.reasons.first == "all 5 nodes in the aggregated block b1,b2 (topology.conf)")
        #expect(spanning.domain == NodeDomain(kind: .block, name: "b1,b2"))
        #expect(plan.domain == NodeDomain(kind: .block, name: "b1"))
        #expect(spanning.victims.count == 12)
    }

    /// Two blocks of four 4-GPU nodes; `held` lists, per node (0-7), the GPU counts of its jobs
    /// (priority 1 unless given in `priorities` by job id), started in node order.
    static func fill(_ held: [[Int]], priorities: [UInt32: Int] = [:], preemptible: Set<UInt32>? = nil) throws -> ClusterSnapshot {
        let four = ClusterSnapshot.LayoutSpec(paths: (0..<4).map { i in (0..<4).map { $0 == i ? "X" : "NV4" } },
                                              sockets: [0, 0, 1, 1])
        let nodes = (1...8).map { ClusterSnapshot.NodeState(name: "node\($0)", layout: 0, block: $0 <= 4 ? "b1" : "b2") }
        var jobs: [ClusterSnapshot.RunningJob] = []
        for (node, sizes) in held.enumerated() {
            var next = 0
            for size in sizes {
                let id = UInt32(jobs.count + 1)
                jobs.append(.init(id: id, priority: priorities[id] ?? 1, startTime: Int64(jobs.count),
                                  preemptible: preemptible?.contains(id) ?? true,
                                  allocations: [.init(node: node, gpus: GPUSet(next..<(next + size)))]))
                next += size
            }
        }
        return ClusterSnapshot(layouts: [four], nodes: nodes, jobs: jobs, time: 3600)
    }

    /// Two blocks of four 4-GPU nodes filled in the order given (each node's jobs on GPUs 0..,
    /// started one after another): the block clusters' fills.
    static func ordered(_ fill: [(node: Int, sizes: [Int])]) -> ClusterSnapshot {
        let four = ClusterSnapshot.LayoutSpec(paths: (0..<4).map { i in (0..<4).map { $0 == i ? "X" : "NV4" } },
                                              sockets: [0, 0, 1, 1])
        let nodes = (1...8).map { ClusterSnapshot.NodeState(name: "node\($0)", layout: 0, block: $0 <= 4 ? "b1" : "b2") }
        var jobs: [ClusterSnapshot.RunningJob] = []
        for (node, sizes) in fill {
            var next = 0
            for size in sizes {
                jobs.append(.init(id: UInt32(jobs.count + 1), priority: 1, startTime: Int64(jobs.count),
                                  allocations: [.init(node: node - 1, gpus: GPUSet(next..<(next + size)))]))
                next += size
            }
        }
        return ClusterSnapshot(layouts: [four], nodes: nodes, jobs: jobs, time: 3600,
                               blockLevels: BlockLevels(order: ["b1", "b2"], baseNodes: 4, levels: [1, 2]))
    }

    /// The stock model of a multi-node preemption with blocks against what stock 26.05.3 and
    /// 24.11.5 did (StockBlocksTests): all sixteen of b2 in the issue's scenario, b1's six when
    /// the four cheapest nodes span both blocks.
    @Test func stockModelTakesWhatTheControllerTook() throws {
        let request = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10)
        let sixteen = Self.ordered((5...8).map { ($0, [1, 1, 1, 1]) } + (1...4).map { ($0, [2, 2]) })
        let first = try #require(StockPreemption.simulateMultiNode(request, in: try PlanningIndex(sixteen)))
        #expect(first.victims == Array(1...16))
        #expect(first.nodes.map(\.name) == ["node5", "node6", "node7", "node8"])
        let across = Self.ordered([(1, [4]), (2, [4]), (5, [4]), (6, [4]), (3, [2, 2]), (4, [2, 2]), (7, [1, 1, 1, 1]), (8, [1, 1, 1, 1])])
        let second = try #require(StockPreemption.simulateMultiNode(request, in: try PlanningIndex(across)))
        #expect(second.victims == [1, 2, 5, 6, 7, 8])
        #expect(second.nodes.map(\.name) == ["node1", "node2", "node3", "node4"])
        // Youngest first: b1's 2-GPU jobs are younger, and free b1 with eight.
        let youngest = try #require(StockPreemption.simulateMultiNode(request, in: try PlanningIndex(sixteen),
                                                                      settings: StockSettings(order: .youngestFirst)))
        #expect(youngest.victims == Array(17...24))
    }

    /// A node named by -w (the job asks for more) and --segment, planned and in the stock model
    /// (StockBlocksTests replays both on the controllers). Named: node5's block b2 must hold the
    /// job; node7's four 1-GPU jobs are the oldest, so stock frees node7 before node6.
    /// Segments of 2: one pair of nodes in each block is cheapest (one 4-GPU job per node);
    /// stock frees the oldest first, node7 and node8 (eight jobs), then node3 and node4 (four).
    static let namedNode: [(node: Int, sizes: [Int])] =
        [(7, [1, 1, 1, 1]), (5, [4]), (6, [4]), (8, [1, 1, 1, 1]), (1, [2, 2]), (2, [2, 2]), (3, [4]), (4, [4])]
    static let segmentPairs: [(node: Int, sizes: [Int])] =
        [(7, [1, 1, 1, 1]), (8, [1, 1, 1, 1]), (3, [2, 2]), (4, [2, 2]), (1, [4]), (2, [4]), (5, [4]), (6, [4])]

    @Test func namedNodesAndSegments() throws {
        let named = PreemptorRequest(gpusPerNode: 4, nodeCount: 2, level: .nvlink, priority: 10, requiredNodes: ["node5"])
        let namedFill = Self.ordered(Self.namedNode)
        guard case let .plan(plan) = try Lab.plan(namedFill, named) else { Issue.record("no plan with -w node5"); return }
        #expect(plan.victims == [5, 6] && plan.domain == NodeDomain(kind: .block, name: "b2"))
        #expect(Set(plan.nodes.map(\.node)) == ["node5", "node6"])
        let namedStock = try #require(StockPreemption.simulateMultiNode(named, in: try PlanningIndex(namedFill)))
        #expect(namedStock.victims == [1, 2, 3, 4, 5] && namedStock.nodes.map(\.name) == ["node5", "node7"])
        let youngest = StockSettings(order: .youngestFirst)
        #expect(StockPreemption.simulateMultiNode(named, in: try PlanningIndex(namedFill), settings: youngest)?.victims == [5, 6])

        let segmented = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10, segmentSize: 2)
        let pairs = Self.ordered(Self.segmentPairs)
        guard case let .plan(split) = try Lab.plan(pairs, segmented) else { Issue.record("no plan with --segment=2"); return }
        #expect(split.victims == [13, 14, 15, 16] && split.domain == NodeDomain(kind: .block, name: "b1+b2"))
        #expect(split.reasons.first == "2 segments of 2 nodes (--segment), each inside one block: b1, b2 (topology.conf)")
        let whole = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10)
        guard case let .plan(unsplit) = try Lab.plan(pairs, whole) else { Issue.record("no plan without --segment"); return }
        #expect(unsplit.victims.count == 6 && unsplit.domain == NodeDomain(kind: .block, name: "b1"))
        let splitStock = try #require(StockPreemption.simulateMultiNode(segmented, in: try PlanningIndex(pairs)))
        #expect(splitStock.victims == Array(1...12))
        #expect(Set(splitStock.nodes.map(\.name)) == ["node3", "node4", "node7", "node8"])
        #expect(StockPreemption.simulateMultiNode(segmented, in: try PlanningIndex(pairs), settings: youngest)?.victims == [13, 14, 15, 16])

        // Slurm refuses these: so does the planner, saying why.
        var uneven = segmented
        uneven.segmentSize = 3
        guard case let .noPlan(code, reason) = try Lab.plan(pairs, uneven) else { Issue.record("a plan for --segment=3 of 4 nodes"); return }
        #expect(code == .invalidRequest && reason == "--segment=3 does not divide the job's 4 nodes: Slurm will not place the job")
        var elsewhere = named
        elsewhere.requiredNodes = ["node9"]
        guard case let .noPlan(missing, why) = try Lab.plan(namedFill, elsewhere) else { Issue.record("a plan on an unknown node"); return }
        #expect(missing == .noCandidateNodes && why == "required node(s) node9 (-w) not available to the job")
        var split4 = named
        split4.nodeCount = 4
        split4.requiredNodes = ["node1", "node5"]
        guard case let .noPlan(_, apart) = try Lab.plan(namedFill, split4) else { Issue.record("a plan across blocks for -w node1,node5"); return }
        #expect(apart == "the nodes named by -w (node1,node5) are not all in one block, where topology/block places a job of 4 nodes")
    }

    /// --spread-segments and --consolidate-segments (25.11+): b1 holds the cheapest nodes (one
    /// 4-GPU job each), so plain segments both go to b1; spread puts one pair in each block;
    /// consolidated keeps the job in one block (b1), or with spread in one aggregate of both.
    static let spreadPairs: [(node: Int, sizes: [Int])] =
        [(7, [1, 1, 1, 1]), (8, [1, 1, 1, 1]), (5, [2, 2]), (6, [2, 2]), (1, [4]), (2, [4]), (3, [4]), (4, [4])]

    @Test func spreadAndConsolidatedSegments() throws {
        var fill = Self.ordered(Self.spreadPairs)
        fill.slurm = SlurmRelease(26, 5, 3)
        func plan(_ placement: SegmentPlacement) throws -> Plan? {
            var request = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10, segmentSize: 2)
            request.segmentPlacement = placement
            guard case let .plan(plan) = try Lab.plan(fill, request) else { return nil }
            return plan
        }
        let plain = try #require(try plan([]))
        #expect(plain.victims == [13, 14, 15, 16] && plain.domain?.name == "b1")
        #expect(plain.reasons.first == "2 segments of 2 nodes (--segment), each inside one block: b1 (2 segments) (topology.conf)")
        let spread = try #require(try plan(.spread))
        // One pair in each block: node3 and node4 (younger jobs than node1's and node2's, less
        // work lost) and node5 and node6.
        #expect(spread.victims == [9, 10, 11, 12, 15, 16] && spread.domain?.name == "b1+b2")
        let consolidated = try #require(try plan(.consolidate))
        #expect(consolidated.victims == [13, 14, 15, 16] && consolidated.domain?.name == "b1")
        #expect(consolidated.reasons.first?.contains("--consolidate-segments: all inside b1") == true)
        let both = try #require(try plan([.consolidate, .spread]))
        #expect(both.victims == [9, 10, 11, 12, 15, 16] && both.reasons.first?.contains("all inside b1,b2") == true)

        var request = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10, segmentSize: 2)
        request.segmentPlacement = .spread
        let index = try PlanningIndex(fill)
        // Stock places each segment in the first block with a free pair (b1 first), so both
        // orders end with node1 and node2 in b1 and node5 and node6 in b2 (StockBlocksTests
        // checks it on 26.05.3).
        #expect(StockPreemption.simulateMultiNode(request, in: index)?.victims == [9, 10, 11, 12, 13, 14])
        #expect(StockPreemption.simulateMultiNode(request, in: index, settings: StockSettings(order: .youngestFirst))?.victims
                    == [9, 10, 11, 12, 13, 14])
    }

    /// topology/block places a job of at most a block's nodes inside one block: a plan across
    /// blocks would requeue jobs for nothing, so neither mode makes one; without blocks the
    /// same nodes are planned as before.
    @Test func noPlanSpansBlocks() throws {
        // Only node1, node2 (b1) and node5, node6 (b2) can be freed: node3, node4, node7, node8
        // run jobs that may not be preempted.
        let snapshot = try Self.fill([[4], [4], [4], [4], [4], [4], [4], [4]], preemptible: [1, 2, 5, 6])
        let request = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, mode: .guaranteed, priority: 10)
        guard case let .noPlan(code, reason) = try Lab.plan(snapshot, request) else { Issue.record("a plan across blocks"); return }
        #expect(code == .noAlignedPlan)
        #expect(reason == "no block can free 4 nvlink-aligned GPUs on each of 4 nodes; topology/block places a job of 4 nodes in one block, and victims across blocks would free nothing it uses")
        var loose = request
        loose.mode = .bestEffort
        guard case let .noPlan(_, looseReason) = try Lab.plan(snapshot, loose) else { Issue.record("a plan across blocks"); return }
        #expect(looseReason == "no block can free 4 GPUs on each of 4 nodes; topology/block places a job of 4 nodes in one block, and victims across blocks would free nothing it uses")
        // Without blocks (another cluster) guaranteed spans nodes as before.
        var flat = snapshot
        for n in flat.nodes.indices { flat.nodes[n].block = nil }
        guard case let .plan(anywhere) = try Lab.plan(flat, request) else { Issue.record("no plan"); return }
        #expect(anywhere.domain == nil && anywhere.victims == [1, 2, 5, 6])
    }

    /// A node's cheapest plan is not always the best part of a multi-node plan: the aggregate's
    /// priority is the highest over its nodes. node1 can only give up job 1 (priority 5);
    /// node2 either jobs 3 and 4 (priority 1, two victims: its own cheapest) or job 5
    /// (priority 3, one victim). With node1's priority 5 in the plan anyway, job 5 alone is the
    /// cheaper part: 2 victims in all, not 3.
    @Test func aNodesCheapestPlanIsNotAlwaysTheBestPart() throws {
        let snapshot = try Self.fill([[2, 2], [1, 1, 2], [4], [4], [4], [4], [4], [4]],
                                     priorities: [1: 5, 5: 3], preemptible: [1, 3, 4, 5])
        let request = PreemptorRequest(gpusPerNode: 2, nodeCount: 2, level: .nvlink, priority: 10)
        guard case let .plan(plan) = try Lab.plan(snapshot, request) else { Issue.record("no plan"); return }
        #expect(plan.victims == [1, 5])
        #expect(plan.cost.maxPriority == 5 && plan.cost.victims == 2)
        #expect(plan.domain == NodeDomain(kind: .block, name: "b1"))
        // One node alone: node2's own cheapest (priority 1) is the plan.
        var one = request
        one.nodeCount = 1
        one.candidateNodes = ["node2"]
        guard case let .plan(single) = try Lab.plan(snapshot, one) else { Issue.record("no plan"); return }
        #expect(single.victims == [3, 4])
    }
}

@Suite struct ControllerBlocksTests {
    /// A 2-node, 4-GPU-per-node preemptor inside preempt/topo_aware: nodes 1-2 (b1) hold two
    /// 2-GPU batch jobs each on island 0-3, nodes 3-4 (b2) one 4-GPU job each there (the other
    /// island runs jobs that may not be preempted): the plan takes b2's two jobs, and its log
    /// line and record name the block. With node2's and node4's jobs not preemptible either,
    /// only node1 and node3 can be freed: nothing spans blocks, the job waits (guaranteed) and
    /// the record says why.
    @Test func multiNodePlansNameTheirBlock() throws {
        var topology = ControllerTopology(layouts: [Lab.islands], gpuCounts: [8],
                                          layoutOfNode: Dictionary(uniqueKeysWithValues: (1...4).map { ("node\($0)", 0) }))
        topology.blockOfNode = ["node1": "b1", "node2": "b1", "node3": "b2", "node4": "b2"]
        func snapshot(spanOnly: Bool) -> ControllerSnapshot {
            let held: [(node: Int, gpus: [Int], eligible: Bool)] = [
                (0, [0, 1], true), (0, [2, 3], true), (0, [4, 5, 6, 7], false),
                (1, [0, 1], !spanOnly), (1, [2, 3], !spanOnly), (1, [4, 5, 6, 7], false),
                (2, [0, 1, 2, 3], true), (2, [4, 5, 6, 7], false),
                (3, [0, 1, 2, 3], !spanOnly), (3, [4, 5, 6, 7], false),
            ]
            let jobs = held.enumerated().map { i, h in
                ControllerSnapshot.Job(id: UInt32(i + 1), basePriority: Controller.batchPriority, eligible: h.eligible,
                                       startTime: Int64(i * 60), allocations: [.init(node: h.node, gpus: GPUSet(h.gpus))])
            }
            var preemptor = Controller.infer(4)
            preemptor.nodeCount = 2
            return ControllerSnapshot(time: 3600, nodes: (1...4).map { .init(name: "node\($0)", available: true, gpuCount: 8, allocated: GPUSet(0...7)) },
                                      jobs: jobs, preemptor: preemptor)
        }
        var controller = PreemptController()
        let decision = controller.decide(snapshot(spanOnly: false), config: Controller.config, topology: topology,
                                         settings: PreemptSettings(), clock: Controller.Clock().read)
        let record = try #require(decision.records.first { $0.event == .plan }, "\(decision.log.map(\.text))")
        #expect(record.victims == [7, 9])
        #expect(record.domain == NodeDomain(kind: .block, name: "b2"))
        #expect(decision.log.contains { $0.text.contains("100 plan node4 gpus=0-3 node3 gpus=0-3 level=nvlink block=b2 victims=7,9 ") }, "\(decision.log.map(\.text))")
        var waiting = PreemptController()
        let wait = waiting.decide(snapshot(spanOnly: true), config: Controller.config, topology: topology,
                                  settings: PreemptSettings(), clock: Controller.Clock().read)
        let said = try #require(wait.records.first)
        #expect(said.event == .wait)
        #expect(said.message.contains("topology/block places a job of 2 nodes in one block"), "\(said.message)")
    }


    /// preempt/topo_aware's planning nodes carry the blocks the topology store read.
    @Test func planningNodesCarryTheirBlocks() {
        var topology = ControllerTopology(layouts: [Lab.islands], gpuCounts: [8], layoutOfNode: ["node1": 0, "node2": 0, "node3": 0])
        topology.blockOfNode = ["node1": "b1", "node2": "b2"]
        let nodes = (1...3).map { ControllerSnapshot.Node(name: "node\($0)", available: true, gpuCount: 8, allocated: GPUSet()) }
        #expect(PreemptController.planningNodes(nodes, topology: topology).nodes.map(\.block) == ["b1", "b2", nil])
        // And their leaf switches (topology/tree).
        var tree = ControllerTopology(layouts: [Lab.islands], gpuCounts: [8], layoutOfNode: ["node1": 0, "node2": 0, "node3": 0])
        tree.leafSwitchOfNode = ["node1": "s1", "node3": "s2"]
        #expect(PreemptController.planningNodes(nodes, topology: tree).nodes.map(\.leafSwitch) == ["s1", nil, "s2"])
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
        #expect(SwitchTopology.isSelected(bySlurmConf: "TopologyPlugin=topology/tree\n") && !SwitchTopology.isSelected(bySlurmConf: "TopologyPlugin=topology/block\n"))
        #expect(BlockTopology.path(besideSlurmConf: "/etc/slurm/slurm.conf") == "/etc/slurm/topology.conf")
        #expect(try BlockTopology.parse(BlockTopologyTests.twoBlocks, file: "t").blockOfNode["node6"] == "b2")
    }
}
