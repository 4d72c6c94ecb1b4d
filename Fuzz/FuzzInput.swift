import TopoEngine

/// Structured values read from a fuzzer's bytes. Past the end every read yields zero, so any
/// input, of any length, is a complete test case (libFuzzer's inputs are arbitrary bytes).
struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var exhausted: Bool { position >= bytes.count }

    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// 0..<n (0 when n < 2).
    mutating func below(_ n: Int) -> Int {
        n < 2 ? 0 : Int(u32() % UInt32(clamping: n))
    }

    mutating func chance(_ percent: Int) -> Bool { Int(byte()) * 100 < percent * 256 }

    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }

    /// A 32-bit value, often one Slurm gives a meaning (0, NO_VAL, INFINITE) or a small count.
    mutating func interesting32() -> UInt32 {
        switch byte() % 4 {
        case 0: u32()
        default: pick([0, 1, 2, 3, 4, 8, 16, 63, 64, 65, 0xffff, 0xffff_fffe, 0xffff_ffff, 0x7fff_ffff])
        }
    }

    mutating func interesting64() -> Int64 {
        switch byte() % 4 {
        case 0: Int64(bitPattern: u64())
        default: pick([0, 1, 59, 60, 3600, 86_400, -1, Int64.min, Int64.max, 1_700_000_000])
        }
    }

    /// Words that reach deep into the parsers (job_submit's GRES strings, AdminComment tags,
    /// the --gpu-affinity value, topo_aware.conf keys), mixed with raw bytes.
    static let dictionary: [String] = [
        "gres/gpu:", "gres/gpu:a100:", "gres:gpu:", "gpu:", "gres/shard:2", "license/x:1", "gres/gpu",
        "1", "2", "4", "8", "0", "3", "64", "65", "-1", "18446744073709551616", ",", ":", "=", ";", " ", "\t",
        "infer", "batch", "debug", "high", "normal", "infer,batch", "batch,infer",
        "topo_aware:", "preemptor=inference", "preemptible=batch", "level=", "mode=", "shape=", ",level=nvlink",
        "nvlink", "pcie-switch", "host-bridge", "numa", "socket", "node", "guaranteed", "best-effort",
        "nvlink:best-effort", "socket:guaranteed", AffinityOverride.spankVariable + "=", "PATH=/bin",
        "node1", "node2", "node3", "node[1-2]", "\u{FF}", "é", "%s%n%x", "\n", "\u{0}",
        "PreemptorClass=", "PreemptibleClass=", "Partitions=", "QOS=", "Level=", "Mode=", "DefaultLevel=",
        "DefaultMode=", "AllowUserOverride=", "ShapeRequests=", "BasePolicy=qos", "PlanTimeout=", "PlanTimeBudget=",
        "#", "yes", "no", "inference", "Exempt=",
    ]

    /// Bytes of up to `tokens` dictionary words and raw runs, no NUL (C strings end at one).
    mutating func text(tokens: Int) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<below(tokens + 1) {
            if chance(75) {
                out += Array(pick(Self.dictionary).utf8)
            } else {
                for _ in 0..<(1 + below(8)) { out.append(byte()) }
            }
        }
        return out.map { $0 == 0 ? 0x20 : $0 }
    }
}

/// Inputs for the built-in generator: seeded random bytes whose leading bytes are biased
/// towards small values, so the structured reads above take every branch.
struct InputGenerator {
    var rng: SplitMix64

    mutating func next() -> [UInt8] {
        let length = Int.random(in: 0...Int.random(in: 16...1024, using: &rng), using: &rng)
        return (0..<length).map { _ in
            switch UInt8.random(in: 0...9, using: &rng) {
            case 0...3: UInt8.random(in: 0...8, using: &rng)
            case 4: 0xff
            default: UInt8.random(in: 0...255, using: &rng)
            }
        }
    }
}
