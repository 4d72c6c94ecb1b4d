import ArgumentParser
import Foundation
import SlurmClient
import TopoEngine

extension AffinityLevel: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}

extension PlacementMode: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.name) }
}

extension RequestShape: ExpressibleByArgument {}
extension StockSettings.Order: ExpressibleByArgument {}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan a topology-aware preemption for a GPU request and explain it.",
        discussion: """
            Reads a cluster snapshot (JSON, see docs/reference.md; --example-snapshot prints one) and prints \
            which jobs would be requeued, the GPUs they free, what Slurm's GPU pick then gives the \
            job, the level reached and why, for the Slurm release the snapshot names ("slurm", \
            default 22.05.8) or --slurm-release gives: stock Slurm's GPU pick changed in 24.05. \
            --compare-stock adds what stock Slurm of that release does for the same request \
            (modelled; victims oldest first by default, --stock-order youngest-first as with \
            PreemptParameters=youngest_first; with --job the cluster's slurm.conf decides). With --job, decides for a pending job of the live cluster \
            through preempt/topo_aware's own decision code, from the snapshot the plugin would take \
            inside slurmctld (base policy, class, level and mode as topo_aware.conf and the job's \
            AdminComment say). Exit status 1 when there is no plan.
            """)

    @Option(help: "Cluster snapshot JSON file (- for stdin).")
    var snapshot: String?

    @Option(help: "A pending job of the live cluster (libslurm, $SLURM_CONF): plan for its request.")
    var job: UInt32?

    @OptionGroup var config: ConfigPathOption

    @Flag(name: .customLong("example-snapshot"), help: "Print an example snapshot (the lab's full node) and exit.")
    var exampleSnapshot = false

    @Option(help: "GPUs per node the job needs.")
    var gpus: Int?

    @Option(help: "Nodes the job needs.")
    var nodes: Int = 1

    @Option(help: ArgumentHelp("Required affinity level.", discussion: "Default: nvlink."))
    var level: AffinityLevel?

    @Option(help: ArgumentHelp("guaranteed or best-effort.", discussion: "Default: guaranteed."))
    var mode: PlacementMode?

    @Option(help: ArgumentHelp("The job's preemption priority (partition PriorityTier or QOS priority).",
                               discussion: "Default: 10."))
    var priority: Int?

    @Option(help: "per-node (--gres=gpu:N) or per-socket (--gpus-per-socket=N --sockets-per-node=1).")
    var shape: RequestShape = .perNode

    @Option(help: "CPUs per node (more than 1 may put cores on several sockets; on nodes whose CPUs the snapshot gives, the victims must leave this many free).")
    var cpus: Int = 1

    @Option(help: "Memory per node, MB (checked on nodes whose memory the snapshot gives).")
    var memory: Int64 = 0

    @Option(help: "Nodes the job may use, comma-separated (default: all).")
    var candidates: String?

    @Option(help: ArgumentHelp("Nodes the job must use (-w), comma-separated: fewer than --nodes, the rest are chosen.",
                               valueName: "nodes"))
    var required: String?

    @Option(help: ArgumentHelp("--segment of topology/block: the nodes come in segments of this many, each inside one block.",
                               valueName: "nodes"))
    var segment: Int = 0

    @Flag(name: .customLong("consolidate-segments"), help: "With --segment: every segment inside one aggregated block (Slurm 25.11+).")
    var consolidateSegments = false

    @Flag(name: .customLong("spread-segments"), help: "With --segment: no two segments in one base block (Slurm 25.11+).")
    var spreadSegments = false

    @Option(name: .customLong("exempt-time"), help: ArgumentHelp(
        "PreemptExemptTime in seconds.", discussion: "Default: 0; with --job, the controller's PreemptExemptTime."))
    var exemptTime: Int64?

    @Option(name: .customLong("cost-order"), help: ArgumentHelp(
        "Cost criteria, most important first, from priority, victims, work, rough-work (work, plans within --rough-work-tolerance of the least tie), collateral; those left out follow in the order \(CostCriterion.text(CostCriterion.defaultOrder)).",
        discussion: "Default: with --job, the CostOrder= of the job's class in topo_aware.conf, else the file's; with --snapshot, the file's CostOrder= when --config is given, else \(CostCriterion.text(CostCriterion.defaultOrder))."))
    var costOrder: String?

    @Option(name: .customLong("rough-work-tolerance"), help: ArgumentHelp(
        "How much more work than the least a plan may lose and still tie under rough-work: a percentage, 0-100, at most one decimal (2, 2.5%).",
        discussion: "Default: as --cost-order, from RoughWorkTolerance= of topo_aware.conf, else \(RoughWorkTolerance.default)."))
    var roughWorkTolerance: String?

    @OptionGroup var slurmRelease: SlurmReleaseOption

    @Flag(name: .customLong("compare-stock"), help: "Also show what stock Slurm does (modelled).")
    var compareStock = false

    @Option(name: .customLong("stock-order"), help: ArgumentHelp(
        "Stock Slurm's victim order for --compare-stock: oldest-first (Slurm's default: by priority, then oldest) or youngest-first.",
        discussion: "With --job: read from the cluster (PreemptParameters=youngest_first, or SchedulerParameters=preempt_youngest_first on 22.05) unless given."))
    var stockOrder: StockSettings.Order?

    @Flag(help: ArgumentHelp("With --job: requeue the planned victims now (as `scontrol requeue`).",
                             discussion: "Needs the rights Slurm requires to requeue every victim: root, SlurmUser, or owning them all. Checked before anything is changed; nothing is requeued when any victim is not yours."))
    var apply = false

    @OptionGroup var output: FormatOption

    func validate() throws {
        if exampleSnapshot { return }
        guard (snapshot != nil) != (job != nil) else {
            throw ValidationError("give --snapshot FILE or --job ID (or --example-snapshot)")
        }
        if apply && job == nil { throw ValidationError("--apply needs --job ID") }
        if job != nil {
            for (given, name) in [(gpus != nil, "--gpus"), (level != nil, "--level"), (mode != nil, "--mode"),
                                  (priority != nil, "--priority"), (shape != .perNode, "--shape"), (cpus != 1, "--cpus"),
                                  (nodes != 1, "--nodes"), (candidates != nil, "--candidates"),
                                  (required != nil, "--required"), (segment != 0, "--segment"),
                                  (consolidateSegments, "--consolidate-segments"), (spreadSegments, "--spread-segments"),
                                  (slurmRelease.text != nil, "--slurm-release")] where given {
                throw ValidationError("\(name) comes from the job and the cluster with --job")
            }
        } else {
            guard let gpus, gpus >= 1, gpus <= GPUSet.capacity else { throw ValidationError("--gpus must be 1...\(GPUSet.capacity)") }
        }
        if nodes < 1 { throw ValidationError("--nodes must be at least 1") }
        if segment < 0 || segment > Int(UInt16.max) { throw ValidationError("--segment must be 0...\(UInt16.max) nodes") }
        if (consolidateSegments || spreadSegments) && segment == 0 && job == nil {
            throw ValidationError("--consolidate-segments and --spread-segments need --segment")
        }
        if let required {
            let names = required.split(separator: ",", omittingEmptySubsequences: false)
            if names.contains(where: \.isEmpty) { throw ValidationError("--required: an empty node name in '\(required)'") }
            if names.count > nodes { throw ValidationError("--required names \(names.count) nodes, more than --nodes \(nodes)") }
        }
        if cpus < 1 { throw ValidationError("--cpus must be at least 1") }
        if memory < 0 { throw ValidationError("--memory must be 0 or more MB") }
        if let exemptTime, exemptTime < 0 { throw ValidationError("--exempt-time must not be negative") }
        _ = try order()
        _ = try tolerance()
    }

    /// The tolerance given with --rough-work-tolerance; nil when none is.
    func tolerance() throws -> RoughWorkTolerance? {
        guard let roughWorkTolerance else { return nil }
        guard let tolerance = RoughWorkTolerance(roughWorkTolerance) else {
            throw ValidationError("--rough-work-tolerance: '\(roughWorkTolerance)' is not \(RoughWorkTolerance.expected)")
        }
        return tolerance
    }

    /// With --snapshot: --rough-work-tolerance, else RoughWorkTolerance= of the file --config
    /// names, else the default.
    func snapshotTolerance() throws -> RoughWorkTolerance {
        if let given = try tolerance() { return given }
        guard config.path != nil else { return .default }
        do { return try config.load().config.roughWorkTolerance } catch let error as CLIError { throw error.exit() }
    }

    /// The order given with --cost-order; nil when none is.
    func order() throws -> [CostCriterion]? {
        guard let costOrder else { return nil }
        switch CostCriterion.parseOrder(costOrder) {
        case let .success(order): return order
        case let .failure(error): throw ValidationError("--cost-order: \(error.message)")
        }
    }

    /// With --snapshot: --cost-order, else CostOrder= of the file --config names, else the default.
    func snapshotOrder() throws -> [CostCriterion] {
        if let given = try order() { return given }
        guard config.path != nil else { return CostCriterion.defaultOrder }
        do { return try config.load().config.costOrder } catch let error as CLIError { throw error.exit() }
    }

    func run() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if exampleSnapshot {
            print(String(decoding: try encoder.encode(Self.example), as: UTF8.self))
            return
        }
        if let job {
            try planLive(job)
            return
        }
        let index: PlanningIndex
        do {
            let data = Data(try readInput(snapshot ?? "-").utf8)
            var decoded: ClusterSnapshot
            do { decoded = try JSONDecoder().decode(ClusterSnapshot.self, from: data) } catch {
                throw CLIError.input("\(snapshot ?? "-"): not a snapshot: \(Self.describe(error))")
            }
            decoded.slurm = try slurmRelease.release(or: decoded.slurm)
            do { index = try PlanningIndex(decoded) } catch { throw CLIError.input("\(snapshot ?? "-"): \(error)") }
        } catch let error as CLIError {
            throw error.exit()
        }
        var request = PreemptorRequest(
            gpusPerNode: gpus ?? 1, nodeCount: nodes, level: level ?? .nvlink, mode: mode ?? .guaranteed,
            priority: priority ?? 10, shape: shape, cpusPerNode: cpus, memoryPerNode: memory,
            candidateNodes: candidates.map { Set($0.split(separator: ",").map(String.init)) },
            requiredNodes: Set((required ?? "").split(separator: ",").map(String.init)), segmentSize: segment)
        request.segmentPlacement = SegmentPlacement(rawValue: (consolidateSegments ? 1 : 0) | (spreadSegments ? 2 : 0))
        let order = try snapshotOrder()
        let policy = PlannerPolicy(order: order, exemptSeconds: exemptTime ?? 0, roughWorkTolerance: try snapshotTolerance())
        let outcome = Planner.plan(request, in: index, policy: policy)
        let settings = StockSettings(order: stockOrder ?? .oldestFirst)
        let stock = compareStock ? StockPreemption.simulateAny(request, in: index, policy: policy, settings: settings) : nil
        var report = PlanReport(outcome, stock: stock, comparedStock: compareStock, stockSettings: settings,
                                stockByCoreSocket: stock.map { StockPreemption.gpusByCoreSocket($0, request: request, in: index) },
                                slurm: index.snapshot.slurm)
        if case .plan = outcome { report.setCost(order, policy.roughWorkTolerance) }
        switch output.format {
        case .json: try printJSON(report)
        case .text: print(report.text(), terminator: "")
        }
        if case .noPlan = outcome { throw ExitCode(1) }
    }

    /// Decides for a pending job of the live cluster as preempt/topo_aware would inside
    /// slurmctld: the same snapshot type, the same `PreemptController`, the same settings.
    func planLive(_ id: UInt32) throws {
        let live: LiveCluster
        do { live = try LiveCluster.load(config: config) } catch let error as CLIError { throw error.exit() }
        var snapshot: ControllerSnapshot
        do {
            snapshot = try ControllerSnapshot(live: live.state, preemptor: id, basePolicy: live.config?.basePolicy ?? .partitionPriority)
        } catch {
            throw CLIError.input("\(error)").exit()
        }
        if let exemptTime { snapshot.exemptSeconds = exemptTime }
        var controller = PreemptController()
        let settings = PreemptSettings(planTimeoutSeconds: Int64(live.config?.planTimeoutSeconds ?? 300),
                                       planBudgetMicroseconds: UInt64(live.config?.planTimeBudgetMilliseconds ?? 200) * 1000,
                                       costOrder: try order(), roughWorkTolerance: try tolerance())
        var topology = ControllerTopology(live.topology)
        topology.setBlocks(live.blocks)
        topology.leafSwitchOfNode = live.switches?.leafOf ?? [:]
        let decision = controller.decide(snapshot, config: live.config, topology: topology,
                                         settings: settings, clock: { DispatchTime.now().uptimeNanoseconds })
        var report: PlanReport
        var stock: StockPreemption.Outcome?
        var byCoreSocket: [Int: GPUSet]?
        var stockSettings = live.state.stock
        if let stockOrder { stockSettings.order = stockOrder }
        if let planning = decision.planning {
            if compareStock, let index = try? PlanningIndex(planning.snapshot) {
                stock = StockPreemption.simulateAny(planning.request, in: index, policy: PlannerPolicy(order: try order() ?? CostCriterion.defaultOrder,
                                                 exemptSeconds: snapshot.exemptSeconds, requireEveryVictim: true,
                                                 roughWorkTolerance: try tolerance() ?? .default),
                                                 settings: stockSettings)
                byCoreSocket = stock.map { StockPreemption.gpusByCoreSocket($0, request: planning.request, in: index) }
            }
            report = PlanReport(planning.outcome, stock: stock, comparedStock: compareStock, stockSettings: stockSettings,
                                stockByCoreSocket: byCoreSocket,
                                slurm: planning.snapshot.slurm)
            let request = planning.request
            var asked = "\(request.gpusPerNode) GPU(s) x \(request.nodeCount) node(s), \(request.level.name), \(request.mode.name), \(request.shape.rawValue)"
            if request.segmentSize > 0 { asked += ", segments of \(request.segmentSize)" }
            if request.segmentPlacement.contains(.consolidate) { asked += ", consolidated" }
            if request.segmentPlacement.contains(.spread) { asked += ", spread" }
            if !request.requiredNodes.isEmpty { asked += ", on \(request.requiredNodes.sorted().joined(separator: ","))" }
            report.request = asked
            if case .plan = planning.outcome {
                report.setCost(try order() ?? PreemptController.costOrder(snapshot.preemptor, config: live.config),
                               try tolerance() ?? PreemptController.roughWorkTolerance(snapshot.preemptor, config: live.config))
            }
        } else {
            // The controller did not plan: not a preemptor class, no GPUs it can read, no topology.
            let why = decision.log.last?.text
                ?? "job \(id) is in no preemptor class (its AdminComment tag, or the class lines of topo_aware.conf); preempt/topo_aware leaves it to the base policy"
            report = PlanReport(.noPlan(code: .invalidRequest, reason: why), stock: nil, comparedStock: false,
                                stockSettings: stockSettings, slurm: snapshot.slurm)
            report.outcome = "base-policy"
            report.code = "not-planned"
        }
        report.job = id
        report.action = decision.action.name
        report.controllerVictims = decision.action.victims
        report.log = decision.log.filter { $0.level != .debug }.map(\.text)
        let pending = live.state.jobs.first { $0.id == id }
        switch output.format {
        case .json: try printJSON(report)
        case .text:
            if let pending, pending.state != .pending { print("note: job \(id) is not pending; planning as if it were") }
            print("job \(id): \(report.request ?? "not planned by preempt/topo_aware")")
            print("preempt/topo_aware: \(decision.action.sentence)")
            print(report.text(), terminator: "")
        }
        for warning in live.warnings { printError("warning: \(warning)") }
        guard case .plan? = decision.planning?.outcome else { throw ExitCode(1) }
        if apply { try applyPlan(decision.action.victims, for: id, live: live) }
    }

    /// Requeues the plan's victims, after checking the caller may requeue every one of them as
    /// Slurm would (root, SlurmUser, or the job's owner): all or nothing. Operators by
    /// AdminLevel run it as SlurmUser or root (their level lives in slurmdbd, not checked here).
    func applyPlan(_ victims: [UInt32], for id: UInt32, live: LiveCluster) throws {
        let caller = getuid()
        let slurmUser = live.slurmUserID
        let owners = Dictionary(live.state.jobs.compactMap { job in job.userID.map { (job.id, $0) } }, uniquingKeysWith: { a, _ in a })
        if caller != 0 && caller != slurmUser {
            let foreign = victims.filter { owners[$0] != caller }
            if !foreign.isEmpty {
                let list = foreign.map { "\($0) (uid \(owners[$0].map(String.init) ?? "?"))" }.joined(separator: ", ")
                printError("topo-preempt: plan --apply: requeueing job(s) \(list) needs Slurm operator rights (root or SlurmUser) or owning them; you are uid \(caller). Nothing was requeued.")
                throw ExitCode(4)
            }
        }
        for victim in victims {
            do { try SlurmClient.requeue(victim) } catch {
                printError("topo-preempt: plan --apply: \(error)")
                throw ExitCode(4)
            }
            print("requeued job \(victim) for job \(id)")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, context):
            "missing '\(key.stringValue)' at \(path(context.codingPath))"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
             let DecodingError.dataCorrupted(context):
            "\(context.debugDescription) at \(path(context.codingPath))"
        default: "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }

    /// The lab's full node: NVLink islands 0-3 and 4-7, batch jobs of 2 2 2 1 1 GPUs.
    static let example: ClusterSnapshot = {
        let paths = (0..<8).map { i in (0..<8).map { j in i == j ? "X" : (i / 4 == j / 4 ? "NV4" : "SYS") } }
        let jobs = [[0, 1], [4, 5], [2, 3], [6], [7]].enumerated().map { i, gpus in
            ClusterSnapshot.RunningJob(id: UInt32(i + 1), name: "batch-g\(gpus.count)", partition: "batch", priority: 1,
                                       startTime: 1_764_000_000 + Int64(i * 60),
                                       allocations: [.init(node: 0, gpus: GPUSet(gpus))])
        }
        return ClusterSnapshot(layouts: [.init(paths: paths, sockets: (0..<8).map { $0 / 4 })],
                               nodes: [.init(name: "node1", layout: 0), .init(name: "node2", layout: 0, otherAllocated: GPUSet(0...7))],
                               jobs: jobs, time: 1_764_003_600)
    }()
}

/// JSON shape of `plan` (documented in docs/reference.md).
struct PlanReport: Encodable {
    struct Cost: Encodable {
        var maxPriority: Int?
        var victims: Int
        var gpuSeconds: Int64
        var collateral: Int
    }

    struct Node: Encodable {
        var node: String
        var victims: [UInt32]
        var freedGPUs: String
        var freeAfter: String
        var expectedGPUs: [String]
        var level: String
    }

    struct Stock: Encodable {
        var node: String
        var victims: [UInt32]
        /// The GPUs with the job's core on the node's first socket, and (plain requests) by the
        /// socket Slurm may put the core on: `{"0": "3-6", "1": "4-7"}`.
        var gpus: String
        var level: String
        var gpusByCoreSocket: [String: String]?
    }
    /// Stock Slurm's settings modelled (`oldest-first`, `youngest-first`, reorder settings).
    var stockOrder: String?

    var outcome: String
    var code: String
    var reason: String?
    var victims: [UInt32]?
    var level: String?
    var degraded: Bool?
    /// Multi-node plans with blocks or switches: `block b1`, `leaf switch s1`, `across leaf switches`.
    var domain: String?
    var cost: Cost?
    /// The cost order plans were compared by (`work,priority,victims,collateral`).
    var costOrder: String?
    /// With `rough-work` in the order: how near the least work plans tied (`2%`).
    var roughWorkTolerance: String?
    var graceSeconds: Int?
    var nodes: [Node]?
    var reasons: [String]?
    var stock: Stock?
    var stockFits: Bool?
    /// The Slurm release whose GPU pick (and stock behaviour) was modelled.
    var slurm: String
    var job: UInt32?
    var request: String?
    /// With --job: what preempt/topo_aware answers Slurm (`only-victims`, `victims-first`,
    /// `no-victims`, `base-policy`), the jobs it lets Slurm preempt, and its log lines.
    var action: String?
    var controllerVictims: [UInt32]?
    var log: [String]?

    init(_ outcome: PlanOutcome, stock: StockPreemption.Outcome?, comparedStock: Bool, stockSettings: StockSettings,
         stockByCoreSocket: [Int: GPUSet]? = nil, slurm: SlurmRelease) {
        self.slurm = slurm.description
        switch outcome {
        case let .plan(plan):
            self.outcome = "plan"
            code = plan.code.rawValue
            victims = plan.victims
            level = plan.level.name
            degraded = plan.degraded
            domain = plan.domain?.description
            cost = Cost(maxPriority: plan.cost.maxPriority, victims: plan.cost.victims, gpuSeconds: plan.cost.gpuSeconds,
                        collateral: plan.cost.collateral)
            graceSeconds = plan.graceSeconds
            nodes = plan.nodes.map {
                Node(node: $0.node, victims: $0.victims, freedGPUs: $0.freedGPUs.description, freeAfter: $0.freeAfter.description,
                     expectedGPUs: $0.expectedGPUs.map(\.description), level: $0.level.name)
            }
            reasons = plan.reasons
        case let .noPlan(code, reason):
            self.outcome = "no-plan"
            self.code = code.rawValue
            self.reason = reason
        }
        if comparedStock {
            stockOrder = stockSettings.name
            stockFits = stock != nil
            self.stock = stock.map { Stock(node: $0.node, victims: $0.victims, gpus: $0.gpus.description, level: $0.level.name) }
            if let byCore = stockByCoreSocket, !byCore.isEmpty {
                self.stock?.gpusByCoreSocket = Dictionary(uniqueKeysWithValues: byCore.map { ("\($0.key)", $0.value.description) })
            }
        }
    }

    /// The order the plan was chosen by, with the tolerance where `rough-work` is in it.
    mutating func setCost(_ order: [CostCriterion], _ tolerance: RoughWorkTolerance) {
        costOrder = CostCriterion.text(order)
        roughWorkTolerance = order.contains(.roughWork) ? tolerance.description : nil
    }

    func text() -> String {
        var out = ""
        if outcome == "plan" {
            let list = (victims ?? []).map(String.init).joined(separator: ", ")
            out += (victims ?? []).isEmpty ? "plan: no preemption needed (\(level ?? "-"))\n"
                : "plan: requeue \(victims?.count ?? 0) job(s): \(list) -> \(degraded == true ? "DEGRADED to" : "aligned at") \(level ?? "-")\n"
            for reason in reasons ?? [] { out += "  \(reason)\n" }
            if let costOrder {
                let named = costOrder.split(separator: ",").map { $0 == "rough-work" ? "rough-work (within \(roughWorkTolerance ?? "?"))" : String($0) }
                out += "  plans compared by \(named.joined(separator: ", ")), most important first\n"
            }
            if let graceSeconds, graceSeconds > 0 { out += "  victims' GraceTime: GPUs free within \(graceSeconds) s\n" }
        } else {
            out += "no plan (\(code)): \(reason ?? "")\n"
        }
        if let stockFits {
            if let stock {
                let list = stock.victims.isEmpty ? "nothing" : stock.victims.map(String.init).joined(separator: ", ")
                out += "stock Slurm \(slurm) (modelled, \(stockOrder ?? "oldest-first")): requeues \(list) on \(stock.node), job gets GPUs \(stock.gpus) (\(stock.level))\n"
                if let byCore = stock.gpusByCoreSocket, Set(byCore.values).count > 1 {
                    let cases = byCore.sorted { (Int($0.key) ?? 0) < (Int($1.key) ?? 0) }.map { "socket \($0.key): \($0.value)" }
                    out += "  (the GPUs depend on the socket Slurm puts the job's core on, the one with the most free cores: \(cases.joined(separator: ", ")))\n"
                }
            } else if !stockFits {
                out += "stock Slurm \(slurm) (modelled, \(stockOrder ?? "oldest-first")): the job does not fit even after preempting every candidate\n"
            }
        }
        return out
    }
}

/// The live cluster as the CLI sees it: libslurm's state, the topology from slurm.conf and
/// gres.conf (the files slurmctld reads), the blocks of topology.conf with topology/block (as
/// preempt/topo_aware reads them) and topo_aware.conf if present.
struct LiveCluster {
    var state: LiveState
    /// SlurmUser's uid (the controller's configuration, read with the state).
    var slurmUserID: UInt32
    var topology: ClusterTopology
    /// The blocks, with TopologyPlugin=topology/block; the leaf switches, with topology/tree.
    var blocks: BlockTopology?
    var switches: SwitchTopology?
    var config: TopoAwareConfig?
    var warnings: [String]

    static func load(config option: ConfigPathOption) throws -> LiveCluster {
        let paths = option.paths()
        let topology: ClusterTopology
        var blocks: BlockTopology?
        var switches: SwitchTopology?
        do {
            let slurmText = try readInput(paths.slurmConf)
            let nodes = try SlurmConfNodes.parse(slurmText, file: paths.slurmConf)
            let gres = try GresConf.parse(try readInput(paths.gresConf), file: paths.gresConf)
            topology = TopologySummary.build(slurmNodes: nodes, gresConf: gres).cluster
            if BlockTopology.isSelected(bySlurmConf: slurmText) {
                let file = BlockTopology.path(besideSlurmConf: paths.slurmConf)
                blocks = try BlockTopology.parse(try readInput(file), file: file)
            } else if SwitchTopology.isSelected(bySlurmConf: slurmText) {
                let file = BlockTopology.path(besideSlurmConf: paths.slurmConf)
                switches = try SwitchTopology.parse(try readInput(file), file: file)
            }
        } catch let error as TextDiagnostic {
            throw CLIError.input(error.description)
        }
        var config: TopoAwareConfig?
        if FileManager.default.fileExists(atPath: paths.topoAwareConf) { config = try option.load().config }
        let reading: SlurmClient.Reading
        do { reading = try SlurmClient.load(qos: config?.basePolicy == .qos) } catch {
            throw CLIError.input("cannot read the cluster: \(error)")
        }
        return LiveCluster(state: reading.state, slurmUserID: reading.slurmUserID, topology: topology, blocks: blocks, switches: switches,
                           config: config, warnings: topology.warnings.map(\.description) + reading.warnings)
    }
}

extension PreemptAction {
    var name: String {
        switch self {
        case .basePolicy: "base-policy"
        case .onlyVictims: "only-victims"
        case .victimsFirst: "victims-first"
        case .noVictims: "no-victims"
        }
    }

    var victims: [UInt32] {
        switch self {
        case let .onlyVictims(list), let .victimsFirst(list): list
        case .basePolicy, .noVictims: []
        }
    }

    /// What Slurm is told, in a sentence.
    var sentence: String {
        let list = victims.map(String.init).joined(separator: ", ")
        return switch self {
        case .basePolicy: "answers with the base policy (stock candidates and order)"
        case .onlyVictims: victims.isEmpty ? "preempts nothing new; the job waits for GPUs being freed" : "lets Slurm preempt only \(list)"
        case .victimsFirst: "lets Slurm preempt \(list) first, then the base policy's candidates"
        case .noVictims: "preempts nothing; the job waits"
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List running preemptors and their alignment, or (--since) report a period's decisions.",
        discussion: """
            Without --since: reads the live cluster through libslurm ($SLURM_CONF) and lists running \
            preemptor jobs and how aligned their GPUs are. With --since: reads the decision log \
            (DecisionLog= of topo_aware.conf and its rotated files, or --records) and reports the \
            period: preemptions, the affinity hit rate of planned ones, victims and GPU-hours lost per \
            preemption, guaranteed waits, fallbacks, per --bucket; unless --no-history, the preemptors' \
            waits from slurmdbd (sacct). Times: now, 90m, 24h, 7d (that long ago), or UTC dates \
            (2026-12-01, 2026-12-01T10:00[:00][Z]). Exit status 0 also when jobs are misaligned.
            """)

    @OptionGroup var config: ConfigPathOption
    @OptionGroup var output: FormatOption

    @Option(help: ArgumentHelp("Report the period from this time on (e.g. 24h, 7d, 2026-12-01).", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("The period's end (default: now).", valueName: "time"))
    var until: String?

    @Option(help: ArgumentHelp("The period's buckets: hour, day, or seconds (default: hour up to 3 days, else day).", valueName: "width"))
    var bucket: String?

    @Option(name: .customLong("records"), help: ArgumentHelp("The decision log to read (default: DecisionLog= of topo_aware.conf).", valueName: "file"))
    var records: String?

    @Option(help: ArgumentHelp("Also write the period's plot (SVG) to this file.", valueName: "file"))
    var svg: String?

    @Flag(name: .customLong("no-history"), help: "Do not ask slurmdbd (sacct) for the preemptors' waits.")
    var noHistory = false

    @Flag(help: ArgumentHelp("Also replay the period's jobs (sacct) through the simulator under stock Slurm and preempt/topo_aware.",
                             discussion: "Modelled: see docs/reference.md, \"audit --since\". Its time grows with the period's jobs and the cluster's nodes."))
    var replay = false

    func validate() throws {
        if since == nil, until != nil || bucket != nil || records != nil || svg != nil || noHistory || replay {
            throw ValidationError("--until, --bucket, --records, --svg, --no-history and --replay report a period: give --since")
        }
        if replay && noHistory { throw ValidationError("--replay reads the period's jobs from slurmdbd: it cannot go with --no-history") }
    }

    struct Entry: Encodable {
        var job: UInt32
        var name: String?
        var className: String
        var required: String
        var mode: String
        var gpus: [String: String]
        var reached: String
        var aligned: Bool

        enum CodingKeys: String, CodingKey { case job, name, className = "class", required, mode, gpus, reached, aligned }
    }

    func run() throws {
        if let since { return try period(since) }
        let live: LiveCluster
        do { live = try LiveCluster.load(config: config) } catch let error as CLIError { throw error.exit() }
        let entries = Audit.preemptors(live.state, topology: live.topology, config: live.config).map { entry in
            Entry(job: entry.jobID, name: entry.name, className: entry.className, required: entry.required.name,
                  mode: entry.mode.name, gpus: Dictionary(entry.gpus.map { ($0.node, $0.gpus.description) }, uniquingKeysWith: { a, _ in a }),
                  reached: entry.reached.name, aligned: entry.aligned)
        }
        switch output.format {
        case .json: try printJSON(entries)
        case .text:
            print("job      class        required     reached      GPUs")
            for entry in entries {
                let gpus = entry.gpus.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
                print(pad(String(entry.job), 9) + pad(entry.className, 13) + pad(entry.required, 13) + pad(entry.reached, 13)
                      + gpus + (entry.aligned ? "" : "  MISALIGNED"))
            }
            let misaligned = entries.filter { !$0.aligned }.count
            print("\(entries.count) running preemptor(s), \(misaligned) misaligned")
        }
        for warning in live.warnings { printError("warning: \(warning)") }
    }

    /// `audit --since`: the period's report.
    func period(_ since: String) throws {
        let now = Int64(Date().timeIntervalSince1970)
        guard let from = PeriodAudit.parseTime(since, now: now) else {
            throw ValidationError("--since: '\(since)' is not a time (now, 90m, 24h, 7d, 2026-12-01, 2026-12-01T10:00:00Z)")
        }
        let to = try until.map { (text: String) throws -> Int64 in
            guard let t = PeriodAudit.parseTime(text, now: now) else {
                throw ValidationError("--until: '\(text)' is not a time (now, 90m, 24h, 7d, 2026-12-01, 2026-12-01T10:00:00Z)")
            }
            return t
        } ?? now
        guard to > from else { throw ValidationError("--until (\(utcTimestamp(to))) is not after --since (\(utcTimestamp(from)))") }
        let width: Int64
        switch bucket {
        case nil: width = to - from <= 3 * 86_400 ? 3600 : 86_400
        case "hour"?: width = 3600
        case "day"?: width = 86_400
        case let text?:
            guard let seconds = Int64(text), seconds >= 1, seconds <= 366 * 86_400 else {
                throw ValidationError("--bucket: '\(text)' is not hour, day or a number of seconds (1 to 31622400)")
            }
            width = seconds
        }
        let path: String
        // topo_aware.conf: DecisionLog= (unless --records) and the classes (preemptors in sacct).
        var site: TopoAwareConfig?
        if FileManager.default.fileExists(atPath: config.resolved()) || records == nil {
            do { site = try config.load().config } catch let error as CLIError { throw error.exit() }
        }
        if let records {
            path = records
        } else {
            guard let log = site?.decisionLog else {
                throw CLIError.input("\(config.resolved()): no DecisionLog= is set, so no decision is recorded; set it (see topo_aware.conf(5)) or give --records FILE").exit()
            }
            path = log
        }
        var audit = PeriodAudit(from: from, to: to, bucketSeconds: width)
        var warnings = DecisionLogReader.forEach(path) { audit.add($0) }
        audit.finish()
        var waits: AuditPeriodReport.PreemptorWaits?
        var replayed: AuditPeriodReport.Replay?
        if !noHistory {
            switch SacctPeriod.read(from: from, to: to, config: site) {
            case let .success(jobs):
                waits = SacctPeriod.waits(jobs, from: from, to: to)
                if replay { replayed = try self.replay(jobs, from: from, to: to, config: site) }
            case let .failure(problem):
                warnings.append("preemptor waits left out: \(problem)")
                if replay { throw CLIError.input("--replay: cannot read the period's jobs: \(problem)").exit() }
            }
        }
        let report = AuditPeriodReport(audit, records: path, waits: waits, replay: replayed, warnings: warnings)
        if let svg {
            do { try report.svg().write(toFile: svg, atomically: true, encoding: .utf8) } catch {
                throw CLIError.input("\(svg): cannot write: \(error.localizedDescription)").exit()
            }
        }
        switch output.format {
        case .json: try printJSON(report)
        case .text:
            print(report.text(), terminator: "")
            if let svg { print("plot: \(svg)") }
            for warning in warnings { printError("warning: \(warning)") }
        }
    }

    /// The period's jobs through the simulator on the cluster's own layouts (slurm.conf and
    /// gres.conf, as `plan --job` reads them): the stock variants and the site's topo_aware mode.
    func replay(_ jobs: [PeriodReplay.Job], from: Int64, to: Int64, config site: TopoAwareConfig?) throws -> AuditPeriodReport.Replay {
        let paths = config.paths()
        let topology: ClusterTopology
        do {
            let nodes = try SlurmConfNodes.parse(try readInput(paths.slurmConf), file: paths.slurmConf)
            let gres = try GresConf.parse(try readInput(paths.gresConf), file: paths.gresConf)
            topology = ClusterTopology(slurmNodes: nodes, gresConf: gres)
        } catch let error as TextDiagnostic {
            throw CLIError.input("--replay: \(error.description)").exit()
        } catch let error as CLIError {
            throw error.exit()
        }
        let types = PeriodReplay.nodeTypes(topology)
        guard !types.isEmpty else { throw CLIError.input("--replay: no GPU node with a topology in \(paths.gresConf)").exit() }
        let maxGPUs = topology.nodes.map { $0.table.topology.gpuCount }.max() ?? 0
        let (simJobs, leftOut) = PeriodReplay.simJobs(jobs, from: from, to: to, maxGPUsPerNode: maxGPUs)
        var level = site?.defaultLevel ?? .nvlink
        var mode = site?.defaultMode ?? .guaranteed
        let first = site?.classes.first(where: { if case .preemptor = $0.kind { true } else { false } })
        if case let .preemptor(classLevel, classMode)? = first?.kind {
            (level, mode) = (classLevel, classMode)
        }
        var setup = SimulationSetup(nodeTypes: types, level: level, slurm: SlurmClient.built, drain: .lab)
        // The plans compared as the plugin compares them for that class.
        setup.costOrder = site?.costOrder(of: first) ?? CostCriterion.defaultOrder
        setup.roughWorkTolerance = site?.roughWorkTolerance(of: first) ?? .default
        var rows: [AuditPeriodReport.Replay.Row] = []
        for policy in [SimPolicy.stock, .stockShaped, .stockYoungest, .stockShapedYoungest, mode == .guaranteed ? .topoGuaranteed : .topoBestEffort] {
            let result: SimResult
            do { result = try Simulator.run(setup: setup, policy: policy, jobs: simJobs, until: to - from) } catch {
                throw CLIError.input("--replay: \(error)").exit()
            }
            let m = result.metrics
            rows.append(.init(policy: policy.rawValue, preemptions: m.preemptions,
                              hitRate: m.preemptions == 0 ? nil : Double(m.alignedPreemptions) / Double(m.preemptions),
                              victims: m.victims, lostGPUHours: Double(m.gpuSecondsLost) / 3600, inferenceStarted: m.inferenceStarted,
                              inferenceAligned: m.inferenceAligned, inferenceWaitP50Seconds: m.inferenceWaitP50,
                              inferenceWaitP99Seconds: m.inferenceWaitP99))
        }
        let withoutGPUs = jobs.filter { $0.gpus == 0 && $0.submit >= from && $0.submit < to }.count
        return .init(jobs: simJobs.count, leftOut: leftOut, withoutGPUs: withoutGPUs, level: level.name,
                     costOrder: CostCriterion.text(setup.costOrder),
                     roughWorkTolerance: setup.costOrder.contains(.roughWork) ? setup.roughWorkTolerance.description : nil, rows: rows)
    }
}
