import Foundation
import Testing
import TopoEngine

/// The topology engine against the real Slurm of the local cluster: the gres.conf the generator
/// writes is accepted by the real slurmd with the same links, and the cluster's own slurm.conf and
/// gres.conf read into the topology the cluster was built with.
@Suite(.needs("the stock islands cluster: run scripts/test", Cluster.isAvailable))
struct GresConfIntegrationTests {
    let cluster: Cluster

    init() throws {
        cluster = try #require(Cluster.current)
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TopoEngineTests/Fixtures/topologies").standardizedFileURL

    /// nvidia-smi text matching the cluster's topology setting (islands or pairs).
    func fixtureName() -> String { cluster.topology == "pairs" ? "local-pairs.txt" : "local-islands.txt" }

    @Test func generatedGresConfIsAcceptedByRealSlurmdWithTheSameLinks() throws {
        let name = fixtureName()
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent(name), encoding: .utf8)
        let parsed = try NvidiaSmiTopo.parse(text, file: name)
        // A scratch config directory: the cluster's slurm.conf with the generated gres.conf.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("topo-gres-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let slurmConf = scratch.appendingPathComponent("slurm.conf").path
        try FileManager.default.copyItem(atPath: cluster.directory + "/etc/slurm.conf", toPath: slurmConf)
        var generated = ""
        var expected: [String: [String]] = [:]
        for node in ["node1", "node2"] {
            let output = GresConfGenerator.generate(
                parsed, source: name,
                options: .init(nodeName: node, filePattern: cluster.directory + "/dev/\(node)/nvidia%d"))
            generated += output.text
            expected[node] = output.text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
                String(line.split(separator: " ").first { $0.hasPrefix("Links=") } ?? "")
            }
        }
        try generated.write(toFile: scratch.appendingPathComponent("gres.conf").path, atomically: true, encoding: .utf8)

        for node in ["node1", "node2"] {
            let result = try cluster.run(["slurmd", "-G", "-f", slurmConf, "-N", node])
            let lines = (result.stdout + result.stderr).split(separator: "\n").map(String.init)
            #expect(result.status == 0, "slurmd -G exit \(result.status): \(lines)")
            #expect(!lines.contains { $0.contains("error") || $0.contains("fatal") }, "\(lines)")
            let gres = lines.filter { $0.contains("Gres Name=gpu") }
            #expect(gres.count == 8)
            let links = gres.map { line in String(line.split(separator: " ").first { $0.hasPrefix("Links=") } ?? "") }
            #expect(links == expected[node], "slurmd read other links than generated")
            #expect(gres.allSatisfy { $0.contains("File=\(cluster.directory)/dev/\(node)/nvidia") })
            #expect(gres.prefix(4).allSatisfy { $0.contains("Cores=0-7") })
        }
    }

    @Test func slurmdRejectsABrokenLinksLineSoTheCheckAboveCanFail() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("topo-gres-bad-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let slurmConf = scratch.appendingPathComponent("slurm.conf").path
        try FileManager.default.copyItem(atPath: cluster.directory + "/etc/slurm.conf", toPath: slurmConf)
        let bad = (0..<8).map { "NodeName=node1 Name=gpu File=\(cluster.directory)/dev/node1/nvidia\($0) Links=0,1\n" }.joined()
        try bad.write(toFile: scratch.appendingPathComponent("gres.conf").path, atomically: true, encoding: .utf8)
        let result = try cluster.run(["slurmd", "-G", "-f", slurmConf, "-N", "node1"])
        #expect((result.stdout + result.stderr).contains("Ignoring invalid Links"))
        // Our parser refuses the same line, naming it.
        #expect(throws: TextDiagnostic.self) { try GresConf.parse(bad, file: "gres.conf") }
    }

    @Test func clusterFilesReadIntoTheClustersTopology() throws {
        let etc = cluster.directory + "/etc/"
        let nodes = try SlurmConfNodes.parse(String(contentsOfFile: etc + "slurm.conf", encoding: .utf8), file: "slurm.conf")
        let gres = try GresConf.parse(String(contentsOfFile: etc + "gres.conf", encoding: .utf8), file: "gres.conf")
        let topology = ClusterTopology(slurmNodes: nodes, gresConf: gres)
        #expect(topology.warnings.isEmpty, "\(topology.warnings)")
        #expect(topology.nodes.map(\.name) == ["node1", "node2"])
        #expect(topology.layoutCount == 1)
        let table = try #require(topology.nodes.first?.table)
        let groups = table.groups(at: .nvlink).map(\.gpus.description)
        #expect(groups == (cluster.topology == "pairs" ? ["0-1", "2-3", "4-5", "6-7"] : ["0-3", "4-7"]))
        #expect(table.groups(at: .socket).map(\.gpus.description) == ["0-3", "4-7"])
        let findings = GresConfChecker.check(gres, slurmNodes: nodes, slurmFile: "slurm.conf")
        #expect(findings.isEmpty, "\(findings)")
    }
}
