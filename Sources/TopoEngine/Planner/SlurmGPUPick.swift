/// Which free GPUs Slurm gives a starting job on one node, modelled on `gres_select_filter.c`
/// (select/cons_common in 22.05, select/cons_tres later) for each release's pick
/// (`GPUPickModel`).
///
/// Up to 23.11 (`.linkLevels`), `--gres=gpu:N` (`_set_node_bits`): (1) one GPU per socket the job's cores use, the lowest
/// free index of each (GPUs without `Cores=` first), adding up the link counts of those anchors
/// to every free GPU; (2) from link count `best` down to 0 (scaled to at most 4 steps), GPUs on
/// the used sockets whose summed links reach the step, by index; (3) the same on the other
/// sockets. `--gpus-per-socket=N` (`_set_sock_bits`): the first N free GPUs of each used socket
/// by index (the 22.05 loop over link counts does not filter on them), then GPUs without `Cores=`.
///
/// From 24.05 (`.leastLinkedFirst`), both shapes go through `_pick_gres_topo`: GPUs in the
/// order of a list that starts as 0..<n; after each GPU picked, every GPU not allocated to other
/// jobs adds its links to that GPU to its sum, the list is sorted by those sums ascending
/// (glibc's qsort, stable here: Debian bookworm's glibc 2.36 merge-sorts) and the scan resumes
/// at its second entry. `--gres=gpu:N`: the sockets the job's cores use, each its share of N
/// by core count, then GPUs without `Cores=`, then the used sockets again, then the others.
/// `--gpus-per-socket=N`: N on the job's socket, then GPUs without `Cores=`, then the others.
///
/// The job's cores are placed before GPUs are picked, by logic this model does not follow, so
/// the planner asks the model for every socket set the cores could use and guarantees a plan
/// only when every answer is aligned.
public enum SlurmGPUPick {
    /// The pick for `count` GPUs per node from `free`, with the job's cores on `usedSockets`;
    /// nil when Slurm would not find enough GPUs there.
    public static func pickPerNode(_ topology: NodeTopology, model: GPUPickModel, free: GPUSet, count: Int,
                                   usedSockets: Set<Int>) -> GPUSet? {
        pickPerNode(Context(topology, model: model), free: free, count: count, usedSockets: usedSockets)
    }

    /// A layout's data in the form the pick loops read, prepared once per layout and release.
    public struct Context: Sendable {
        let links: [[Int]]
        let socketOf: [Int?]
        let socketCount: Int
        /// The sockets of the node's GPUs, in order (`SlurmGPUPick.sockets`), kept with it.
        public let sockets: [Int]
        public let topology: NodeTopology
        public let model: GPUPickModel

        public init(_ topology: NodeTopology, model: GPUPickModel) {
            self.topology = topology
            self.model = model
            links = topology.paths.map { $0.map(\.gresLinkCount) }
            socketOf = topology.gpus.map(\.socket)
            socketCount = (socketOf.compactMap { $0 }.max() ?? -1) + 1
            sockets = SlurmGPUPick.sockets(topology)
        }
    }

    static func pickPerNode(_ context: Context, free: GPUSet, count: Int, usedSockets: Set<Int>) -> GPUSet? {
        guard count > 0, free.count >= count else { return count == 0 ? GPUSet() : nil }
        switch context.model {
        case .linkLevels: return linkLevelsPerNode(context, free: free, count: count, usedSockets: usedSockets)
        case .leastLinkedFirst: return leastLinkedPerNode(context, free: free, count: count, usedSockets: usedSockets)
        }
    }

    static func linkLevelsPerNode(_ context: Context, free: GPUSet, count: Int, usedSockets: Set<Int>) -> GPUSet? {
        let n = context.links.count
        guard count > 0, free.count >= count else { return count == 0 ? GPUSet() : nil }
        let socketOf = context.socketOf
        let socketCount = context.socketCount
        var selected = GPUSet()
        var linkSum = [Int](repeating: 0, count: n)
        let links = context.links

        func onSocket(_ g: Int, _ s: Int) -> Bool { s == -1 ? socketOf[g] == nil : socketOf[g] == s }
        let usedOrder = [-1] + (0..<socketCount).filter { usedSockets.contains($0) }

        // (1) One anchor per used socket.
        for s in usedOrder where selected.count < count {
            for g in 0..<n where onSocket(g, s) && free.contains(g) && !selected.contains(g) {
                selected.insert(g)
                for l in 0..<n where l != g && free.contains(l) { linkSum[l] += links[g][l] }
                break
            }
        }
        var best = linkSum.max() ?? 0
        if best > 4 {
            let divisor = (best + 3) / 4
            for l in 0..<n { linkSum[l] /= divisor }
            best = linkSum.max() ?? 0
        }
        // (2) Best-linked GPUs on the used sockets, then (3) on the other sockets.
        for sockets in [usedOrder, (0..<socketCount).filter { !usedSockets.contains($0) }] {
            var level = best
            while level >= 0 && selected.count < count {
                for s in sockets where selected.count < count {
                    for g in 0..<n where linkSum[g] >= level && onSocket(g, s) && free.contains(g) && !selected.contains(g) {
                        selected.insert(g)
                        if selected.count >= count { break }
                    }
                }
                level -= 1
            }
        }
        return selected.count >= count ? selected : nil
    }

    /// 24.05+: `_pick_gres_topo`'s sorted scan, shared by the calls of one `_set_node_bits` or
    /// `_set_sock_bits` (the list and the sums persist across them).
    struct LeastLinkedScan {
        let links: [[Int]]
        let free: GPUSet
        var order: [Int]
        var sums: [Int]
        var selected = GPUSet()

        init(_ context: Context, free: GPUSet) {
            links = context.links
            self.free = free
            order = Array(context.links.indices)
            sums = [Int](repeating: 0, count: context.links.count)
        }

        /// Picks up to `needed` GPUs among those `eligible` admits; returns how many it took.
        mutating func pick(_ needed: Int, _ eligible: (Int) -> Bool) -> Int {
            var still = needed
            var i = 0
            while i < order.count && still > 0 {
                let g = order[i]
                guard eligible(g), !selected.contains(g), free.contains(g) else {
                    i += 1
                    continue
                }
                selected.insert(g)
                still -= 1
                for l in links.indices where l != g && free.contains(l) { sums[l] += links[g][l] }
                // Stable ascending sort by summed links; the scan goes on at index 1 (Slurm
                // sets i = 0 and its for loop then increments it).
                let sums = self.sums
                order = order.enumerated().sorted { a, b in
                    sums[a.element] != sums[b.element] ? sums[a.element] < sums[b.element] : a.offset < b.offset
                }.map(\.element)
                i = 1
            }
            return needed - still
        }
    }

    static func leastLinkedPerNode(_ context: Context, free: GPUSet, count: Int, usedSockets: Set<Int>) -> GPUSet? {
        var scan = LeastLinkedScan(context, free: free)
        let socketOf = context.socketOf
        let used = (0..<context.socketCount).filter { usedSockets.contains($0) }
        var needed = count
        // Each used socket its share by core count (the cores are modelled as spread evenly).
        let perSocket = used.isEmpty ? 0 : count / used.count
        for s in used where needed > 0 {
            needed -= scan.pick(min(needed, perSocket)) { socketOf[$0] == s }
        }
        if needed > 0 { needed -= scan.pick(needed) { socketOf[$0] == nil } }
        for s in used where needed > 0 { needed -= scan.pick(needed) { socketOf[$0] == s } }
        for s in 0..<context.socketCount where needed > 0 && !usedSockets.contains(s) {
            needed -= scan.pick(needed) { socketOf[$0] == s }
        }
        return needed == 0 ? scan.selected : nil
    }

    /// The pick for `count` GPUs per socket on one socket `socket` (`--gpus-per-socket=N
    /// --sockets-per-node=1`); nil when that socket lacks free GPUs.
    public static func pickPerSocket(_ topology: NodeTopology, model: GPUPickModel, free: GPUSet, count: Int,
                                     socket: Int) -> GPUSet? {
        pickPerSocket(Context(topology, model: model), free: free, count: count, socket: socket)
    }

    static func pickPerSocket(_ context: Context, free: GPUSet, count: Int, socket: Int) -> GPUSet? {
        let topology = context.topology
        if context.model == .leastLinkedFirst {
            var scan = LeastLinkedScan(context, free: free)
            let socketOf = context.socketOf
            var needed = count
            needed -= scan.pick(needed) { socketOf[$0] == socket }
            if needed > 0 { needed -= scan.pick(needed) { socketOf[$0] == nil } }
            return needed == 0 ? scan.selected : nil
        }
        var selected = GPUSet()
        for gpu in topology.gpus where gpu.socket == socket && free.contains(gpu.index) && selected.count < count {
            selected.insert(gpu.index)
        }
        for gpu in topology.gpus where gpu.socket == nil && free.contains(gpu.index) && selected.count < count {
            selected.insert(gpu.index)
        }
        return selected.count >= count ? selected : nil
    }

    /// The sockets of the node's GPUs (those with `Cores=`).
    public static func sockets(_ topology: NodeTopology) -> [Int] {
        Array(Set(topology.gpus.compactMap(\.socket))).sorted()
    }

    /// Socket sets the job's cores could use: each socket alone, and, for a job with more than
    /// one CPU on the node, all sockets together (more than 8 sockets count as one scenario).
    public static func coreScenarios(_ topology: NodeTopology, cpus: Int = 1) -> [Set<Int>] {
        let sockets = sockets(topology)
        if sockets.isEmpty { return [[]] }
        if sockets.count == 1 || sockets.count > 8 { return [Set(sockets)] }
        return sockets.map { [$0] } + (cpus > 1 ? [Set(sockets)] : [])
    }

    /// The worst alignment over every pick Slurm could make for the job on this node; nil when
    /// some scenario would not fit at all.
    public static func worstAlignment(_ topology: NodeTopology, model: GPUPickModel, free: GPUSet, count: Int,
                                      shape: RequestShape, cpus: Int = 1) -> (level: AffinityLevel, picks: [GPUSet])? {
        worstAlignment(Context(topology, model: model), free: free, count: count, shape: shape, cpus: cpus)
    }

    static func worstAlignment(_ context: Context, free: GPUSet, count: Int,
                               shape: RequestShape, cpus: Int = 1) -> (level: AffinityLevel, picks: [GPUSet])? {
        let topology = context.topology
        var worst = AffinityLevel.nvlink
        var picks: [GPUSet] = []
        switch shape {
        case .perNode:
            for scenario in coreScenarios(topology, cpus: cpus) {
                guard let pick = pickPerNode(context, free: free, count: count, usedSockets: scenario) else { return nil }
                picks.append(pick)
                worst = max(worst, topology.alignment(of: pick))
            }
        case .perSocket:
            // The cores land on a socket that has the GPUs (Slurm drops sockets lacking them).
            for socket in sockets(topology) {
                if let pick = pickPerSocket(context, free: free, count: count, socket: socket) {
                    picks.append(pick)
                    worst = max(worst, topology.alignment(of: pick))
                }
            }
            if picks.isEmpty { return nil }
        }
        return (worst, picks)
    }
}

/// How the preemptor asks for GPUs: `--gres=gpu:N` or `--gpus-per-socket=N --sockets-per-node=1`.
public enum RequestShape: String, Sendable, Codable, CaseIterable {
    case perNode = "per-node"
    case perSocket = "per-socket"
}
