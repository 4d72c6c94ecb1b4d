import Foundation
import Testing
@testable import TopoEngine

/// Fixture files: real outputs from ../shared/data/topologies plus the project's own.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/topologies")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static var all: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
    }

    static func parse(_ name: String) throws -> ParsedTopology {
        let text = try text(name)
        return name.contains("rocm") ? try RocmSmiTopo.parse(text, file: name) : try NvidiaSmiTopo.parse(text, file: name)
    }
}

/// Groups of a table, one string per level: "nvlink: 0-3 4-7 | pcie-switch: ...".
func render(_ table: AffinityTable) -> [String: String] {
    var result: [String: String] = [:]
    for level in AffinityLevel.allCases {
        result[level.name] = table.groups(at: level).map(\.gpus.description).joined(separator: " ")
    }
    return result
}

@Suite struct TopologyGoldenTests {
    struct Golden: Sendable, CustomStringConvertible {
        var file: String
        var gpus: Int
        var others: [String]
        var groups: [String: String]
        var description: String { file }
    }

    static let goldens: [Golden] = [
        Golden(file: "dgx-a100-1.txt", gpus: 8, others: (0...11).map { "mlx5_\($0)" },
               groups: ["nvlink": "0-7", "pcie-switch": "0-7", "host-bridge": "0-7", "numa": "0-7", "socket": "0-7", "node": "0-7"]),
        // Hybrid cube mesh: two fully connected quads plus the cross links 0-4, 1-5, 2-6, 3-7.
        Golden(file: "dgx1-v100-2.txt", gpus: 8, others: ["mlx5_0", "mlx5_2", "mlx5_1", "mlx5_3"],
               groups: ["nvlink": "0,4 0-3 1,5 2,6 3,7 4-7", "pcie-switch": "0,4 0-3 1,5 2,6 3,7 4-7",
                        "host-bridge": "0,4 0-3 1,5 2,6 3,7 4-7", "numa": "0,4 0-3 1,5 2,6 3,7 4-7",
                        "socket": "0,4 0-3 1,5 2,6 3,7 4-7", "node": "0-7"]),
        Golden(file: "k80-4gpu-mlx4-legacy-soc.txt", gpus: 4, others: ["mlx4_0"],
               groups: ["nvlink": "0 1 2 3", "pcie-switch": "0-1 2-3", "host-bridge": "0-3", "numa": "0-3", "socket": "0-3", "node": "0-3"]),
        Golden(file: "rtx4090-8gpu-1.txt", gpus: 8, others: ["NIC0", "NIC1"],
               groups: ["nvlink": "0 1 2 3 4 5 6 7", "pcie-switch": "0 1 2 3 4 5 6 7", "host-bridge": "0 1 2 3 4 5 6 7",
                        "numa": "0-3 4-7", "socket": "0-3 4-7", "node": "0-7"]),
        Golden(file: "amd-mi210-4gpu-rocm-showtopo.txt", gpus: 4, others: [],
               groups: ["nvlink": "0-3", "pcie-switch": "0-3", "host-bridge": "0-3", "numa": "0-3", "socket": "0-3", "node": "0-3"]),
        Golden(file: "local-islands.txt", gpus: 8, others: [],
               groups: ["nvlink": "0-3 4-7", "pcie-switch": "0-3 4-7", "host-bridge": "0-3 4-7", "numa": "0-3 4-7",
                        "socket": "0-3 4-7", "node": "0-7"]),
        Golden(file: "local-pairs.txt", gpus: 8, others: [],
               groups: ["nvlink": "0-1 2-3 4-5 6-7", "pcie-switch": "0-3 4-7", "host-bridge": "0-3 4-7", "numa": "0-3 4-7",
                        "socket": "0-3 4-7", "node": "0-7"]),
        Golden(file: "nv18-pairs-nic-legend-indented.txt", gpus: 4, others: ["NIC0", "NIC1"],
               groups: ["nvlink": "0-1 2-3", "pcie-switch": "0-1 2-3", "host-bridge": "0-1 2-3", "numa": "0-3",
                        "socket": "0-3", "node": "0-3"]),
    ]

    @Test func everyFixtureHasAGolden() {
        #expect(Set(Fixtures.all) == Set(Self.goldens.map(\.file)))
    }

    @Test(arguments: goldens) func fixtureParsesIntoExpectedGroups(_ golden: Golden) throws {
        let parsed = try Fixtures.parse(golden.file)
        #expect(parsed.topology.gpuCount == golden.gpus)
        #expect(parsed.otherDevices == golden.others)
        #expect(parsed.warnings.isEmpty)
        let table = try AffinityTable(parsed.topology)
        #expect(render(table) == golden.groups)
    }

    @Test func affinityColumnsAreRead() throws {
        let a100 = try Fixtures.parse("dgx-a100-1.txt").topology
        #expect(a100.gpus[0].cpus == Array(48...63) + Array(176...191))
        #expect(a100.gpus.map(\.numaNode) == [3, 3, 1, 1, 7, 7, 5, 5])
        #expect(a100.paths[0][1] == .gpuLink(links: 12))
        // Empty cell between NUMA Affinity and GPU NUMA ID (new drivers) does not shift columns.
        let rtx = try Fixtures.parse("rtx4090-8gpu-1.txt").topology
        #expect(rtx.gpus.map(\.numaNode) == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(rtx.gpus[7].cpus?.first == 56)
        // Old driver, no NUMA column: NUMA nodes numbered from distinct CPU Affinity lists.
        let dgx1 = try Fixtures.parse("dgx1-v100-2.txt").topology
        #expect(dgx1.gpus.map(\.numaNode) == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(dgx1.paths[0][3] == .gpuLink(links: 2))
        #expect(dgx1.paths[0][5] == .system)
        let k80 = try Fixtures.parse("k80-4gpu-mlx4-legacy-soc.txt").topology
        #expect(k80.paths[0][2] == .hostBridge)
        let amd = try Fixtures.parse("amd-mi210-4gpu-rocm-showtopo.txt").topology
        #expect(amd.gpus.map(\.numaNode) == [0, 1, 2, 3])
    }

    @Test func alignmentIsTheFarthestPair() throws {
        let table = try AffinityTable(Fixtures.parse("local-pairs.txt").topology)
        #expect(table.alignment(of: GPUSet([0, 1])) == .nvlink)
        #expect(table.alignment(of: GPUSet([1, 2])) == .pcieSwitch)
        #expect(table.alignment(of: GPUSet([0, 1, 2, 3])) == .pcieSwitch)
        #expect(table.alignment(of: GPUSet([0, 1, 4, 5])) == .node)
        #expect(table.alignment(of: GPUSet([3])) == .nvlink)
        #expect(table.largestGroup(at: .nvlink) == 2)
        #expect(table.largestGroup(at: .socket) == 4)
        #expect(table.parent(of: AffinityGroup(level: .nvlink, gpus: GPUSet([2, 3])))?.gpus == GPUSet([0, 1, 2, 3]))
    }

    @Test func alignedSetsOfASize() throws {
        let table = try AffinityTable(Fixtures.parse("local-islands.txt").topology)
        let fours = table.alignedSets(size: 4, level: .nvlink)
        #expect(fours.map(\.description) == ["0-3", "4-7"])
        #expect(table.alignedSets(size: 2, level: .nvlink).count == 12)  // C(4,2) per island
        #expect(table.alignedSets(size: 5, level: .socket).isEmpty)
        #expect(table.alignedSets(size: 5, level: .node).count == 56)  // C(8,5)
        let dgx1 = try AffinityTable(Fixtures.parse("dgx1-v100-2.txt").topology)
        // Pairs: 6 in each quad + 4 cross links, each once.
        #expect(dgx1.alignedSets(size: 2, level: .nvlink).count == 16)
    }

    @Test func alignedSetsMatchBruteForce() throws {
        for name in Fixtures.all {
            let table = try AffinityTable(Fixtures.parse(name).topology)
            let n = table.topology.gpuCount
            for level in AffinityLevel.allCases {
                for size in 1...n {
                    var expected = Set<GPUSet>()
                    for mask in 1..<(UInt64(1) << UInt64(n)) where mask.nonzeroBitCount == size {
                        let set = GPUSet(mask: mask)
                        if table.alignment(of: set) <= level { expected.insert(set) }
                    }
                    let got = table.alignedSets(size: size, level: level)
                    #expect(Set(got) == expected, "\(name) \(level.name) size \(size)")
                    #expect(got.count == Set(got).count)
                }
            }
        }
    }

    @Test func catalogSharesTablesBetweenEqualTopologies() throws {
        var catalog = AffinityCatalog()
        let a = try Fixtures.parse("local-islands.txt").topology
        let b = try Fixtures.parse("local-islands.txt").topology
        _ = try catalog.table(for: a)
        _ = try catalog.table(for: b)
        _ = try catalog.table(for: Fixtures.parse("local-pairs.txt").topology)
        #expect(catalog.count == 2)
    }
}

@Suite struct NvidiaSmiParserTests {
    @Test func crlfAndTrailingWhitespaceAreAccepted() throws {
        let text = try Fixtures.text("local-islands.txt").replacingOccurrences(of: "\n", with: " \t\r\n")
        let table = try AffinityTable(NvidiaSmiTopo.parse(text, file: "crlf").topology)
        #expect(render(table)["nvlink"] == "0-3 4-7")
    }

    @Test func spacesInsteadOfTabsAreAccepted() throws {
        let text = try Fixtures.text("dgx-a100-1.txt").replacingOccurrences(of: "\t", with: "  ")
        let parsed = try NvidiaSmiTopo.parse(text, file: "spaces")
        #expect(parsed.topology.gpus[0].numaNode == 3)
        #expect(parsed.otherDevices.count == 12)
    }

    @Test func withoutLegendOrAffinityColumns() throws {
        let text = "\tGPU0\tGPU1\nGPU0\t X \tNV1\nGPU1\tNV1\t X \n"
        let parsed = try NvidiaSmiTopo.parse(text, file: "bare")
        #expect(parsed.topology.paths[0][1] == .gpuLink(links: 1))
        #expect(parsed.topology.gpus[0].cpus == nil)
    }

    @Test func singleGPU() throws {
        let parsed = try NvidiaSmiTopo.parse("\tGPU0\tCPU Affinity\tNUMA Affinity\nGPU0\t X \t0-7\tN/A\n", file: "one")
        #expect(parsed.topology.gpuCount == 1)
        #expect(parsed.topology.gpus[0].numaNode == nil)
    }

    @Test func asymmetricMatrixWarnsAndKeepsTheFartherPath() throws {
        let text = "\tGPU0\tGPU1\nGPU0\t X \tNV2\nGPU1\tSYS\t X \n"
        let parsed = try NvidiaSmiTopo.parse(text, file: "asym")
        #expect(parsed.topology.paths[0][1] == .system)
        #expect(parsed.warnings.map(\.description) == ["asym:2:1: GPU0-GPU1 is NV2 but GPU1-GPU0 is SYS; using SYS"])
    }

    @Test(arguments: [
        ("\tGPU0\tGPU1\nGPU0\t X \tNVX\nGPU1\tNV1\t X \n",
         "t:2:10: unknown link 'NVX' between GPU0 and GPU1; expected NV#, PIX, PXB, PHB, NODE, SYS, SOC or N/A"),
        ("\tGPU0\tGPU1\nGPU0\t X \nGPU1\tNV1\t X \n", "t:2:9: row GPU0 has 1 cells, the header names 2 devices"),
        ("\tGPU0\tGPU1\nGPU0\t X \tNV1\n", "t:1:7: GPU1 is in the header but has no row"),
        ("hello\nworld\n", "t:1:1: no nvidia-smi topology matrix found: expected a header line whose first column is GPU0"),
        ("\tGPU0\tGPU1\nGPU0\tNV1\t X \nGPU1\tNV1\t X \n", "t:2:6: row GPU0 should have X (self) in its own column, found 'NV1'"),
        ("\tGPU0\tGPU1\nGPU0\t X \tNV1\nGPU7\tNV1\t X \n", "t:3:1: row 'GPU7' is not a device of the header (GPU0 GPU1)"),
        ("\tGPU0\tCPU Affinity\nGPU0\t X \t0-x\n", "t:2:10: CPU Affinity: '0-x' is not a number or range"),
        ("\tGPU0\tCPU Affinity\nGPU0\t X \t0-3\t7\n", "t:2:14: unexpected cell '7' after the 1 affinity column(s)"),
        ("\tGPU0\tGPU0\n", "t:1:7: device GPU0 appears twice in the header"),
    ])
    func mangledInputNamesTheLine(_ text: String, _ message: String) {
        #expect(throws: TextDiagnostic.self) { try NvidiaSmiTopo.parse(text, file: "t") }
        do {
            _ = try NvidiaSmiTopo.parse(text, file: "t")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func mangledFixtureNamesItsLine() throws {
        var lines = try Fixtures.text("dgx-a100-1.txt").components(separatedBy: "\n")
        lines[7] = lines[7].replacingOccurrences(of: "NV12", with: "NVL12")  // GPU2's row
        do {
            _ = try NvidiaSmiTopo.parse(lines.joined(separator: "\n"), file: "a100")
            Issue.record("mangled input was accepted")
        } catch {
            #expect(error.location.line == 8)
            #expect(error.message.contains("'NVL12' between GPU2 and GPU0"))
        }
    }
}

@Suite struct RocmSmiParserTests {
    @Test func pcieAndMultiHopPairsAreNotDirectLinks() throws {
        let text = """
            ====== Hops between two GPUs ======
                   GPU0  GPU1  GPU2
            GPU0   0     1     2
            GPU1   1     0     1
            GPU2   2     1     0
            ====== Link Type between two GPUs ======
                   GPU0  GPU1  GPU2
            GPU0   0     XGMI  XGMI
            GPU1   XGMI  0     PCIE
            GPU2   XGMI  PCIE  0
            ====== Numa Nodes ======
            GPU[0]          : (Topology) Numa Node: 0
            GPU[1]          : (Topology) Numa Node: 0
            GPU[2]          : (Topology) Numa Node: 1
            """
        let topology = try RocmSmiTopo.parse(text, file: "r").topology
        #expect(topology.paths[0][1] == .gpuLink(links: 1))
        #expect(topology.paths[0][2] == .system)  // XGMI but two hops
        #expect(topology.paths[1][2] == .unknown)
        #expect(topology.gpus.map(\.numaNode) == [0, 0, 1])
        #expect(topology.pairLevel(1, 2) == .node)
    }

    @Test(arguments: [
        ("=== Link Type between two GPUs ===\n GPU0 GPU1\nGPU0 0 NVLINK\nGPU1 XGMI 0\n",
         "r:3:8: Link Type: unknown link 'NVLINK' between GPU0 and GPU1; expected XGMI, PCIE or N/A"),
        ("=== Link Type between two GPUs ===\n GPU0 GPU1\nGPU0 0 XGMI\n", "r:4:1: Link Type table: expected the row of GPU1"),
        ("nothing here\n", "r:1:1: no 'Link Type between two GPUs' table found (is this rocm-smi --showtopo output?)"),
        ("=== Link Type between two GPUs ===\n GPU0 GPU1\nGPU0 0\nGPU1 XGMI 0\n", "r:3:7: Link Type table: row GPU0 has 1 cells, expected 2"),
    ])
    func mangledInputNamesTheLine(_ text: String, _ message: String) {
        do {
            _ = try RocmSmiTopo.parse(text, file: "r")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description == message)
        }
    }
}
