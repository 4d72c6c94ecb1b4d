/// How closely a set of GPUs must be connected, from the tightest group to the loosest.
///
/// The raw values order the levels: a placement that reaches level `a` satisfies a requirement
/// of level `b` when `a <= b` (an NVLink island is also inside one PCIe switch's host, one NUMA
/// node, one socket and one node for the purpose of a requirement).
public enum AffinityLevel: Int, Sendable, CaseIterable, Comparable, Hashable {
    /// All GPUs in one NVLink clique or island (gres.conf `Links=` counts > 0 between each pair).
    case nvlink = 0
    /// All GPUs behind one PCIe switch (`PIX`/`PXB` in `nvidia-smi topo -m`).
    case pcieSwitch
    /// All GPUs behind one PCIe host bridge (`PHB`).
    case hostBridge
    /// All GPUs attached to one NUMA node (`NODE`).
    case numa
    /// All GPUs attached to one CPU socket (gres.conf `Cores=` within one socket).
    case socket
    /// Any GPUs of one node.
    case node

    /// The spelling used in topo_aware.conf, `--gpu-affinity` and logs.
    public var name: String {
        switch self {
        case .nvlink: "nvlink"
        case .pcieSwitch: "pcie-switch"
        case .hostBridge: "host-bridge"
        case .numa: "numa"
        case .socket: "socket"
        case .node: "node"
        }
    }

    /// Parses a level name, ignoring ASCII case.
    public init?(name: String) {
        let lowered = asciiLowercased(name)
        guard let level = AffinityLevel.allCases.first(where: { $0.name == lowered }) else { return nil }
        self = level
    }

    /// True when a placement reaching `self` meets a requirement of `required`.
    public func satisfies(_ required: AffinityLevel) -> Bool { self <= required }

    public static func < (lhs: AffinityLevel, rhs: AffinityLevel) -> Bool { lhs.rawValue < rhs.rawValue }

    /// "nvlink, pcie-switch, ..." for error messages.
    public static var allNames: String { allCases.map(\.name).joined(separator: ", ") }
}

/// What the planner may do when no placement at the required level can be freed.
public enum PlacementMode: Sendable, CaseIterable, Hashable {
    /// Only plans that put the job on GPUs aligned at the required level; otherwise no preemption.
    case guaranteed
    /// The best level reachable, reported as degraded when it is looser than required.
    case bestEffort

    public var name: String {
        switch self {
        case .guaranteed: "guaranteed"
        case .bestEffort: "best-effort"
        }
    }

    public init?(name: String) {
        let lowered = asciiLowercased(name)
        guard let mode = PlacementMode.allCases.first(where: { $0.name == lowered }) else { return nil }
        self = mode
    }

    public static var allNames: String { allCases.map(\.name).joined(separator: ", ") }
}

/// ASCII-only lowercasing: configuration words are ASCII, and this avoids Unicode tables in plugins.
@inlinable
func asciiLowercased(_ text: String) -> String {
    String(decoding: text.utf8.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 }, as: UTF8.self)
}
