import Testing
@testable import TopoEngine

@Suite struct GresConfTests {
    static let islands = """
        # two nodes, two NVLink islands of 4 bound to the two sockets
        AutoDetect=off
        NodeName=node[1-2] Name=gpu File=/dev/nvidia0 Cores=0-7 Links=-1,1,1,1,0,0,0,0
        NodeName=node[1-2] Name=gpu File=/dev/nvidia1 Cores=0-7 Links=1,-1,1,1,0,0,0,0
        NodeName=node[1-2] Name=gpu File=/dev/nvidia2 Cores=0-7 Links=1,1,-1,1,0,0,0,0
        NodeName=node[1-2] Name=gpu File=/dev/nvidia3 Cores=0-7 Links=1,1,1,-1,0,0,0,0
        NodeName=node[1-2] Name=gpu File=/dev/nvidia4 Cores=8-15 Links=0,0,0,0,-1,1,1,1
        NodeName=node[1-2] Name=gpu File=/dev/nvidia5 Cores=8-15 Links=0,0,0,0,1,-1,1,1
        NodeName=node[1-2] Name=gpu File=/dev/nvidia6 Cores=8-15 Links=0,0,0,0,1,1,-1,1
        NodeName=node[1-2] Name=gpu File=/dev/nvidia7 Cores=8-15 Links=0,0,0,0,1,1,1,-1
        NodeName=node3 Name=gpu Type=a100 File=/dev/nvidia[0-3] Cores=0-3
        Name=mps Count=400
        """

    /// A 10,000-node site names its nodes in one range, as slurmctld accepts (up to 64K hosts
    /// per host list); beyond that, a clear error.
    @Test func tenThousandNodesInOneRange() throws {
        let conf = try GresConf.parse("NodeName=gpu[00001-10000] Name=gpu File=/dev/nvidia[0-7]\n", file: "gres.conf")
        #expect(conf.entries[0].nodes?.count == 10_000)
        #expect(conf.entries[0].nodes?.last == "gpu10000")
        let nodes = try SlurmConfNodes.parse("NodeName=gpu[00001-10000] Gres=gpu:8 Sockets=2 CoresPerSocket=8\n", file: "slurm.conf")
        #expect(nodes.first?.names.count == 10_000)
        #expect(throws: (any Error).self) {
            try SlurmConfNodes.parse("NodeName=n[1-70000] Gres=gpu:8\n", file: "slurm.conf")
        }
    }

    @Test func linesExpandNodesAndFiles() throws {
        let conf = try GresConf.parse(Self.islands, file: "gres.conf")
        #expect(conf.autoDetect == "off")
        #expect(conf.entries.count == 10)
        #expect(conf.entries[0].nodes == ["node1", "node2"])
        #expect(conf.entries[0].links == [-1, 1, 1, 1, 0, 0, 0, 0])
        #expect(conf.entries[8].files == ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidia3"])
        #expect(conf.entries[8].type == "a100")
        #expect(conf.entries[9].nodes == nil && conf.entries[9].count == 400)
        #expect(conf.gpuEntries(for: "node2").count == 8)
        #expect(conf.gpuEntries(for: "node3").count == 1)
        #expect(conf.nodeNames == ["node1", "node2", "node3"])
    }

    @Test func topologyFromLinksAndCores() throws {
        let conf = try GresConf.parse(Self.islands, file: "gres.conf")
        let node = SlurmNodeSpec(line: 1, names: ["node1"], gres: [], sockets: 2, coresPerSocket: 8)
        let parsed = try NodeTopology.fromGresConf(conf, node: "node1", slurmNode: node)
        #expect(parsed.warnings.isEmpty)
        #expect(parsed.topology.gpus.map(\.socket) == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(parsed.topology.gpus[5].file == "/dev/nvidia5")
        let table = try AffinityTable(parsed.topology)
        #expect(render(table)["nvlink"] == "0-3 4-7")
        #expect(render(table)["socket"] == "0-3 4-7")
        // Without slurm.conf, identical Cores= lists stand for one socket.
        let bare = try NodeTopology.fromGresConf(conf, node: "node3")
        #expect(bare.topology.gpuCount == 4)
        #expect(try AffinityTable(bare.topology).largestGroup(at: .socket) == 4)
        #expect(try AffinityTable(bare.topology).largestGroup(at: .nvlink) == 1)
    }

    @Test func inconsistentLinksAreWarnings() throws {
        let text = """
            Name=gpu File=/dev/nvidia0 Links=-1,2,0
            Name=gpu File=/dev/nvidia1 Links=1,-1
            Name=gpu File=/dev/nvidia2 Links=0,0,0,-1
            """
        let parsed = try NodeTopology.fromGresConf(GresConf.parse(text, file: "g"), node: "any")
        #expect(parsed.warnings.map(\.description) == [
            "g:2:1: Links= of GPU 1 has 2 values but node any has 3 GPUs",
            "g:3:1: Links= of GPU 2 has 4 values but node any has 3 GPUs",
            "g:3:1: Links= of GPU 2 marks position 3 as itself (-1)",
            "g:1:1: Links= of GPUs 0 and 1 disagree (2 vs 1); using the smaller",
        ])
        #expect(parsed.topology.paths[0][1] == .gpuLink(links: 1))
    }

    @Test(arguments: [
        ("Name=gpu Flie=/dev/nvidia0", "g:1:10: unknown gres.conf key 'Flie'"),
        ("Name=gpu File=/dev/nvidia[3-1]", "g:1:15: File: range '3-1' ends before it starts"),
        ("Name=gpu File=/dev/nvidia0 Links=-1,x", "g:1:34: Links: 'x' is not a number"),
        ("Name=gpu File=/dev/nvidia0 Links=0,1", "g:1:34: Links: needs exactly one -1 (the device itself), as Slurm requires"),
        ("Name=gpu File=/dev/nvidia0 Links=-1,5000", "g:1:34: Links: 5000 is out of Slurm's range -2..1023"),
        ("Name=gpu File=/dev/nvidia[0-1] Links=-1,1", "g:1:32: Links= needs a line with a single device, this one has 2 files"),
        ("Name=gpu File=/dev/nvidia[0-1] Count=3", "g:1:38: Count=3 but File= names 2 device(s)"),
        ("Name=gpu Count=lots", "g:1:16: Count: 'lots' is not a count (a number, optionally with K, M or G)"),
        ("NodeName=n1 File=/dev/nvidia0", "g:1:1: a device line needs Name= (e.g. Name=gpu)"),
        ("Name=gpu Cores=0-3 Cores=4", "g:1:20: Cores given twice on one line"),
        ("Name=gpu\nName=gpu File", "g:2:10: expected Key=Value, found 'File' without '='"),
    ])
    func errorsNameLineAndColumn(_ text: String, _ message: String) {
        do {
            _ = try GresConf.parse(text, file: "g")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description == message)
        }
    }
}

@Suite struct SlurmConfNodeTests {
    @Test func nodeLinesWithDefaultsAndOtherLinesIgnored() throws {
        let text = """
            ClusterName=c
            Include /etc/slurm/other.conf
            NodeName=DEFAULT Sockets=2 CoresPerSocket=8 Gres=gpu:8
            NodeName=node[1-2] NodeAddr=127.0.0.1 \\
                ThreadsPerCore=1 CPUs=16
            NodeName=fat Gres=gpu:a100:4,gpu:v100:2 CoresPerSocket=32
            PartitionName=batch Nodes=ALL
            """
        let nodes = try SlurmConfNodes.parse(text, file: "slurm.conf")
        #expect(nodes.count == 2)
        #expect(nodes[0].names == ["node1", "node2"])
        #expect(nodes[0].coresPerSocket == 8 && nodes[0].sockets == 2 && nodes[0].cpus == 16)
        #expect(nodes[0].gpuCount == 8)
        #expect(nodes[1].gpuCount == 6)
        #expect(nodes[1].coresPerSocket == 32)
        #expect(nodes[1].line == 6)
    }

    @Test func commaSeparatedHostLists() throws {
        let nodes = try SlurmConfNodes.parse("NodeName=a[1-2],b Gres=gpu:2", file: "s")
        #expect(nodes[0].names == ["a1", "a2", "b"])
        #expect(try BracketList.expandList("gpu[01-02],cpu1") == ["gpu01", "gpu02", "cpu1"])
    }

    @Test func badNumberNamesTheLine() {
        do {
            _ = try SlurmConfNodes.parse("A=b\nNodeName=n Sockets=two", file: "s")
            Issue.record("accepted")
        } catch {
            #expect(error.description == "s:2:20: Sockets: 'two' is not a positive number")
        }
    }

    @Test func clusterTopologySharesLayouts() throws {
        let nodes = try SlurmConfNodes.parse(
            "NodeName=node[1-2] Sockets=2 CoresPerSocket=8 Gres=gpu:8\nNodeName=node3 Gres=gpu:4 CoresPerSocket=4\nNodeName=cpu1 CPUs=4",
            file: "s")
        let cluster = ClusterTopology(slurmNodes: nodes, gresConf: try GresConf.parse(GresConfTests.islands, file: "g"))
        #expect(cluster.nodes.map(\.name) == ["node1", "node2", "node3"])
        #expect(cluster.layoutCount == 2)
        #expect(cluster.largestGroup(at: .nvlink) == 4)
        #expect(cluster.largestGroup(at: .node) == 8)
    }
}

@Suite struct GresStringTests {
    @Test(arguments: [
        ("gpu:4(IDX:0-1,4-5)", "gpu", nil, 4, "0-1,4-5", nil),
        ("gpu:a100:2(IDX:0,2)", "gpu", "a100", 2, "0,2", nil),
        ("gpu:(null):8(IDX:0-7)", "gpu", nil, 8, "0-7", nil),
        ("gpu:8(S:0-1)", "gpu", nil, 8, nil, [0, 1]),
        ("gpu:0(IDX:N/A)", "gpu", nil, 0, "", nil),
        ("gpu", "gpu", nil, 1, nil, nil),
        ("gpu:2K", "gpu", nil, 2048, nil, nil),
    ] as [(String, String, String?, Int, String?, [Int]?)])
    func entries(_ text: String, _ name: String, _ type: String?, _ count: Int, _ idx: String?, _ sockets: [Int]?) throws {
        let entries = try GresString.parse(text)
        #expect(entries.count == 1)
        #expect(entries[0].name == name)
        #expect(entries[0].type == type)
        #expect(entries[0].count == count)
        #expect(entries[0].indices?.description == idx)
        #expect(entries[0].sockets == sockets)
    }

    @Test func listsSplitOutsideParentheses() throws {
        let entries = try GresString.parse("gpu:a100:2(IDX:0,2),gpu:v100:1(IDX:5),mps:100")
        #expect(entries.map(\.description) == ["gpu:a100:2(IDX:0,2)", "gpu:v100:1(IDX:5)", "mps:100"])
        #expect(try GresString.parse("").isEmpty)
        #expect(try GresString.parse("(null)").isEmpty)
    }

    @Test(arguments: ["gpu:4(IDX:0-1", "gpu:4)", "gpu:x:y:z", "gpu:4(IDX:9-1)", "gpu:4(IDX:64)", "gpu:4(Q:1)", ":4", "gpu::4"])
    func malformed(_ text: String) {
        #expect(throws: GresString.Failure.self) { try GresString.parse(text) }
    }

    @Test func tresGPUCounts() throws {
        #expect(try GresString.gpuCount(inTRES: "gres:gpu:4") == 4)
        #expect(try GresString.gpuCount(inTRES: "gres:gpu:a100:2,gres:mps:100") == 2)
        #expect(try GresString.gpuCount(inTRES: "gres/gpu:3") == 3)
        #expect(try GresString.gpuCount(inTRES: "gres:gpu") == 1)
        #expect(try GresString.gpuCount(inTRES: nil) == 0)
        #expect(try GresString.gpuCount(inTRES: "gres:gpuX:4") == 0)
        #expect(throws: GresString.Failure.self) { try GresString.gpuCount(inTRES: "gres:gpu:a100:lots") }
    }
}
