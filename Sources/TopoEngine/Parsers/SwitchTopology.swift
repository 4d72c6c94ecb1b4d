/// Slurm's topology.conf for `topology/tree`: switches with the nodes (leaf switches) or the
/// switches below them.
///
///     SwitchName=s1 Nodes=gpu[01-16]
///     SwitchName=s2 Nodes=gpu[17-32]
///     SwitchName=spine Switches=s[1-2]
public struct SwitchTopology: Sendable, Equatable {
    /// Leaf switch of each node.
    public var leafOf: [String: String]
    /// Switch names in file order.
    public var switches: [String]

    /// Whether slurm.conf (its text) selects `TopologyPlugin=topology/tree`.
    public static func isSelected(bySlurmConf text: String) -> Bool {
        SlurmConfNodes.parameter("TopologyPlugin", in: text).map { asciiLowercased($0) == "topology/tree" } ?? false
    }

    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> SwitchTopology {
        try TextLines.check(size: text, file: file)
        let lines = try KeyValueLexer.lex(text, file: file)
        var leafOf: [String: String] = [:]
        var switches: [String] = []
        var firstLine: [String: Int] = [:]
        for line in lines {
            var name: KeyValuePair?
            var nodes: KeyValuePair?
            for pair in line.pairs {
                switch asciiLowercased(pair.key) {
                case "switchname": name = pair
                case "nodes": nodes = pair
                case "switches", "linkspeed": break
                default:
                    throw TextDiagnostic(file: file, location: pair.location,
                                         message: "unknown topology.conf key '\(printable(pair.key))' (expected SwitchName, Nodes, Switches, LinkSpeed)")
                }
            }
            guard let name else {
                throw TextDiagnostic(file: file, location: line.pairs[0].location, message: "a line needs SwitchName=")
            }
            if let previous = firstLine[name.value] {
                throw TextDiagnostic(file: file, location: name.valueLocation,
                                     message: "switch '\(printable(name.value))' is already defined on line \(previous)")
            }
            firstLine[name.value] = line.line
            switches.append(name.value)
            if let nodes {
                let names: [String]
                do { names = try BracketList.expandList(nodes.value, limit: BracketList.hostLimit) } catch {
                    throw TextDiagnostic(file: file, location: nodes.valueLocation, message: "Nodes: \(error)")
                }
                for node in names where leafOf[node] == nil {
                    leafOf[node] = name.value
                }
            }
        }
        return SwitchTopology(leafOf: leafOf, switches: switches)
    }
}
