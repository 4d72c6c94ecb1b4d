import Testing
@testable import TopoEngine

/// `Fragmentation`: free and freeable aligned groups per node type, level and size, the gauges
/// of the exporter. The lab's node1 is full (2 2 2 1 1 over two NVLink islands of 4, one per
/// socket), node2 idle.
@Suite struct FragmentationTests {
    static func topology() throws -> ClusterTopology {
        let nodes = try SlurmConfNodes.parse("NodeName=node[1-2] Sockets=2 CoresPerSocket=8 Gres=gpu:8\n", file: "s")
        return ClusterTopology(slurmNodes: nodes, gresConf: try GresConf.parse(GresConfTests.islands, file: "g"))
    }

    static func config(_ text: String) throws -> TopoAwareConfig {
        try TopoAwareConfig.parse(text, file: "topo_aware.conf").config
    }

    static func row(_ f: Fragmentation, _ level: AffinityLevel, _ size: Int) -> Fragmentation.Row? {
        f.rows.first { $0.level == level && $0.size == size }
    }

    @Test func typeNameSaysTheLayout() throws {
        let topology = try Self.topology()
        #expect(Fragmentation.typeName(topology.nodes[0].table) == "8gpu:nvlink=4x2")
        #expect(Fragmentation.sizes(gpus: 8) == [1, 2, 4, 8])
        #expect(Fragmentation.sizes(gpus: 6) == [1, 2, 4, 6])
    }

    /// The idle node gives two NVLink groups of 4, one of 8 at node level; the full node none
    /// free, but every GPU freeable: its batch jobs are in a lower tier than the class's partition.
    @Test func freeAndFreeable() throws {
        let state = LiveSnapshotTests.lab()
        let config = try Self.config("PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed\n")
        let f = Fragmentation(state, topology: try Self.topology(), config: config)
        #expect(f.nodeTypes == [.init(name: "8gpu:nvlink=4x2", nodes: 2, available: 2, gpus: 8, freeGPUs: 8, freeableGPUs: 16)])
        #expect(Self.row(f, .nvlink, 4) == .init(nodeType: f.nodeTypes[0].name, level: .nvlink, size: 4, free: 2, freeable: 4))
        #expect(Self.row(f, .nvlink, 8)?.free == 0 && Self.row(f, .nvlink, 8)?.freeable == 0)
        #expect(Self.row(f, .node, 8)?.free == 1 && Self.row(f, .node, 8)?.freeable == 2)
        #expect(Self.row(f, .nvlink, 1)?.free == 8)
        #expect(f.rows.count == AffinityLevel.allCases.count * 4)
    }

    /// Fragmented free GPUs: 0, 4 and 5 free on node1 make no NVLink group of 4 and one pair
    /// (4-5), three single GPUs; node level counts one pair of any two, not two.
    @Test func fragmentedFreeGPUs() throws {
        var state = LiveSnapshotTests.lab()
        state.nodes[0].allocated = GPUSet([1, 2, 3, 6, 7])
        state.nodes[1].available = false
        let f = Fragmentation(state, topology: try Self.topology(), config: nil)
        #expect(Self.row(f, .nvlink, 4)?.free == 0)
        #expect(Self.row(f, .nvlink, 2)?.free == 1)
        #expect(Self.row(f, .node, 2)?.free == 1)
        #expect(Self.row(f, .node, 1)?.free == 3)
        #expect(f.nodeTypes[0].available == 1 && f.nodeTypes[0].freeGPUs == 3)
    }

    /// What no preemptor class may take is not freeable: PreemptMode OFF or SUSPEND on the batch
    /// partition, a job Slurm already signalled (draining), a job inside PreemptExemptTime.
    @Test func notFreeable() throws {
        let config = try Self.config("PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed\n")
        for mode in [LiveState.PreemptMode(.off), .init(.suspend)] {
            let f = Fragmentation(LiveSnapshotTests.lab(batchMode: mode), topology: try Self.topology(), config: config)
            #expect(f.nodeTypes[0].freeableGPUs == 8, "only node2's free GPUs")
        }
        var state = LiveSnapshotTests.lab()
        state.jobs[0].preempted = true  // GPUs 0-1
        state.exemptSeconds = 600
        state.jobs[1].startTime = state.time - 60  // GPUs 4-5, started a minute ago
        let f = Fragmentation(state, topology: try Self.topology(), config: config)
        #expect(f.nodeTypes[0].freeableGPUs == 12)
        #expect(Self.row(f, .nvlink, 4)?.freeable == 2, "node2's islands; node1's both lose a pair")
        #expect(Self.row(f, .nvlink, 2)?.freeable == 6)
    }

    /// Under BasePolicy=qos the class's QOS decides: infer preempts batch.
    @Test func qosPolicy() throws {
        let config = try Self.config("BasePolicy=qos\nPreemptorClass=inference QOS=infer Level=nvlink Mode=guaranteed\n")
        #expect(Fragmentation(LiveSnapshotTests.lab(), topology: try Self.topology(), config: config).nodeTypes[0].freeableGPUs == 16)
        let batchOnly = try Self.config("BasePolicy=qos\nPreemptorClass=inference QOS=batch Level=nvlink Mode=guaranteed\n")
        #expect(Fragmentation(LiveSnapshotTests.lab(), topology: try Self.topology(), config: batchOnly).nodeTypes[0].freeableGPUs == 8)
    }

    /// Without topo_aware.conf, a job of the highest tier stands for the preemptors.
    @Test func withoutConfigTheTopTier() throws {
        #expect(Fragmentation(LiveSnapshotTests.lab(), topology: try Self.topology(), config: nil).nodeTypes[0].freeableGPUs == 16)
    }
}
