/// How two GPUs of one node reach each other, as `nvidia-smi topo -m`, `rocm-smi --showtopo` and
/// gres.conf `Links=` describe it. Ordered from the closest to the farthest.
public enum GPUPath: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Direct GPU links: NVLink (`NV#`, # bonded links) or AMD XGMI. `links` >= 1.
    case gpuLink(links: Int)
    /// `PIX`: at most one PCIe bridge (one PCIe switch).
    case pcieSwitch
    /// `PXB`: several PCIe bridges, without the host bridge.
    case pcieSwitches
    /// `PHB`: through a PCIe host bridge (the CPU).
    case hostBridge
    /// `NODE`: between host bridges within one NUMA node.
    case numaNode
    /// `SYS` (`SOC` in old drivers): across the SMP interconnect between NUMA nodes.
    case system
    /// Nothing known beyond both GPUs being in one node (gres.conf `Links=0`, `N/A`, missing).
    case unknown

    var rank: Int {
        switch self {
        case .gpuLink: 0
        case .pcieSwitch: 1
        case .pcieSwitches: 2
        case .hostBridge: 3
        case .numaNode: 4
        case .system: 5
        case .unknown: 6
        }
    }

    public static func < (lhs: GPUPath, rhs: GPUPath) -> Bool {
        if case let .gpuLink(a) = lhs, case let .gpuLink(b) = rhs { return a > b }
        return lhs.rank < rhs.rank
    }

    /// The affinity level a pair at this distance reaches by its path alone (NUMA and socket
    /// membership can make `system`/`unknown` pairs closer: see `NodeTopology.pairLevel`).
    public var level: AffinityLevel {
        switch self {
        case .gpuLink: .nvlink
        case .pcieSwitch, .pcieSwitches: .pcieSwitch
        case .hostBridge: .hostBridge
        case .numaNode: .numa
        case .system, .unknown: .node
        }
    }

    /// `nvidia-smi topo -m` spelling (`NV4`, `PIX`, ...); `-` for unknown.
    public var description: String {
        switch self {
        case let .gpuLink(links): "NV\(links)"
        case .pcieSwitch: "PIX"
        case .pcieSwitches: "PXB"
        case .hostBridge: "PHB"
        case .numaNode: "NODE"
        case .system: "SYS"
        case .unknown: "-"
        }
    }

    /// gres.conf `Links=` value for a pair: the number of direct links, 0 when none.
    public var gresLinkCount: Int {
        if case let .gpuLink(links) = self { return links }
        return 0
    }
}

/// One GPU of a node and what it is close to.
public struct GPUInfo: Sendable, Hashable {
    /// Index on the node (`GPU3` → 3; the position in gres.conf order).
    public var index: Int
    /// OS CPU ids from `CPU Affinity`, or gres.conf `Cores=` (Slurm logical core ids).
    public var cpus: [Int]?
    /// NUMA node (`NUMA Affinity`, `rocm-smi` Numa Node); nil when not known or `N/A`.
    public var numaNode: Int?
    /// Socket, when the source or the caller knows it (gres.conf `Cores=` with slurm.conf's
    /// `CoresPerSocket`, or `--cores-per-socket`).
    public var socket: Int?
    /// Device file, where the source names one (gres.conf `File=`).
    public var file: String?
    /// GRES type (gres.conf `Type=`), e.g. `a100`.
    public var type: String?

    public init(index: Int, cpus: [Int]? = nil, numaNode: Int? = nil, socket: Int? = nil,
                file: String? = nil, type: String? = nil) {
        self.index = index
        self.cpus = cpus
        self.numaNode = numaNode
        self.socket = socket
        self.file = file
        self.type = type
    }
}

/// The GPU topology of one node type: GPUs and the path between every pair.
///
/// Pure value; many nodes share one (`AffinityTable` is computed once per distinct value).
public struct NodeTopology: Sendable, Hashable {
    public internal(set) var gpus: [GPUInfo]
    /// `paths[i][j]`, symmetric, `.unknown` on the diagonal.
    public private(set) var paths: [[GPUPath]]

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case noGPUs
        case tooManyGPUs(Int)
        case shape(String)

        public var description: String {
            switch self {
            case .noGPUs: "no GPUs"
            case let .tooManyGPUs(n): "\(n) GPUs on one node; at most \(GPUSet.capacity) are supported"
            case let .shape(text): text
            }
        }
    }

    /// Builds a topology; an asymmetric matrix keeps the farther path of each pair (the
    /// conservative reading), which `asymmetricPairs` reports before this normalises it.
    public init(gpus: [GPUInfo], paths: [[GPUPath]]) throws(Failure) {
        guard !gpus.isEmpty else { throw .noGPUs }
        guard gpus.count <= GPUSet.capacity else { throw .tooManyGPUs(gpus.count) }
        guard paths.count == gpus.count, paths.allSatisfy({ $0.count == gpus.count }) else {
            throw .shape("path matrix is not \(gpus.count)x\(gpus.count)")
        }
        var normalised = paths
        for i in gpus.indices {
            normalised[i][i] = .unknown
            for j in gpus.indices where j > i {
                let farther = max(paths[i][j], paths[j][i])
                normalised[i][j] = farther
                normalised[j][i] = farther
            }
        }
        var renumbered = gpus
        for i in renumbered.indices { renumbered[i].index = i }
        self.gpus = renumbered
        self.paths = normalised
    }

    /// Pairs (i, j), i < j, whose two matrix entries disagree.
    public static func asymmetricPairs(_ paths: [[GPUPath]]) -> [(Int, Int)] {
        var pairs: [(Int, Int)] = []
        for i in paths.indices {
            for j in paths[i].indices where j > i && j < paths.count && i < paths[j].count {
                if paths[i][j] != paths[j][i] { pairs.append((i, j)) }
            }
        }
        return pairs
    }

    public var gpuCount: Int { gpus.count }

    /// The same topology without device files: what makes nodes share one layout.
    public var layout: NodeTopology {
        var copy = self
        for i in copy.gpus.indices { copy.gpus[i].file = nil }
        return copy
    }
    public var allGPUs: GPUSet { GPUSet.first(gpus.count) }

    /// Assigns sockets from CPU lists: socket = cpu / coresPerSocket (each GPU's lowest CPU).
    public mutating func assignSockets(coresPerSocket: Int) {
        guard coresPerSocket > 0 else { return }
        for i in gpus.indices {
            if let first = gpus[i].cpus?.first { gpus[i].socket = first / coresPerSocket }
        }
    }

    /// The best level at which GPUs i and j are together.
    public func pairLevel(_ i: Int, _ j: Int) -> AffinityLevel {
        guard i != j else { return .nvlink }
        guard gpus.indices.contains(i), gpus.indices.contains(j) else { return .node }
        var level = paths[i][j].level
        if level > .numa, let a = gpus[i].numaNode, let b = gpus[j].numaNode, a == b { level = .numa }
        if level > .socket, let a = gpus[i].socket, let b = gpus[j].socket, a == b { level = .socket }
        return level
    }

    /// The alignment of a GPU set: the tightest level whose one group holds all of it, i.e. the
    /// farthest pair. A single GPU (or none) is `.nvlink`.
    public func alignment(of set: GPUSet) -> AffinityLevel {
        let members = set.indices
        var worst = AffinityLevel.nvlink
        for (a, i) in members.enumerated() {
            for j in members[(a + 1)...] {
                let level = pairLevel(i, j)
                if level > worst {
                    worst = level
                    if worst == .node { return worst }
                }
            }
        }
        return worst
    }

    /// The GPUs that are at `level` or closer with GPU i.
    func neighbours(of i: Int, at level: AffinityLevel) -> GPUSet {
        var set = GPUSet()
        for j in gpus.indices where j != i && pairLevel(i, j) <= level { set.insert(j) }
        return set
    }
}
