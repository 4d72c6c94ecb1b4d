/// Slurm's block levels (`topology/block`): the base blocks in topology.conf order, the nodes
/// of a base block and the aggregation levels, as much as the planner needs to know where Slurm
/// may place a multi-node job.
///
/// Slurm places a job of `n` nodes inside one block of the smallest configured level holding
/// `n` nodes (src/plugins/topology/block/eval_nodes_block.c, `_get_block_level`, read in 26.05.3:
/// `ceil(log2(ceil(n / base nodes)))`, then the first configured level at or above it), never
/// across two of them: a job of at most a base block's nodes runs inside one base block, and
/// preempting jobs on nodes of two blocks frees nothing Slurm would use together. A job too
/// large for every level may take any blocks.
public struct BlockLevels: Sendable, Equatable, Codable {
    /// Base block names in topology.conf order.
    public var order: [String]
    /// Nodes per base block.
    public var baseNodes: Int
    /// Aggregation levels as numbers of base blocks (1, 2, 4, ...), ascending.
    public var levels: [Int]

    public init(order: [String], baseNodes: Int, levels: [Int]) {
        self.order = order
        self.baseNodes = max(1, baseNodes)
        self.levels = levels.filter { $0 > 0 }.sorted()
    }

    enum CodingKeys: String, CodingKey { case order, baseNodes, levels }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let order = try c.decode([String].self, forKey: .order)
        let baseNodes = try c.decode(Int.self, forKey: .baseNodes)
        let levels = try c.decode([Int].self, forKey: .levels)
        guard Set(order).count == order.count else {
            throw DecodingError.dataCorruptedError(forKey: .order, in: c, debugDescription: "a block is named twice")
        }
        guard baseNodes > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .baseNodes, in: c, debugDescription: "\(baseNodes) is not a positive number of nodes")
        }
        guard !levels.isEmpty, levels.allSatisfy({ $0 > 0 && $0 <= 1 << 15 && $0 & ($0 - 1) == 0 }) else {
            throw DecodingError.dataCorruptedError(forKey: .levels, in: c, debugDescription: "levels must be powers of two from 1 to 32768")
        }
        self.init(order: order, baseNodes: baseNodes, levels: levels)
    }

    /// One unit Slurm may place a job in: its base blocks (index range) and its name (`b1`, or
    /// `b1,b2` for an aggregated block).
    public struct Unit: Sendable, Equatable {
        public var blocks: Range<Int>
        public var name: String
    }

    /// The aggregated blocks of `size` base blocks, as base block index ranges: k-aligned runs
    /// of consecutive blocks; a trailing partial run only where the next smaller size does not
    /// already hold the rest (Slurm's block_record.c).
    public func aggregates(of size: Int) -> [Range<Int>] {
        guard let j = levels.firstIndex(of: size) else { return [] }
        if size == 1 { return order.indices.map { $0..<($0 + 1) } }
        var result: [Range<Int>] = []
        var start = 0
        while start < order.count {
            let remaining = order.count - start
            if size > remaining, j > 0, levels[j - 1] >= remaining { break }
            result.append(start..<min(start + size, order.count))
            start += size
        }
        return result
    }

    /// The level (base blocks per unit) Slurm places a job of `nodes` nodes at; nil when no
    /// level holds it (it may then take any blocks).
    public func level(forNodes nodes: Int) -> Int? {
        let perBlock = (max(1, nodes) + baseNodes - 1) / baseNodes
        var needed = 1
        while needed < perBlock { needed <<= 1 }
        return levels.first { $0 >= needed }
    }

    /// The units a job of `nodes` nodes may be placed in.
    public func units(forNodes nodes: Int) -> [Unit] {
        guard let size = level(forNodes: nodes) else {
            return order.isEmpty ? [] : [Unit(blocks: order.indices, name: "all blocks")]
        }
        return aggregates(of: size).map { Unit(blocks: $0, name: $0.map { order[$0] }.joined(separator: ",")) }
    }

    /// The units a job of `nodes` nodes may be placed in, each with its nodes: indices into
    /// `states` (those of `members` when given, in their order), by the node's `block`. Units
    /// in Slurm's order; a unit none of whose nodes is a member is kept, empty. One pass over
    /// the members (the planner, the stock model and the tools share it).
    public func nodeUnits(forNodes nodes: Int, of states: [ClusterSnapshot.NodeState],
                          members: [Int]? = nil) -> [(name: String, nodes: [Int])] {
        let units = units(forNodes: nodes)
        var position: [String: Int] = [:]
        for (i, name) in order.enumerated() where position[name] == nil { position[name] = i }
        var unitOfBlock = [Int](repeating: -1, count: order.count)
        for (u, unit) in units.enumerated() {
            for b in unit.blocks where unitOfBlock.indices.contains(b) { unitOfBlock[b] = u }
        }
        var result = units.map { (name: $0.name, nodes: [Int]()) }
        func add(_ n: Int) {
            guard states.indices.contains(n), let block = states[n].block, let b = position[block], unitOfBlock[b] >= 0 else { return }
            result[unitOfBlock[b]].nodes.append(n)
        }
        if let members { members.forEach(add) } else { states.indices.forEach(add) }
        return result
    }

    /// Slurm's defaults for blocks known only by their nodes' names (a snapshot without
    /// `blockLevels`): blocks in order of first appearance, the first block's node count, levels
    /// 1, 2, 4, 8, 16 up to the first that holds every block.
    public static func derived(from nodes: [ClusterSnapshot.NodeState]) -> BlockLevels? {
        var order: [String] = []
        var counts: [String: Int] = [:]
        for node in nodes {
            guard let block = node.block else { continue }
            if counts[block] == nil { order.append(block) }
            counts[block, default: 0] += 1
        }
        guard let first = order.first, let base = counts[first] else { return nil }
        return BlockLevels(order: order, baseNodes: base, levels: cut([1, 2, 4, 8, 16], blocks: order.count))
    }

    /// As Slurm: levels beyond the first that reaches the number of blocks are not used.
    static func cut(_ levels: [Int], blocks: Int) -> [Int] {
        let sorted = levels.sorted()
        guard let covering = sorted.firstIndex(where: { $0 >= blocks }) else { return sorted }
        return Array(sorted[...covering])
    }
}
