import Foundation
import Testing
import TopoEngine

/// Multi-node NVLink domains on real controllers with `TopologyPlugin=topology/block` (Slurm
/// 23.11 and later; scripts/test runs these on 24.11.5 and 26.05.3): 8 nodes of 4 NVSwitch GPUs,
/// blocks b1 = node[1-4] and b2 = node[5-8]; a 4-node inference job of 4 GPUs per node.
extension Cluster {
    /// Stock preemption (partition_prio) with blocks.
    static let stockBlocks: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_STOCK_BLOCKS")
    /// preempt/topo_aware with blocks.
    static let topoAwareBlocks: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_TOPO_AWARE_BLOCKS")
    /// Stock preemption taking victims youngest first (PreemptParameters=youngest_first), the
    /// strongest stock order, with blocks.
    static let youngestBlocks: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_YOUNGEST_BLOCKS")

    /// The nodes of a job as Slurm lists them (`squeue %N`), expanded.
    func nodes(of id: String) throws -> [String] {
        let list = try run(["squeue", "-h", "-j", id, "-o", "%N"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !list.isEmpty else { return [] }
        return try BracketList.expandList(list)
    }

    /// A running batch job as the stock model needs it: its node, GPUs and start (seconds).
    struct Held {
        var id: String
        var node: String
        var gpus: GPUSet
        var start: Int64
    }

    /// `scontrol show job`'s StartTime (local time, whole seconds), as seconds since the epoch.
    func held(_ id: String, node: String) throws -> Held {
        let fields = try job(id)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        let start = try #require(fields["StartTime"].flatMap(formatter.date(from:)), "StartTime of \(id): \(fields["StartTime"] ?? "-")")
        return Held(id: id, node: node, gpus: try #require(try gpuIndices(id), "GPUs of \(id)"), start: Int64(start.timeIntervalSince1970))
    }

    /// Submits a 1-CPU batch job of `gpus` GPUs to `node<node>`; its id.
    func submitBatch(node: Int, gpus: Int) throws -> String {
        let result = try run(["sbatch", "--parsable", "-p", "batch", "-w", "node\(node)", "-c", "1",
                              "--gres=gpu:\(gpus)", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Fills the nodes in the order given with batch jobs of the given sizes (each started
    /// before the next, and each node's first in a later second than the last job before it:
    /// start times are whole seconds, and youngest-first takes jobs that started in the same
    /// second in job-id order, oldest first), then submits the 4-node inference job and waits up
    /// to a minute for it to run. Returns every batch job with its node, the inference job, its
    /// nodes, the victims.
    func blockScenario(_ fill: [(node: Int, sizes: [Int])], inference: [String] = ["-N", "4", "--gres=gpu:4"]) throws
        -> (batch: [(id: String, node: String)], infer: String, inferNodes: [String], victims: [(id: String, node: String)],
            held: [Held]) {
        var batch: [(id: String, node: String)] = []
        var ids: [String] = []
        var held: [Held] = []
        try finishingOnError(&ids) { ids in
            for (node, sizes) in fill {
                if let last = held.last {
                    let later = waitUntil(seconds: 5) { Int64(Date().timeIntervalSince1970) > last.start }
                    try #require(later, "the clock did not pass job \(last.id)'s start \(last.start)")
                }
                for size in sizes {
                    let id = try submitBatch(node: node, gpus: size)
                    ids.append(id)
                    batch.append((id, "node\(node)"))
                    let running = try waitUntil(seconds: 30) { try state(id) == "RUNNING" }
                    let reason = running ? "" : (try job(id)["Reason"] ?? "?")
                    try #require(running, "batch job \(id) on node\(node) did not start (\(reason))")
                    held.append(try self.held(id, node: "node\(node)"))
                }
            }
        }
        let submitted = try run(["sbatch", "--parsable", "-p", "infer"] + inference + ["-c", "1",
                                 "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(submitted.status == 0, "\(submitted.stderr)")
        let infer = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var all = ids + [infer]
        try finishingOnError(&all) { _ in
            let started = try waitUntil(seconds: 60) { try state(infer) == "RUNNING" }
            let reason = started ? "" : (try job(infer)["Reason"] ?? "?")
            try #require(started, "the inference job did not start (\(reason))")
        }
        let victims = try batch.filter { try restarts($0.id) > 0 || state($0.id) != "RUNNING" }
        return (batch, infer, try nodes(of: infer), victims, held)
    }

    /// The issue's scenario: block b2 first, sixteen 1-GPU jobs; then b1, eight 2-GPU jobs.
    static let sixteenAndEight: [(node: Int, sizes: [Int])] =
        (5...8).map { ($0, [1, 1, 1, 1]) } + (1...4).map { ($0, [2, 2]) }
    /// The four cheapest nodes (one 4-GPU job each: node1, node2, node5, node6) span both
    /// blocks; b1 costs 6 victims (1 + 1 + 2 + 2), b2 10 (1 + 1 + 4 + 4). A planner blind to
    /// blocks would take the four across blocks.
    static let cheapestAcrossBlocks: [(node: Int, sizes: [Int])] =
        [(1, [4]), (2, [4]), (5, [4]), (6, [4]), (3, [2, 2]), (4, [2, 2]), (7, [1, 1, 1, 1]), (8, [1, 1, 1, 1])]
    /// `-N 2 -w node5`: the job must be in b2; node7's four 1-GPU jobs are the oldest there, node6
    /// holds one 4-GPU job.
    static let namedNode: [(node: Int, sizes: [Int])] =
        [(7, [1, 1, 1, 1]), (5, [4]), (6, [4]), (8, [1, 1, 1, 1]), (1, [2, 2]), (2, [2, 2]), (3, [4]), (4, [4])]
    static let namedNodeJob = ["-N", "2", "-w", "node5", "--gres=gpu:4"]
    static let namedNodeRequest = PreemptorRequest(gpusPerNode: 4, nodeCount: 2, level: .nvlink, priority: 10, requiredNodes: ["node5"])
    /// `-N 4 --segment=2`: two pairs of nodes, each pair inside one block; the oldest jobs are
    /// the 1-GPU and 2-GPU ones, the cheapest pairs node1+node2 and node5+node6 (one job each).
    static let segmentPairs: [(node: Int, sizes: [Int])] =
        [(7, [1, 1, 1, 1]), (8, [1, 1, 1, 1]), (3, [2, 2]), (4, [2, 2]), (1, [4]), (2, [4]), (5, [4]), (6, [4])]
    static let segmentPairsJob = ["-N", "4", "--segment=2", "--gres=gpu:4"]
    static let segmentPairsRequest = PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10, segmentSize: 2)
    /// `-N 4 --segment=2 --spread-segments` (Slurm 25.11+): b1's nodes are the cheapest (one
    /// 4-GPU job each), so plain segments would both go to b1; spread puts one pair in each.
    static let spreadPairs: [(node: Int, sizes: [Int])] =
        [(7, [1, 1, 1, 1]), (8, [1, 1, 1, 1]), (5, [2, 2]), (6, [2, 2]), (1, [4]), (2, [4]), (3, [4]), (4, [4])]
    static let spreadPairsJob = ["-N", "4", "--segment=2", "--spread-segments", "--gres=gpu:4"]
    static var spreadPairsRequest: PreemptorRequest {
        var request = segmentPairsRequest
        request.segmentPlacement = .spread
        return request
    }

    /// Whether this release has `--spread-segments` (25.11 and later).
    var hasSegmentPlacement: Bool { (SlurmRelease(slurmRelease) ?? .debianBookworm) >= SlurmRelease(25, 11, 0) }

    /// On releases without the option, sbatch refuses it (so the scenario cannot run there).
    func refusesSpreadSegments() throws {
        let result = try run(["sbatch", "--parsable", "-p", "infer"] + Self.spreadPairsJob + ["-o", "/dev/null", "--wrap", "true"])
        #expect(result.status != 0, "sbatch \(slurmRelease) took --spread-segments: \(result.stdout)")
        if result.status == 0 { try? finish([result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)]) }
    }

    /// The named scenarios the stock suites record: name, fill, the inference job's options, the
    /// same request for the stock model.
    static let blockScenarios: [(name: String, fill: [(node: Int, sizes: [Int])], job: [String], request: PreemptorRequest)] = [
        ("sixteen and eight", sixteenAndEight, ["-N", "4", "--gres=gpu:4"],
         PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10)),
        ("cheapest across blocks", cheapestAcrossBlocks, ["-N", "4", "--gres=gpu:4"],
         PreemptorRequest(gpusPerNode: 4, nodeCount: 4, level: .nvlink, priority: 10)),
        ("-N 2 -w node5", namedNode, namedNodeJob, namedNodeRequest),
        ("-N 4 --segment=2", segmentPairs, segmentPairsJob, segmentPairsRequest),
    ]

    /// Runs named scenario `i` on this stock cluster: its victims must be `expected[i]`, and the
    /// stock model (this cluster's victim order) must take the same jobs.
    func recordScenario(_ i: Int, label: String, expected: [Int]) throws {
        let scenario = i < Self.blockScenarios.count ? Self.blockScenarios[i]
            : (name: "-N 4 --segment=2 --spread-segments", fill: Self.spreadPairs, job: Self.spreadPairsJob, request: Self.spreadPairsRequest)
        guard i < Self.blockScenarios.count || hasSegmentPlacement else { return try refusesSpreadSegments() }
        let outcome = try blockScenario(scenario.fill, inference: scenario.job)
        defer { try? finish(outcome.batch.map(\.id) + [outcome.infer]) }
        print("\(label), \(scenario.name): \(outcome.victims.count) victims on \(Set(outcome.victims.map(\.node)).sorted()), job on \(outcome.inferNodes)")
        #expect(outcome.victims.count == expected[i], "\(label), \(scenario.name)")
        let predicted = try stockModel(outcome.held, request: scenario.request)
        #expect(predicted == Set(outcome.victims.map(\.id)), "\(label), \(scenario.name): the stock model takes \(predicted.sorted()), the controller took \(outcome.victims.map(\.id))")
    }
}

/// The suites on the three block clusters, one at a time: the random fills use all three.
@Suite(.serialized) struct BlockClusterTests {}

extension BlockClusterTests {
    /// What stock Slurm does, recorded on the real controller: the baseline of the comparison.
    @Suite(.serialized, .needs("the stock cluster with topology/block (scripts/test, 24.11 and later)", Cluster.stockBlocks != nil))
    struct StockBlocksTests {
        let cluster: Cluster
        init() throws { cluster = try #require(Cluster.stockBlocks) }

        /// The named scenarios, then (25.11 and later; before, sbatch must refuse the option)
        /// `--spread-segments`.
        @Test(arguments: 0...Cluster.blockScenarios.count) func namedScenario(_ i: Int) throws {
            try cluster.recordScenario(i, label: "stock", expected: Self.observed)
        }

        /// Victims stock Slurm took, in `blockScenarios` order (26.05.3 by hand on 2026-12-03,
        /// then every scripts/test run on 24.11.5 and 26.05.3): all sixteen of b2 in the first
        /// (its jobs are older, so they go first, and they free a whole block); b1's six in the
        /// second, as the planner; node7's four oldest jobs and node5's for `-w node5`; node7's
        /// and node8's eight and node3's and node4's four for `--segment=2`.
        static let observed = [16, 6, 5, 12, 6]
    }
}

extension BlockClusterTests {
    /// Stock Slurm with its strongest victim order, youngest first: the named scenarios on the
    /// real controller, each against the stock model (StockPreemption with youngest_first).
    @Suite(.serialized, .needs("the youngest-first stock cluster with topology/block (scripts/test, 24.11 and later)", Cluster.youngestBlocks != nil))
    struct YoungestBlocksTests {
        let cluster: Cluster
        init() throws { cluster = try #require(Cluster.youngestBlocks) }

        /// Victims as the model predicted them (README showed them as modelled before this
        /// cluster existed); the controller must agree.
        static let observed = [8, 10, 2, 4, 6]

        @Test(arguments: 0...Cluster.blockScenarios.count) func namedScenario(_ i: Int) throws {
            try #require(cluster.victimOrder == "youngest-first", "\(cluster.directory) takes victims \(cluster.victimOrder)")
            try cluster.recordScenario(i, label: "stock youngest-first", expected: Self.observed)
        }
    }
}

extension BlockClusterTests {
    /// preempt/topo_aware: the whole cheapest block, never more victims than stock.
    @Suite(.serialized, .needs("the preempt/topo_aware cluster with topology/block (scripts/test, 24.11 and later)", Cluster.topoAwareBlocks != nil))
    struct TopoAwareBlocksTests {
        let cluster: Cluster
        init() throws { cluster = try #require(Cluster.topoAwareBlocks) }

        @Test func blocksAreLoaded() throws {
            #expect(cluster.logLines().contains { $0.contains("preempt/topo_aware: loaded 2 blocks of 4 nodes from \(cluster.directory)/etc/topology.conf") })
        }

        @Test func sixteenAndEightTakesBlockOne() throws {
            let outcome = try cluster.blockScenario(Cluster.sixteenAndEight)
            defer { try? cluster.finish(outcome.batch.map(\.id) + [outcome.infer]) }
            #expect(outcome.inferNodes == ["node1", "node2", "node3", "node4"])
            #expect(outcome.victims.count == 8)
            #expect(outcome.victims.allSatisfy { ["node1", "node2", "node3", "node4"].contains($0.node) })
            #expect(outcome.victims.count <= StockBlocksTests.observed[0])
            #expect(try cluster.controllerIsUp())
        }

        @Test func cheapestAcrossBlocksStaysInOneBlock() throws {
            let outcome = try cluster.blockScenario(Cluster.cheapestAcrossBlocks)
            defer { try? cluster.finish(outcome.batch.map(\.id) + [outcome.infer]) }
            #expect(outcome.inferNodes == ["node1", "node2", "node3", "node4"])
            #expect(outcome.victims.count == 6)
            #expect(outcome.victims.count <= StockBlocksTests.observed[1])
            #expect(cluster.logLines().contains { $0.contains("JobId=\(outcome.infer) plan ") && $0.contains(" level=nvlink block=b1 victims=") })
            #expect(try cluster.controllerIsUp())
        }
    }
}

extension BlockClusterTests.TopoAwareBlocksTests {
    /// `-w` naming fewer nodes than `-N`: the named node is in the plan, the rest chosen in its
    /// block (before, the named node was the only candidate, and no plan had room for the job).
    @Test func namedNodeIsPlannedWithTheCheapestOfItsBlock() throws {
        let outcome = try cluster.blockScenario(Cluster.namedNode, inference: Cluster.namedNodeJob)
        defer { try? cluster.finish(outcome.batch.map(\.id) + [outcome.infer]) }
        print("topo_aware, -N 2 -w node5: \(outcome.victims.count) victims on \(Set(outcome.victims.map(\.node)).sorted()), job on \(outcome.inferNodes)")
        #expect(outcome.inferNodes == ["node5", "node6"])
        #expect(outcome.victims.count == 2)
        #expect(outcome.victims.count <= BlockClusterTests.StockBlocksTests.observed[2])
        #expect(cluster.logLines().contains { $0.contains("JobId=\(outcome.infer) plan ") && $0.contains(" level=nvlink block=b2 victims=") })
        #expect(try cluster.controllerIsUp())
    }

    /// `--segment=2`: one pair of nodes in each block, the cheapest pairs.
    @Test func segmentsTakeTheCheapestPairOfEachBlock() throws {
        let outcome = try cluster.blockScenario(Cluster.segmentPairs, inference: Cluster.segmentPairsJob)
        defer { try? cluster.finish(outcome.batch.map(\.id) + [outcome.infer]) }
        print("topo_aware, -N 4 --segment=2: \(outcome.victims.count) victims on \(Set(outcome.victims.map(\.node)).sorted()), job on \(outcome.inferNodes)")
        #expect(outcome.inferNodes == ["node1", "node2", "node5", "node6"])
        #expect(outcome.victims.count == 4)
        #expect(outcome.victims.count <= BlockClusterTests.StockBlocksTests.observed[3])
        #expect(cluster.logLines().contains { $0.contains("JobId=\(outcome.infer) plan ") && $0.contains(" level=nvlink block=b1+b2 victims=") })
        #expect(try cluster.controllerIsUp())
    }
}

extension BlockClusterTests.TopoAwareBlocksTests {
    /// `--spread-segments` (25.11 and later): one pair in each block, where plain segments would
    /// both be b1's.
    @Test func spreadSegmentsTakeOnePairPerBlock() throws {
        guard cluster.hasSegmentPlacement else { return try cluster.refusesSpreadSegments() }
        let outcome = try cluster.blockScenario(Cluster.spreadPairs, inference: Cluster.spreadPairsJob)
        defer { try? cluster.finish(outcome.batch.map(\.id) + [outcome.infer]) }
        print("topo_aware, -N 4 --segment=2 --spread-segments: \(outcome.victims.count) victims on \(Set(outcome.victims.map(\.node)).sorted()), job on \(outcome.inferNodes)")
        #expect(outcome.inferNodes == ["node3", "node4", "node5", "node6"])
        #expect(outcome.victims.count == 6)
        #expect(outcome.victims.count <= BlockClusterTests.StockBlocksTests.observed[4])
        #expect(cluster.logLines().contains { $0.contains("JobId=\(outcome.infer) plan ") && $0.contains(" level=nvlink block=b1+b2 victims=") })
        #expect(try cluster.controllerIsUp())
    }
}

extension Cluster {
    /// The GPU indices a running job holds on each of its nodes (`scontrol show job -d`, whose
    /// lines `Nodes=node[1-2] CPU_IDs=... GRES=gpu:4(IDX:0-3)` cover nodes with the same GPUs).
    func gpusPerNode(_ id: String) throws -> [String: GPUSet] {
        let detail = try run(["scontrol", "show", "job", "-d", id]).stdout
        var held: [String: GPUSet] = [:]
        for line in detail.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let nodes = words.first(where: { $0.hasPrefix("Nodes=") })?.dropFirst("Nodes=".count),
                  let gres = words.first(where: { $0.hasPrefix("GRES=") })?.dropFirst("GRES=".count), gres.contains("IDX:"),
                  let indices = try GresString.parse(String(gres)).first?.indices else { continue }
            for node in try BracketList.expandList(String(nodes)) { held[node] = GPUSet(indices) }
        }
        return held
    }

    /// Each node's affinity table, read from the cluster's slurm.conf and gres.conf.
    func affinityTables() throws -> [String: AffinityTable] {
        let etc = directory + "/etc/"
        let nodes = try SlurmConfNodes.parse(String(contentsOfFile: etc + "slurm.conf", encoding: .utf8), file: "slurm.conf")
        let gres = try GresConf.parse(String(contentsOfFile: etc + "gres.conf", encoding: .utf8), file: "gres.conf")
        return Dictionary(ClusterTopology(slurmNodes: nodes, gresConf: gres).nodes.map { ($0.name, $0.table) },
                          uniquingKeysWith: { first, _ in first })
    }

    /// A seeded random fill of the 8 block nodes and a multi-node inference job: per node (in a
    /// random order) a random split of its 4 GPUs into batch jobs, sometimes leaving one or two
    /// free; then an inference job of 2-4 nodes and 2 or 4 GPUs per node.
    struct RandomFill: CustomStringConvertible {
        var seed: UInt64
        var fill: [(node: Int, sizes: [Int])]
        var nodes: Int
        var gpusPerNode: Int

        init(seed: UInt64) {
            var rng = SplitMix64(seed: seed)
            let splits = [[4], [2, 2], [2, 1, 1], [1, 1, 2], [1, 1, 1, 1], [2, 1], [1, 1, 1], [2]]
            self.seed = seed
            fill = (1...8).shuffled(using: &rng).map { ($0, splits.randomElement(using: &rng)!) }
            nodes = Int.random(in: 2...4, using: &rng)
            gpusPerNode = [2, 4].randomElement(using: &rng)!
        }

        var description: String {
            "seed \(seed): " + fill.map { "node\($0.node):\($0.sizes.map(String.init).joined(separator: "+"))" }.joined(separator: " ")
                + ", inference -N \(nodes) --gres=gpu:\(gpusPerNode)"
        }
    }

    /// Runs a fill: each node's batch jobs submitted together and running before the next
    /// node's (so their ages follow the fill's order), then the inference job, which must run
    /// within a minute. Returns the victims (batch jobs requeued or no longer running), the
    /// inference job's nodes and GPUs per node; ends every job before returning.
    func replay(_ fill: RandomFill) throws
        -> (victims: [(id: String, node: String)], nodes: [String], gpus: [String: GPUSet], held: [Held]) {
        var batch: [(id: String, node: String)] = []
        var ids: [String] = []
        defer { try? finish(ids) }
        for (node, sizes) in fill.fill {
            var started: [String] = []
            for size in sizes {
                let id = try submitBatch(node: node, gpus: size)
                ids.append(id)
                started.append(id)
                batch.append((id, "node\(node)"))
            }
            let running = try waitUntil(seconds: 30) { try started.allSatisfy { try state($0) == "RUNNING" } }
            try #require(running, "\(fill): the batch jobs on node\(node) did not all start")
        }
        let held = try batch.map { try self.held($0.id, node: $0.node) }
        let submitted = try run(["sbatch", "--parsable", "-p", "infer", "-N", "\(fill.nodes)", "--gres=gpu:\(fill.gpusPerNode)",
                                 "-c", "1", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(submitted.status == 0, "\(submitted.stderr)")
        let infer = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        ids.append(infer)
        let started = try waitUntil(seconds: 60) { try state(infer) == "RUNNING" }
        let reason = started ? "" : (try job(infer)["Reason"] ?? "?")
        try #require(started, "\(fill): the inference job did not start (\(reason))")
        let victims = try batch.filter { try restarts($0.id) > 0 || state($0.id) != "RUNNING" }
        return (victims, try nodes(of: infer), try gpusPerNode(infer), held)
    }
}

extension BlockClusterTests {
    /// Seeded random fills on both block clusters, the same fill on each: preempt/topo_aware keeps
    /// the inference job inside one block with every node's GPUs NVLink-aligned, and never takes
    /// more victims than stock Slurm took for the same fill.
    @Suite(.serialized, .needs("the stock (oldest and youngest first) and preempt/topo_aware clusters with topology/block (scripts/test, 24.11 and later)",
                               Cluster.stockBlocks != nil && Cluster.topoAwareBlocks != nil && Cluster.youngestBlocks != nil))
    struct RandomBlockFillsTests {
        static let seeds: [UInt64] = [1, 2, 3, 4, 5]

        @Test(arguments: seeds) func neverMoreVictimsThanStock(seed: UInt64) throws {
            let stock = try #require(Cluster.stockBlocks), ours = try #require(Cluster.topoAwareBlocks)
            let young = try #require(Cluster.youngestBlocks)
            let fill = Cluster.RandomFill(seed: seed)
            let base = try stock.replay(fill), youngest = try young.replay(fill), mine = try ours.replay(fill)
            func blocks(_ nodes: [String]) -> [String] {
                Set(nodes.compactMap { Int($0.dropFirst("node".count)) }.map { $0 <= 4 ? "b1" : "b2" }).sorted()
            }
            print("block fill \(fill): stock \(base.victims.count) victims, job in \(blocks(base.nodes)) \(base.nodes); "
                  + "youngest-first \(youngest.victims.count) victims, job in \(blocks(youngest.nodes)); "
                  + "topo_aware \(mine.victims.count) victims, job in \(blocks(mine.nodes)) \(mine.nodes)")
            #expect(blocks(mine.nodes).count == 1, "\(fill): preempt/topo_aware placed the job across blocks: \(mine.nodes)")
            #expect(mine.victims.count <= base.victims.count, "\(fill): \(mine.victims.count) victims, stock \(base.victims.count)")
            #expect(mine.victims.count <= youngest.victims.count, "\(fill): \(mine.victims.count) victims, youngest-first \(youngest.victims.count)")
            let predictedYoungest = try young.stockModel(youngest.held, fill: fill)
            #expect(predictedYoungest == Set(youngest.victims.map(\.id)), "\(fill): the youngest-first model takes \(predictedYoungest.sorted()), the controller took \(youngest.victims.map(\.id))")
            #expect(Set(mine.gpus.keys) == Set(mine.nodes), "\(fill): GPUs of \(mine.gpus.keys.sorted()), nodes \(mine.nodes)")
            // In-node alignment by the cluster's own slurm.conf and gres.conf (NVSwitch nodes: any
            // GPUs of a node are NVLinked, so this guards the parsing of Slurm's per-node GPUs).
            let tables = try ours.affinityTables()
            for (node, gpus) in mine.gpus {
                let table = try #require(tables[node], "no topology for \(node)")
                #expect(gpus.count == fill.gpusPerNode && table.alignment(of: gpus) == .nvlink, "\(fill): \(node) GPUs \(gpus)")
            }
            #expect(try ours.controllerIsUp())
            // The simulator's stock model (StockPreemption.simulateMultiNode) on the same fill takes
            // the victims the stock controller took.
            let predicted = try stock.stockModel(base.held, fill: fill)
            #expect(predicted == Set(base.victims.map(\.id)), "\(fill): the stock model takes \(predicted.sorted()), the controller took \(base.victims.map(\.id))")
        }
    }
}

extension Cluster {
    /// Stock preemption as the simulator models it, for the jobs `held` (with their start
    /// times: youngest-first compares them, and Slurm keeps job-list order, the older
    /// submission first, among jobs started in the same second) and the fill's inference job,
    /// on this cluster's nodes and blocks.
    func stockModel(_ held: [Held], fill: RandomFill) throws -> Set<String> {
        try stockModel(held, request: PreemptorRequest(gpusPerNode: fill.gpusPerNode, nodeCount: fill.nodes, level: .nvlink, priority: 10))
    }

    /// The same for any multi-node request (`-w`, `--segment`).
    func stockModel(_ held: [Held], request: PreemptorRequest) throws -> Set<String> {
        let etc = directory + "/etc/"
        let blocks = try BlockTopology.parse(String(contentsOfFile: etc + "topology.conf", encoding: .utf8), file: "topology.conf")
        let tables = try affinityTables()
        let names = tables.keys.sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
        let layout = ClusterSnapshot.LayoutSpec(paths: (0..<4).map { i in (0..<4).map { $0 == i ? "X" : "NV4" } }, sockets: [0, 0, 1, 1])
        let nodes = names.map { ClusterSnapshot.NodeState(name: $0, layout: 0, block: blocks.blockOfNode[$0]) }
        let jobs = try held.map { job in
            ClusterSnapshot.RunningJob(id: try #require(UInt32(job.id)), priority: 1, startTime: job.start,
                                       allocations: [.init(node: try #require(names.firstIndex(of: job.node)), gpus: job.gpus)])
        }
        let snapshot = ClusterSnapshot(layouts: [layout], nodes: nodes, jobs: jobs, time: (held.map(\.start).max() ?? 0) + 1,
                                       slurm: try #require(SlurmRelease(slurmRelease)), blockLevels: blocks.blockLevels)
        let outcome = try #require(StockPreemption.simulateMultiNode(request, in: try PlanningIndex(snapshot),
                                                                     settings: StockSettings(order: victimOrder == "youngest-first" ? .youngestFirst : .oldestFirst)))
        return Set(outcome.victims.map(String.init))
    }
}

