import CSlurmShim
import Glibc
import Synchronization
import TopoEngine

/// The cluster's GPU topology as the plugins see it (one store for both: `PluginImage`):
/// slurm.conf `NodeName=` lines and gres.conf `Name=gpu` lines, and with
/// `TopologyPlugin=topology/block` the blocks of topology.conf (beside slurm.conf, as Slurm reads
/// it), with `topology/tree` its leaf switches, read at `init` and again whenever a file changes
/// (a stat of each per call, the same rule as topo_aware.conf). A topology.conf that cannot be
/// read or parsed is logged and leaves the planner without blocks or switches (multi-node plans
/// then ignore them); the GPU topology stays.
///
/// Never fatal: a missing or unreadable file, or one that does not parse, is logged once and
/// leaves the plugin without topology (no rejections, no shaping: stock behaviour). Nodes whose
/// gres.conf lines are missing or broken are left out, with one log line each.
public final class TopologyStore: Sendable {
    private struct State {
        var slurmConf = ""
        var gresConf = ""
        var stamps: [FileStamp?] = [nil, nil, nil]
        var summary: TopologySummary?
        var layouts: ControllerTopology?
        var loaded = false
        var reported: [FileStamp?]?
        /// The preempt side's log prefix once it uses the store: then the nodes its planner
        /// leaves out (inconsistent Links=) are logged at every load, under that prefix.
        var leftOutPrefix: String?
    }

    private let state = Mutex(State())
    /// Loads by every store of the process (ControllerTopology.generation): never repeats.
    private static let loads = Mutex<UInt64>(0)

    public init() {}

    /// Reads both files now (plugin `init`); logs what it found. `reportLeftOutAs`: the preempt
    /// side's prefix, to log (now and at every later load) the nodes its planner leaves out.
    public func load(slurmConf: String, gresConf: String, logPrefix: String, reportLeftOutAs: String? = nil) {
        state.withLock { state in
            let leftOutPrefix = reportLeftOutAs ?? state.leftOutPrefix
            state = State(slurmConf: slurmConf, gresConf: gresConf, leftOutPrefix: leftOutPrefix)
            reload(&state, initial: true, logPrefix: logPrefix)
        }
    }

    /// The summary in force, re-read first when a file changed; nil when unknown.
    public func current(logPrefix: String) -> TopologySummary? { refreshed(logPrefix) { $0.summary } }

    /// The node layouts in force for the preempt planner (re-read like `current()`).
    public func controllerTopology(logPrefix: String) -> ControllerTopology? { refreshed(logPrefix) { $0.layouts } }

    /// Reloads when either file changed since the last (good or reported) read, then reads.
    private func refreshed<T: Sendable>(_ logPrefix: String, _ read: (State) -> T?) -> T? {
        state.withLock { state -> T? in
            guard state.loaded else { return nil }
            let stamps = Self.stamps(state)
            if stamps != state.stamps && stamps != state.reported { reload(&state, initial: false, logPrefix: logPrefix) }
            return read(state)
        }
    }

    public func unload() {
        state.withLock { $0 = State() }
    }

    private func reload(_ state: inout State, initial: Bool, logPrefix: String) {
        state.loaded = true
        let stamps = Self.stamps(state)
        do {
            let (slurmText, slurmStamp) = try ConfigStore.read(state.slurmConf, limit: 1 << 20)
            let (gresText, gresStamp) = try ConfigStore.read(state.gresConf, limit: 1 << 20)
            let nodes: [SlurmNodeSpec]
            let gres: GresConf
            do {
                nodes = try SlurmConfNodes.parse(slurmText, file: state.slurmConf)
                gres = try GresConf.parse(gresText, file: state.gresConf)
            } catch {
                throw ConfigLoadError(description: error.description)
            }
            let (summary, cluster) = TopologySummary.build(slurmNodes: nodes, gresConf: gres)
            for warning in cluster.warnings.prefix(20) { SlurmLog.info("\(logPrefix): topology: \(warning)") }
            if cluster.warnings.count > 20 { SlurmLog.info("\(logPrefix): topology: \(cluster.warnings.count - 20) more warnings") }
            state.summary = summary.nodeCount > 0 ? summary : nil
            state.layouts = summary.nodeCount > 0 ? ControllerTopology(cluster) : nil
            if state.layouts != nil {
                state.layouts?.setBlocks(Self.blocks(slurmText: slurmText, topologyConf: Self.topologyConf(state.slurmConf),
                                                     logPrefix: logPrefix, initial: initial))
                state.layouts?.leafSwitchOfNode = Self.switches(slurmText: slurmText, topologyConf: Self.topologyConf(state.slurmConf),
                                                                logPrefix: logPrefix, initial: initial)?.leafOf ?? [:]
            }
            state.layouts?.generation = Self.loads.withLock { count in
                count &+= 1
                return count
            }
            if let prefix = state.leftOutPrefix, let leftOut = state.layouts?.leftOut {
                for (node, problem) in leftOut.prefix(20) {
                    let note = "; using the smaller"  // the CLI's reading, not the planner's
                    let what = problem.hasSuffix(note) ? String(problem.dropLast(note.count)) : problem
                    SlurmLog.error("\(prefix): node \(node): gres.conf Links= disagree (\(what)); the node is left to the base policy")
                }
                if leftOut.count > 20 { SlurmLog.error("\(prefix): \(leftOut.count - 20) more nodes left to the base policy for their Links=") }
            }
            state.stamps = [slurmStamp, gresStamp, Self.stamp(Self.topologyConf(state.slurmConf))]
            state.reported = nil
            SlurmLog.info("\(logPrefix): \(initial ? "" : "re")loaded GPU topology from \(state.gresConf): \(Self.describe(summary, layouts: cluster.layoutCount))")
        } catch {
            state.summary = nil
            state.layouts = nil
            state.stamps = stamps
            state.reported = stamps
            SlurmLog.error("\(logPrefix): GPU topology unavailable (\(error)); no topology checks or shaping until the files are fixed")
        }
    }

    /// "2 GPU nodes, 1 layout; largest group nvlink 4, ..., node 8; socket-shaped levels: nvlink, numa".
    static func describe(_ summary: TopologySummary, layouts: Int) -> String {
        let largest = AffinityLevel.allCases.map { "\($0.name) \(summary.largestGroup(at: $0))" }.joined(separator: ", ")
        let shaped = AffinityLevel.allCases.filter { summary.socketLevel[$0.rawValue] }.map(\.name)
        return "\(summary.nodeCount) GPU node\(summary.nodeCount == 1 ? "" : "s"), \(layouts) layout\(layouts == 1 ? "" : "s"); "
            + "largest group \(largest); levels one socket wide: \(shaped.isEmpty ? "none" : shaped.joined(separator: ", "))"
    }

    static func topologyConf(_ slurmConf: String) -> String { BlockTopology.path(besideSlurmConf: slurmConf) }

    private static func stamps(_ state: State) -> [FileStamp?] {
        [stamp(state.slurmConf), stamp(state.gresConf), stamp(topologyConf(state.slurmConf))]
    }

    /// The blocks, when slurm.conf names `topology/block` and its topology.conf parses; else nil
    /// (logged when the file is wanted but unusable).
    private static func blocks(slurmText: String, topologyConf: String, logPrefix: String, initial: Bool) -> BlockTopology? {
        guard BlockTopology.isSelected(bySlurmConf: slurmText) else { return nil }
        do {
            let (text, _) = try ConfigStore.read(topologyConf, limit: 1 << 20)
            let topology: BlockTopology
            do { topology = try BlockTopology.parse(text, file: topologyConf) } catch {
                throw ConfigLoadError(description: error.description)
            }
            SlurmLog.info("\(logPrefix): \(initial ? "" : "re")loaded \(topology.blocks.count) blocks of \(topology.baseBlockNodes) nodes from \(topologyConf)")
            return topology
        } catch {
            SlurmLog.error("\(logPrefix): blocks unavailable (\(error)); multi-node plans ignore blocks until the file is fixed")
            return nil
        }
    }

    /// The leaf switches, when slurm.conf names `topology/tree` and its topology.conf parses;
    /// else nil (logged when the file is wanted but unusable).
    private static func switches(slurmText: String, topologyConf: String, logPrefix: String, initial: Bool) -> SwitchTopology? {
        guard SwitchTopology.isSelected(bySlurmConf: slurmText) else { return nil }
        do {
            let (text, _) = try ConfigStore.read(topologyConf, limit: 1 << 20)
            let topology: SwitchTopology
            do { topology = try SwitchTopology.parse(text, file: topologyConf) } catch {
                throw ConfigLoadError(description: error.description)
            }
            let leaves = Set(topology.leafOf.values).count
            SlurmLog.info("\(logPrefix): \(initial ? "" : "re")loaded \(leaves) leaf switches of \(topology.leafOf.count) nodes from \(topologyConf)")
            return topology
        } catch {
            SlurmLog.error("\(logPrefix): switches unavailable (\(error)); multi-node plans ignore switches until the file is fixed")
            return nil
        }
    }

    private static func stamp(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStamp(info)
    }
}
