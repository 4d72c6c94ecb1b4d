/// One affinity group: GPUs that are all pairwise together at `level` (a maximal clique of the
/// "at `level` or closer" relation), e.g. an NVLink island, the GPUs behind one PCIe switch, one
/// socket's GPUs.
public struct AffinityGroup: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var level: AffinityLevel
    public var gpus: GPUSet

    public static func < (lhs: AffinityGroup, rhs: AffinityGroup) -> Bool {
        if lhs.level != rhs.level { return lhs.level < rhs.level }
        if lhs.gpus.indices.first != rhs.gpus.indices.first {
            return (lhs.gpus.indices.first ?? 0) < (rhs.gpus.indices.first ?? 0)
        }
        return lhs.gpus < rhs.gpus
    }

    public var description: String { "\(level.name){\(gpus)}" }
}

/// Affinity groups of one node topology, computed once per distinct topology.
///
/// At every level the groups are the maximal sets of GPUs that are pairwise at that level or
/// closer. Real machines give a hierarchy (each group inside one group of every looser level);
/// irregular meshes such as the DGX-1 hybrid cube give overlapping groups at the NVLink level,
/// which is exact: GPUs 0 and 4 of a DGX-1 are NVLink peers although they sit in different
/// NVLink quads. The alignment of any GPU set is the tightest level with one group holding it.
public struct AffinityTable: Sendable {
    public let topology: NodeTopology
    /// Groups per level (index = `AffinityLevel.rawValue`), sorted, without subsets of others.
    public let groups: [[AffinityGroup]]
    /// Largest group size per level.
    public let largestGroup: [Int]

    /// At most this many maximal groups per level; more means a pathological matrix.
    public static let groupLimit = 4096

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooIrregular(AffinityLevel)
        public var description: String {
            switch self {
            case let .tooIrregular(level):
                "more than \(AffinityTable.groupLimit) overlapping \(level.name) groups: the link matrix is too irregular"
            }
        }
    }

    public init(_ topology: NodeTopology) throws(Failure) {
        self.topology = topology
        var groups: [[AffinityGroup]] = []
        for level in AffinityLevel.allCases {
            var cliques: [GPUSet] = []
            if level == .node {
                cliques = [topology.allGPUs]
            } else {
                let adjacency = topology.gpus.indices.map { topology.neighbours(of: $0, at: level) }
                guard Self.maximalCliques(adjacency: adjacency, all: topology.allGPUs, into: &cliques) else {
                    throw .tooIrregular(level)
                }
            }
            groups.append(cliques.map { AffinityGroup(level: level, gpus: $0) }.sorted())
        }
        self.groups = groups
        largestGroup = groups.map { $0.map(\.gpus.count).max() ?? 0 }
    }

    public func groups(at level: AffinityLevel) -> [AffinityGroup] { groups[level.rawValue] }

    /// The largest number of GPUs one job can get aligned at `level` on an idle node.
    public func largestGroup(at level: AffinityLevel) -> Int { largestGroup[level.rawValue] }

    /// The alignment of a GPU set (see `NodeTopology.alignment(of:)`).
    public func alignment(of set: GPUSet) -> AffinityLevel { topology.alignment(of: set) }

    /// The coarser group holding `group` at the next looser level that has one (for tree views).
    public func parent(of group: AffinityGroup) -> AffinityGroup? {
        var level = group.level.rawValue + 1
        while level < AffinityLevel.allCases.count {
            if let parent = groups[level].first(where: { group.gpus.isSubset(of: $0.gpus) }) {
                // Skip levels whose group is the same set (e.g. PCIe switch == NVLink island).
                if parent.gpus != group.gpus { return parent }
            }
            level += 1
        }
        return nil
    }

    /// Every GPU set of exactly `size` GPUs aligned at `level` or closer, in a stable order,
    /// stopping after `limit` sets (planners take the cheapest of these).
    public func alignedSets(size: Int, level: AffinityLevel, limit: Int = 100_000) -> [GPUSet] {
        guard size > 0, size <= largestGroup(at: level) else { return [] }
        var seen = Set<GPUSet>()
        var result: [GPUSet] = []
        for group in groups(at: level) where group.gpus.count >= size {
            Self.subsets(of: group.gpus.indices, size: size) { set in
                if seen.insert(set).inserted { result.append(set) }
                return result.count < limit
            }
            if result.count >= limit { break }
        }
        return result
    }

    /// Calls `body` for each `size`-subset of `items` until it returns false.
    static func subsets(of items: [Int], size: Int, _ body: (GPUSet) -> Bool) {
        guard size <= items.count else { return }
        var chosen = Array(0..<size)
        while true {
            guard body(GPUSet(chosen.map { items[$0] })) else { return }
            var i = size - 1
            while i >= 0, chosen[i] == items.count - size + i { i -= 1 }
            if i < 0 { return }
            chosen[i] += 1
            for k in (i + 1)..<size { chosen[k] = chosen[k - 1] + 1 }
        }
    }

    /// Bron–Kerbosch with pivoting over bit masks; false when more than `groupLimit` cliques.
    static func maximalCliques(adjacency: [GPUSet], all: GPUSet, into result: inout [GPUSet]) -> Bool {
        var steps = 0
        func expand(_ r: GPUSet, _ p: GPUSet, _ x: GPUSet) -> Bool {
            steps += 1
            if steps > 1_000_000 { return false }
            if p.isEmpty && x.isEmpty {
                result.append(r)
                return result.count <= groupLimit
            }
            let pivot = p.union(x).max { adjacency[$0].intersection(p).count < adjacency[$1].intersection(p).count } ?? 0
            var p = p
            var x = x
            for v in p.subtracting(adjacency[pivot]) {
                var withV = r
                withV.insert(v)
                guard expand(withV, p.intersection(adjacency[v]), x.intersection(adjacency[v])) else { return false }
                p.remove(v)
                x.insert(v)
            }
            return true
        }
        return expand(GPUSet(), all, GPUSet())
    }
}

/// Interns affinity tables by topology: nodes of one type share one table, computed once.
public struct AffinityCatalog: Sendable {
    private var tables: [NodeTopology: AffinityTable] = [:]

    public init() {}

    public var count: Int { tables.count }

    /// The table of `topology`'s layout (device files do not count: see `NodeTopology.layout`).
    public mutating func table(for topology: NodeTopology) throws(AffinityTable.Failure) -> AffinityTable {
        let layout = topology.layout
        if let table = tables[layout] { return table }
        let table = try AffinityTable(layout)
        tables[layout] = table
        return table
    }
}
