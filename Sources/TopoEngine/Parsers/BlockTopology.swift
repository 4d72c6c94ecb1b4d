/// Slurm's topology.conf for `topology/block` (24.05+; multi-node NVLink domains such as
/// NVL72-class racks): base blocks of nodes, and the aggregated block sizes Slurm may place a
/// job in.
///
///     BlockName=b1 Nodes=node[1-4]
///     BlockName=b2 Nodes=node[5-8]
///     BlockSizes=4,8
///
/// Slurm's model (src/plugins/topology/block/block_record.c, read in 24.11.5 and 26.05.3): the
/// base block size is the first `BlockSizes` entry, else the first block's node count; every
/// `BlockSizes` entry is that size times a power of two (2^0..2^15), default 1, 2, 4, 8 and 16
/// base blocks. An aggregated block of 2^k base blocks is k-aligned consecutive base blocks in
/// file order (blocks 0-1, 2-3, ... for 2^1), and a trailing partial aggregate exists when the
/// remaining blocks are more than the next smaller size holds. Nodes in no block are usable by
/// no multi-node job that needs a block (Slurm warns); a node in two blocks is taken from the
/// first.
public struct BlockTopology: Sendable, Equatable {
    public struct Block: Sendable, Equatable {
        public var name: String
        public var nodes: [String]
        /// Line of its `BlockName=` in the file.
        public var line: Int
    }

    /// How closely a set of nodes is held together: the tightest block level holding all of
    /// them.
    public enum Alignment: Sendable, Equatable, CustomStringConvertible {
        /// All in one base block.
        case block(String)
        /// All in one aggregated block of `size` base blocks (its base blocks' names).
        case aggregate(size: Int, blocks: [String])
        /// No block level holds them all (or a node is in no block).
        case none

        public var description: String {
            switch self {
            case let .block(name): "block \(name)"
            case let .aggregate(size, blocks): "aggregated block of \(size) (\(blocks.joined(separator: ",")))"
            case .none: "no block"
            }
        }
    }

    /// Base blocks in file order.
    public var blocks: [Block]
    /// Nodes per base block.
    public var baseBlockNodes: Int
    /// Aggregation levels Slurm uses, as numbers of base blocks (1, 2, 4, ...), ascending.
    public var levels: [Int]
    /// Base block index of each node.
    public var blockIndex: [String: Int]

    /// The levels as the planner takes them.
    public var blockLevels: BlockLevels { BlockLevels(order: blocks.map(\.name), baseNodes: baseBlockNodes, levels: levels) }

    /// The aggregated blocks of `size` base blocks, as base block index ranges.
    public func aggregates(of size: Int) -> [Range<Int>] { blockLevels.aggregates(of: size) }

    /// The tightest block level holding every node of `nodes`.
    public func alignment(of nodes: [String]) -> Alignment {
        var indices = Set<Int>()
        for node in nodes {
            guard let index = blockIndex[node] else { return .none }
            indices.insert(index)
        }
        guard let low = indices.min(), let high = indices.max() else { return .none }
        if low == high { return .block(blocks[low].name) }
        for size in levels where size > 1 {
            for range in aggregates(of: size) where range.contains(low) && range.contains(high) {
                return .aggregate(size: size, blocks: range.map { blocks[$0].name })
            }
        }
        return .none
    }

    /// Each node's base block name.
    public var blockOfNode: [String: String] {
        var result: [String: String] = [:]
        for (node, index) in blockIndex { result[node] = blocks[index].name }
        return result
    }

    /// Whether slurm.conf (its text) selects `TopologyPlugin=topology/block`.
    public static func isSelected(bySlurmConf text: String) -> Bool {
        SlurmConfNodes.parameter("TopologyPlugin", in: text).map { asciiLowercased($0) == "topology/block" } ?? false
    }

    /// topology.conf beside slurm.conf (where Slurm reads it).
    public static func path(besideSlurmConf slurmConf: String) -> String {
        guard let slash = slurmConf.lastIndex(of: "/") else { return "topology.conf" }
        return String(slurmConf[...slash]) + "topology.conf"
    }

    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> BlockTopology {
        try TextLines.check(size: text, file: file)
        let lines = try KeyValueLexer.lex(text, file: file)
        var blocks: [Block] = []
        var firstLine: [String: Int] = [:]
        var blockIndex: [String: Int] = [:]
        var sizes: KeyValuePair?
        for line in lines {
            var name: KeyValuePair?
            var nodes: KeyValuePair?
            for pair in line.pairs {
                switch asciiLowercased(pair.key) {
                case "blockname": name = pair
                case "nodes": nodes = pair
                case "blocksizes":
                    if let sizes {
                        throw TextDiagnostic(file: file, location: pair.location,
                                             message: "BlockSizes is already given on line \(sizes.location.line)")
                    }
                    sizes = pair
                case "switchname", "switches", "linkspeed":
                    throw TextDiagnostic(file: file, location: pair.location,
                                         message: "'\(printable(pair.key))' is topology/tree's; a topology/block file has BlockName, Nodes, BlockSizes")
                default:
                    throw TextDiagnostic(file: file, location: pair.location,
                                         message: "unknown topology.conf key '\(printable(pair.key))' (expected BlockName, Nodes, BlockSizes)")
                }
            }
            if name == nil, nodes == nil { continue }  // a BlockSizes line
            guard let name else {
                throw TextDiagnostic(file: file, location: line.pairs[0].location, message: "Nodes= needs a BlockName= on its line")
            }
            guard !name.value.isEmpty else {
                throw TextDiagnostic(file: file, location: name.valueLocation, message: "BlockName is empty")
            }
            if let previous = firstLine[name.value] {
                throw TextDiagnostic(file: file, location: name.valueLocation,
                                     message: "block '\(printable(name.value))' is already defined on line \(previous)")
            }
            firstLine[name.value] = line.line
            var names: [String] = []
            if let nodes {
                do { names = try BracketList.expandList(nodes.value, limit: BracketList.hostLimit) } catch {
                    throw TextDiagnostic(file: file, location: nodes.valueLocation, message: "Nodes: \(error)")
                }
            }
            for node in names where blockIndex[node] == nil {
                blockIndex[node] = blocks.count
            }
            blocks.append(Block(name: name.value, nodes: names, line: line.line))
        }
        guard !blocks.isEmpty else {
            throw TextDiagnostic(file: file, location: SourceLocation(line: 1, column: 1), message: "no BlockName= line")
        }
        var base = 0
        var levels: [Int] = []
        if let sizes {
            for part in sizes.value.split(separator: ",", omittingEmptySubsequences: false) {
                guard let size = Int(part), size > 0 else {
                    throw TextDiagnostic(file: file, location: sizes.valueLocation,
                                         message: "BlockSizes: '\(printable(String(part)))' is not a positive number of nodes")
                }
                if base == 0 { base = size }
                let ratio = size / base
                guard size % base == 0, ratio & (ratio - 1) == 0, ratio <= 1 << 15 else {
                    throw TextDiagnostic(file: file, location: sizes.valueLocation,
                                         message: "BlockSizes: \(size) is not \(base) (the first size) times a power of two up to 2^15")
                }
                if !levels.contains(ratio) { levels.append(ratio) }
            }
        } else {
            base = blocks.first { !$0.nodes.isEmpty }?.nodes.count ?? 0
            levels = [1, 2, 4, 8, 16]
        }
        guard base > 0 else {
            throw TextDiagnostic(file: file, location: SourceLocation(line: blocks[0].line, column: 1),
                                 message: "blocks hold no nodes and BlockSizes is not set")
        }
        levels = BlockLevels.cut(levels, blocks: blocks.count)
        return BlockTopology(blocks: blocks, baseBlockNodes: base, levels: levels, blockIndex: blockIndex)
    }
}
