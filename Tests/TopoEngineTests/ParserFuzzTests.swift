import Foundation
import Testing
@testable import TopoEngine

/// Every topology parser gets `iterations` mutated inputs (default 100,000; set
/// TOPO_FUZZ_ITERATIONS for a longer run, TOPO_FUZZ_SEED for another sequence). A crash or trap
/// fails the test run; a hang fails it by never finishing. Each input must either parse or throw
/// the parser's own error type with a location inside the input.
@Suite struct ParserFuzzTests {
    static let iterations = ProcessInfo.processInfo.environment["TOPO_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 100_000
    static let seed = ProcessInfo.processInfo.environment["TOPO_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_125

    static let tokens = ["NV18", "NV0", "NV100", "SYS", "SOC", "PIX", "PXB", "PHB", "NODE", "X", " X ", "N/A", "GPU0",
                         "GPU63", "GPU64", "GPU99999", "mlx5_0", "CPU Affinity", "NUMA Affinity", "GPU NUMA ID", "Legend:",
                         "-1", "0", "999999999999", "0-65536", "3-1", ",", "-", "[0-99999]", "[", "]", "(", ")", "=",
                         "\\", "\"", "#", "\t", "\n", "\r\n", "é", "\u{0}", "XGMI", "PCIE", "=== Link Type between two GPUs ===",
                         "=== Hops between two GPUs ===", "Numa Node:", "GPU[1]", "NodeName=", "Name=gpu", "File=/dev/nvidia[0-7]",
                         "Links=", "Cores=", "Count=", "IDX:", "S:", "(null)", "gpu:", "gres:gpu:"]

    /// Applies 1-8 random edits to the bytes of `text`; invalid UTF-8 is repaired by the String
    /// initializer, as it is when the CLI or the plugin reads a file.
    static func mutate(_ text: String, _ rng: inout SplitMix64) -> String {
        var bytes = Array(text.utf8)
        for _ in 0..<Int.random(in: 1...8, using: &rng) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !bytes.isEmpty:  // replace one byte with a token's first byte
                bytes[position] = tokens.randomElement(using: &rng)!.utf8.first ?? 120
            case 1 where !bytes.isEmpty:  // delete a range
                bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...40, using: &rng)))
            case 2:  // insert a token
                bytes.insert(contentsOf: Array(tokens.randomElement(using: &rng)!.utf8), at: position)
            case 3 where !bytes.isEmpty:  // duplicate a range
                let end = min(bytes.count, position + Int.random(in: 1...200, using: &rng))
                bytes.insert(contentsOf: Array(bytes[position..<end]), at: position)
            case 4:  // truncate
                bytes.removeSubrange(position..<bytes.count)
            case 5 where !bytes.isEmpty:  // any byte
                bytes[position] = UInt8.random(in: 0...255, using: &rng)
            default:  // move a line's start: swap the text before and after a newline
                if let newline = bytes[position...].firstIndex(of: 10) {
                    let head = bytes[..<newline]
                    bytes = Array(bytes[(newline + 1)...]) + [10] + Array(head)
                }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Runs `parse` on mutated seeds; returns (accepted, rejected).
    static func fuzz(_ seeds: [String], salt: UInt64, _ parse: (String) -> Bool) -> (Int, Int) {
        var rng = SplitMix64(seed: seed ^ salt)
        var accepted = 0
        for i in 0..<iterations {
            let input = mutate(seeds[i % seeds.count], &rng)
            if parse(input) { accepted += 1 }
        }
        return (accepted, iterations - accepted)
    }

    /// The error is the parser's own, and points inside the input.
    static func checkLocation(_ error: any Error, in text: String) -> Bool {
        guard let error = error as? TextDiagnostic else { return false }
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).count
        return error.location.line >= 1 && error.location.line <= max(1, lines) && error.location.column >= 1
    }

    /// Fuzzes a located parser: every rejection must be a `TextDiagnostic` inside the input, and
    /// the mutations must produce both accepted and rejected inputs (or the fuzzing is too weak).
    static func fuzzLocated(_ seeds: [String], salt: UInt64, _ parse: (String) throws -> Void) {
        var badLocations = 0
        let (accepted, rejected) = fuzz(seeds, salt: salt) { text in
            do {
                try parse(text)
                return true
            } catch {
                if !checkLocation(error, in: text) { badLocations += 1 }
                return false
            }
        }
        #expect(badLocations == 0)
        #expect(accepted > 0 && rejected > 0, "accepted \(accepted), rejected \(rejected)")
    }

    @Test func nvidiaSmi() throws {
        Self.fuzzLocated(try Fixtures.all.filter { !$0.contains("rocm") }.map(Fixtures.text), salt: 1) { text in
            let parsed = try NvidiaSmiTopo.parse(text, file: "fuzz")
            _ = try? AffinityTable(parsed.topology)
        }
    }

    @Test func rocmSmi() throws {
        Self.fuzzLocated([try Fixtures.text("amd-mi210-4gpu-rocm-showtopo.txt")], salt: 2) { text in
            let parsed = try RocmSmiTopo.parse(text, file: "fuzz")
            _ = try? AffinityTable(parsed.topology)
        }
    }

    @Test func gresConf() {
        let seeds = [GresConfTests.islands,
                     "NodeName=gpu[01-16] Name=gpu Type=h100 File=/dev/nvidia[0-7] Cores=0-31,64-95\nAutoDetect=nvml\n"]
        Self.fuzzLocated(seeds, salt: 3) { text in
            let conf = try GresConf.parse(text, file: "fuzz")
            for node in conf.nodeNames.prefix(4) {
                if let parsed = try? NodeTopology.fromGresConf(conf, node: node) { _ = try? AffinityTable(parsed.topology) }
            }
            _ = GresConfChecker.check(conf)
            // The plugin's path: the whole cluster from slurm.conf's GPU nodes and this file.
            let nodes = [SlurmNodeSpec(line: 1, names: ["node1", "node2", "gpu01"], gres: [], sockets: 2, coresPerSocket: 8)]
            _ = TopologySummary.build(slurmNodes: nodes.map { var n = $0; n.gres = [.init(name: "gpu", count: 8)]; return n },
                                      gresConf: conf)
        }
    }

    @Test func slurmConfNodes() {
        let seeds = ["ClusterName=x\nNodeName=DEFAULT Sockets=2 CoresPerSocket=8\nNodeName=node[1-4] Gres=gpu:a100:4(S:0-1),gpu:2 CPUs=16 \\\n  ThreadsPerCore=2\nPartitionName=p Nodes=ALL\n"]
        Self.fuzzLocated(seeds, salt: 4) { text in _ = try SlurmConfNodes.parse(text, file: "fuzz").map(\.gpuCount) }
    }

    @Test func gresStrings() {
        let seeds = ["gpu:4(IDX:0-1,4-5)", "gpu:a100:2(IDX:0,2),gpu:v100:1(IDX:5)", "gpu:(null):8(IDX:0-7)", "gpu:8(S:0-1)",
                     "gres:gpu:a100:2,gres:mps:100"]
        let (accepted, rejected) = Self.fuzz(seeds, salt: 5) { text in
            _ = try? GresString.gpuCount(inTRES: text)
            return (try? GresString.parse(text)) != nil
        }
        #expect(accepted > 0 && rejected > 0)
    }
}
