import ArgumentParser
import Foundation
import SlurmClient
import TopoEngine

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Replay co-located inference and batch work under stock Slurm and TopoPreempt.",
        discussion: """
            A discrete-event simulation over the same planner the plugin runs in slurmctld and the \
            stock Slurm model of the release --slurm-release names (victim order with the reorder \
            passes, the GPU pick following the cores' socket and Links=, which changed in 24.05). Every policy replays the same trace: a seeded synthetic \
            one (diurnal inference, heavy-tailed batch) or --trace FILE.csv (columns \
            submit,gpus,duration,class[,priority]; seconds; class inference or batch). Prints the \
            comparison table and writes a plot of the metrics over simulated time (SVG).
            """)

    @Option(help: "Node types and counts: islands, pairs, pcie, nvswitch, gb200 (4 GPUs), or an nvidia-smi topo -m file (NAME:COUNT, comma-separated).")
    var nodes: String = "islands:500,pairs:500"

    @Option(help: "Simulated days.")
    var days: Double = 7

    @Option(help: "Seed of the synthetic trace.")
    var seed: UInt64 = 1

    @Option(help: "A trace to replay instead of the synthetic one (CSV, see above).")
    var trace: String?

    @Option(name: .customLong("inference-per-day"), help: "Inference instances per day and 1,000 GPUs (average of the daily curve).")
    var inferencePerDay: Double = 90

    @Option(name: .customLong("inference-gpus"), help: "GPUs per inference instance, drawn uniformly (comma-separated).")
    var inferenceGPUs: String = "2,4"

    @Option(name: .customLong("inference-nodes"), help: "Nodes per inference instance, drawn uniformly (comma-separated; several: multi-node inference, e.g. in NVLink domains with --blocks).")
    var inferenceNodes: String = "1"

    @Option(help: "topology/block: consecutive nodes in blocks of this many (NVLink domains such as NVL72 racks of 18 gb200 nodes); 0: none.")
    var blocks: Int = 0

    @Option(name: .customLong("batch-gpus"), help: "GPUs per batch job with weights, GPUS:WEIGHT comma-separated (the multi-node batch jobs of --multi-node are of the largest size).")
    var batchGPUs: String = "1:45,2:25,4:20,8:10"

    @Option(name: .customLong("batch-load"), help: "Batch load offered, as a multiple of the cluster's GPUs.")
    var batchLoad: Double = 1.3

    @Option(help: "Affinity level inference needs: nvlink, pcie-switch, host-bridge, numa, socket, node.")
    var level: String = "nvlink"

    @Option(help: "Policies to compare (comma-separated): stock, stock-shaped, stock-youngest, stock-shaped-youngest, topo-guaranteed, topo-best-effort, oracle (exhaustive, at most 16 nodes).")
    var policies: String = SimPolicy.standard.map(\.rawValue).joined(separator: ",")

    @Option(help: "Write the plot (SVG) here; '-' for none.")
    var plot: String = "topo-preempt-simulation.svg"

    @Option(help: "Write the timeline (CSV: policy,time,utilisation,hit_rate,pending_inference,running_inference) here.")
    var csv: String?

    @Option(help: ArgumentHelp(
        "Write a reproducible comparison report into this directory: report.md and simulation.svg.",
        discussion: "The report names the command, seed, workload, drain and stock variants, and holds the table, TopoPreempt against the best stock variant per metric, and (with more than one node type) the same trace on each node type alone."))
    var report: String?

    @Option(name: .customLong("grace-time"), help: "GraceTime of the victims' partition (s): SIGTERM, then requeued after it.")
    var graceTime: Int64 = DrainModel.lab.graceTime

    @Option(name: .customLong("kill-wait"), help: "KillWait (s): a victim still running this long after the requeue's SIGTERM is killed.")
    var killWait: Int64 = DrainModel.lab.killWait

    @Option(name: .customLong("victim-exit"), help: "Mean seconds a victim takes to exit after SIGTERM (exponential, capped by GraceTime + KillWait).")
    var victimExit: Double = DrainModel.lab.exitMean

    @Option(help: "Seconds from a victim's exit to its GPUs being free (epilog, completing).")
    var epilog: Int64 = DrainModel.lab.epilog

    @Option(name: .customLong("cores-per-socket"), help: "Cores (CPUs) per socket of every node.")
    var coresPerSocket: Int = 8

    @Option(name: .customLong("memory-per-node"), help: "Memory Slurm allocates per node, GB (memory consumable, as SelectTypeParameters=CR_Core_Memory); none: memory is not a constraint.")
    var memoryPerNode: Int64?

    @Option(name: .customLong("cpus-per-gpu"), help: ArgumentHelp(
        "CPUs per GPU of batch jobs, drawn per job: VALUE or VALUE:WEIGHT, comma-separated (e.g. 4:40,8:35,16:20,32:5).",
        discussion: "Left out: one CPU per job (the model without CPU constraints)."))
    var cpusPerGPU: String?

    @Option(name: .customLong("memory-per-gpu"), help: "Memory per GPU of batch jobs, GB, drawn per job as --cpus-per-gpu (e.g. 32:30,64:30,128:30,256:10).")
    var memoryPerGPU: String?

    @Option(name: .customLong("inference-cpus-per-gpu"), help: "CPUs per GPU of inference jobs, as --cpus-per-gpu.")
    var inferenceCPUsPerGPU: String?

    @Option(name: .customLong("inference-memory-per-gpu"), help: "Memory per GPU of inference jobs, GB, as --cpus-per-gpu.")
    var inferenceMemoryPerGPU: String?

    @Option(name: .customLong("multi-node"), help: "Fraction of the largest batch jobs (--batch-gpus) that span several nodes (0 to 1).")
    var multiNode: Double = 0

    @Option(name: .customLong("multi-node-nodes"), help: "Node counts of multi-node batch jobs, drawn uniformly (comma-separated).")
    var multiNodeNodes: String = "2"

    @Option(name: .customLong("planner-view"), help: ArgumentHelp(
        "What TopoPreempt's planner is given: gpus (as preempt/topo_aware gives it: GPUs and the job's CPU count) or full (also each node's free CPUs and memory and every job's).",
        discussion: "Stock Slurm always sees everything; with gpus, a plan whose node lacks CPUs or memory is not carried out."))
    var plannerView: String = PlannerView.gpus.rawValue

    @Option(name: .customLong("cost-order"), help: ArgumentHelp(
        "How the topology-aware policies and the oracle compare plans, most important first, from priority, victims, work, rough-work (work, plans within --rough-work-tolerance of the least tie), collateral; those left out follow in the order \(CostCriterion.text(CostCriterion.defaultOrder)).",
        discussion: "The value of CostOrder= in topo_aware.conf."))
    var costOrder: String?

    @Option(name: .customLong("rough-work-tolerance"), help: ArgumentHelp(
        "How much more work than the least a plan may lose and still tie under rough-work: a percentage, 0-100, at most one decimal (2, 2.5%).",
        discussion: "The value of RoughWorkTolerance= in topo_aware.conf; default \(RoughWorkTolerance.default)."))
    var roughWorkTolerance: String?

    @Flag(name: .customLong("no-progress"), help: "No progress bar on standard error.")
    var noProgress = false

    @OptionGroup var slurmRelease: SlurmReleaseOption

    @OptionGroup var output: FormatOption

    func run() throws {
        let setup: SimulationSetup
        let jobs: [SimJob]
        let until: Int64
        let chosen: [SimPolicy]
        do {
            guard let level = AffinityLevel(name: level) else { throw CLIError.input("unknown level '\(level)' (expected one of \(AffinityLevel.allNames))") }
            for (value, name) in [(graceTime, "--grace-time"), (killWait, "--kill-wait"), (epilog, "--epilog")] where value < 0 || value > 86_400 {
                throw CLIError.input("\(name) must be 0 to 86400 seconds, not \(value)")
            }
            guard victimExit >= 0, victimExit <= 86_400 else { throw CLIError.input("--victim-exit must be 0 to 86400 seconds") }
            guard coresPerSocket >= 1, coresPerSocket <= 4096 else { throw CLIError.input("--cores-per-socket must be 1 to 4096, not \(coresPerSocket)") }
            if let memoryPerNode, memoryPerNode < 1 || memoryPerNode > 1 << 20 {
                throw CLIError.input("--memory-per-node must be 1 to 1048576 GB, not \(memoryPerNode)")
            }
            guard let view = PlannerView(rawValue: plannerView) else {
                throw CLIError.input("--planner-view: '\(plannerView)' is neither gpus nor full")
            }
            guard multiNode >= 0, multiNode <= 1 else { throw CLIError.input("--multi-node must be a fraction from 0 to 1, not \(multiNode)") }
            var built = SimulationSetup(nodeTypes: try Self.parseNodes(nodes), level: level,
                                        slurm: try slurmRelease.release(or: SlurmClient.built),
                                        drain: DrainModel(graceTime: graceTime, killWait: killWait, exitMean: victimExit, epilog: epilog),
                                        coresPerSocket: coresPerSocket, memoryPerNodeMB: memoryPerNode.map { $0 * 1000 }, plannerView: view)
            guard blocks >= 0, blocks <= 100_000 else { throw CLIError.input("--blocks must be 0 to 100000 nodes, not \(blocks)") }
            built.blockNodes = blocks
            if let costOrder {
                switch CostCriterion.parseOrder(costOrder) {
                case let .success(order): built.costOrder = order
                case let .failure(error): throw CLIError.input("--cost-order: \(error.message)")
                }
            }
            if let roughWorkTolerance {
                guard let tolerance = RoughWorkTolerance(roughWorkTolerance) else {
                    throw CLIError.input("--rough-work-tolerance: '\(roughWorkTolerance)' is not \(RoughWorkTolerance.expected)")
                }
                built.roughWorkTolerance = tolerance
            }
            if blocks > 0, built.slurm < SlurmRelease(23, 11, 0) {
                throw CLIError.input("--blocks needs topology/block, Slurm 23.11 or later: add --slurm-release (e.g. 24.11.5), not \(built.slurm)")
            }
            setup = built
            chosen = try policies.split(separator: ",").map { name in
                guard let policy = SimPolicy(rawValue: String(name)) else {
                    throw CLIError.input("unknown policy '\(name)' (expected \(SimPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return policy
            }
            guard days > 0, days <= 366 else { throw CLIError.input("--days must be more than 0 and at most 366") }
            let totalGPUs = setup.nodeTypes.reduce(0) { $0 + $1.count * $1.type.paths.count }
            if let trace {
                do { jobs = try WorkloadSpec.parseCSV(try readInput(trace), file: trace) } catch let error as TextDiagnostic {
                    throw CLIError.input(error.description)
                }
                until = max(Int64(days * 86_400), (jobs.last?.submit ?? 0) + 1)
            } else {
                let sizes = try inferenceGPUs.split(separator: ",").map { text -> Int in
                    guard let n = Int(text), n > 0, n <= 64 else { throw CLIError.input("--inference-gpus: '\(text)' is not a GPU count") }
                    return n
                }
                var spec = WorkloadSpec(seconds: Int64(days * 86_400), seed: seed,
                                        inferencePerDay: inferencePerDay * Double(totalGPUs) / 1000,
                                        inferenceGPUs: sizes, batchLoad: batchLoad)
                spec.batchResources = ResourceDraw(cpusPerGPU: try Self.weighted(cpusPerGPU, "--cpus-per-gpu", 1...1024),
                                                   memoryPerGPU: try Self.weighted(memoryPerGPU, "--memory-per-gpu", 0...65_536).map { (Int64($0.value) * 1000, $0.weight) })
                spec.inferenceResources = ResourceDraw(cpusPerGPU: try Self.weighted(inferenceCPUsPerGPU, "--inference-cpus-per-gpu", 1...1024),
                                                       memoryPerGPU: try Self.weighted(inferenceMemoryPerGPU, "--inference-memory-per-gpu", 0...65_536).map { (Int64($0.value) * 1000, $0.weight) })
                spec.multiNodeFraction = multiNode
                spec.inferenceNodes = try inferenceNodes.split(separator: ",").map { text -> Int in
                    guard let n = Int(text), n >= 1, n <= 1024 else { throw CLIError.input("--inference-nodes: '\(text)' is not a node count from 1 to 1024") }
                    return n
                }
                spec.batchSizes = try Self.weighted(batchGPUs, "--batch-gpus", 1...64).map { (gpus: $0.value, weight: $0.weight) }
                guard !spec.batchSizes.isEmpty else { throw CLIError.input("--batch-gpus: no sizes") }
                let sockets = setup.nodeTypes.map { type in (try? type.type.topology()).map { SlurmGPUPick.sockets($0).count } ?? 1 }
                spec.nodeCPUs = coresPerSocket * max(1, sockets.min() ?? 1)
                spec.nodeMemoryMB = setup.memoryPerNodeMB
                spec.multiNodeCounts = try multiNodeNodes.split(separator: ",").map { text -> Int in
                    guard let n = Int(text), n >= 2, n <= 64 else { throw CLIError.input("--multi-node-nodes: '\(text)' is not a node count from 2 to 64") }
                    return n
                }
                jobs = spec.generate(totalGPUs: totalGPUs)
                until = spec.seconds
            }
        } catch let error as CLIError {
            throw error.exit()
        }
        let results = try Self.replay(setup: setup, jobs: jobs, until: until, policies: chosen, progress: !noProgress)
        let report = SimulationReport(setup: setup, nodes: nodes, jobs: jobs, until: until, results: results)
        if let directory = self.report {
            // The same trace on each node type alone, as many nodes as the whole cluster.
            var breakdown: [SimulationReport] = []
            if setup.nodeTypes.count > 1 {
                for type in setup.nodeTypes {
                    var alone = setup
                    alone.nodeTypes = [(type.type, type.name, setup.nodeCount)]
                    let results = try Self.replay(setup: alone, jobs: jobs, until: until, policies: chosen, progress: !noProgress)
                    breakdown.append(SimulationReport(setup: alone, nodes: "\(type.name):\(setup.nodeCount)", jobs: jobs, until: until,
                                                      results: results))
                }
            }
            let markdown = report.markdown(command: ["topo-preempt"] + CommandLine.arguments.dropFirst(), workload: trace.map { "trace \($0)" } ?? workloadText(),
                                           breakdown: breakdown)
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try markdown.write(toFile: directory + "/report.md", atomically: true, encoding: .utf8)
                try report.svg().write(toFile: directory + "/simulation.svg", atomically: true, encoding: .utf8)
            } catch {
                throw CLIError.input("--report \(directory): \(error.localizedDescription)").exit()
            }
            if output.format == .text { print("report: \(directory)/report.md, plot: \(directory)/simulation.svg") }
        }
        switch output.format {
        case .json: try printJSON(report.json)
        case .text: print(report.table(), terminator: "")
        }
        if plot != "-" {
            try report.svg().write(toFile: plot, atomically: true, encoding: .utf8)
            if output.format == .text { print("plot: \(plot)") }
        }
        if let csv {
            try report.csv().write(toFile: csv, atomically: true, encoding: .utf8)
            if output.format == .text { print("timeline: \(csv)") }
        }
    }

    /// `VALUE[:WEIGHT],...` (weight 1 where left out); empty for nil.
    static func weighted(_ text: String?, _ option: String, _ range: ClosedRange<Int>) throws -> [(value: Int, weight: Double)] {
        guard let text else { return [] }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map { item in
            let fields = item.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count <= 2, let value = Int(fields[0]), range.contains(value) else {
                throw CLIError.input("\(option): '\(item)' is not VALUE or VALUE:WEIGHT with VALUE from \(range.lowerBound) to \(range.upperBound)")
            }
            var weight = 1.0
            if fields.count == 2 {
                guard let w = Double(fields[1]), w > 0, w.isFinite else { throw CLIError.input("\(option): '\(item)': the weight must be a number above 0") }
                weight = w
            }
            return (value, weight)
        }
    }

    /// The synthetic workload's parameters, as the report names them.
    func workloadText() -> String {
        "synthetic, seed \(seed): \(inferencePerDay) inference instances per day and 1,000 GPUs (daily curve, peak 14:00, "
            + "\(inferenceGPUs) GPUs each\(inferenceNodes == "1" ? "" : " on \(inferenceNodes) nodes"), 4 h mean run time), "
            + "batch load \(batchLoad)x the cluster's GPUs (GPUs:weight \(batchGPUs), log-normal run times, 30 min median)"
            + (blocks > 0 ? "; topology/block, blocks of \(blocks) nodes" : "")
            + (cpusPerGPU.map { "; batch CPUs per GPU \($0)" } ?? "") + (memoryPerGPU.map { ", memory per GPU \($0) GB" } ?? "")
            + (inferenceCPUsPerGPU.map { "; inference CPUs per GPU \($0)" } ?? "") + (inferenceMemoryPerGPU.map { ", memory per GPU \($0) GB" } ?? "")
            + (multiNode > 0 ? "; \(multiNode) of the largest batch jobs on \(multiNodeNodes) nodes" : "")
            + (cpusPerGPU != nil || memoryPerGPU != nil || inferenceCPUsPerGPU != nil || inferenceMemoryPerGPU != nil
                ? "; requests capped at a whole node" : "")
    }

    /// Every policy replays the same trace independently, one thread each.
    static func replay(setup: SimulationSetup, jobs: [SimJob], until: Int64, policies chosen: [SimPolicy],
                       progress showProgress: Bool) throws -> [(SimPolicy, SimResult, Double)] {
        let interactive = showProgress && isatty(2) != 0
        let progress = ProgressBoard(policies: chosen, interactive: interactive)
        let slots = ResultSlots(count: chosen.count)
        DispatchQueue.concurrentPerform(iterations: chosen.count) { i in
            let started = Date()
            do {
                let result = try Simulator.run(setup: setup, policy: chosen[i], jobs: jobs, until: until) { fraction in
                    progress.update(i, fraction)
                }
                slots.set(i, .success((chosen[i], result, Date().timeIntervalSince(started))))
            } catch {
                slots.set(i, .failure(CLIError.input("\(chosen[i].rawValue): \(error)")))
            }
        }
        progress.clear()
        var results: [(SimPolicy, SimResult, Double)] = []
        for outcome in slots.values {
            switch outcome {
            case let .success(value): results.append(value)
            case let .failure(error): throw error.exit()
            case nil: throw CLIError.input("simulation did not run").exit()
            }
        }
        return results
    }

    static func parseNodes(_ text: String) throws -> [(type: ClusterSnapshot.LayoutSpec, name: String, count: Int)] {
        var types: [(type: ClusterSnapshot.LayoutSpec, name: String, count: Int)] = []
        for item in text.split(separator: ",") {
            guard let colon = item.lastIndex(of: ":"), let count = Int(item[item.index(after: colon)...]), count > 0, count <= 100_000 else {
                throw CLIError.input("--nodes: '\(item)' is not NAME:COUNT (count 1 to 100000)")
            }
            let name = String(item[..<colon])
            if let builtIn = SimNodeType(rawValue: name) {
                types.append((builtIn.layout, name, count))
            } else {
                let parsed: NodeTopology
                do { parsed = try NvidiaSmiTopo.parse(try readInput(name), file: name).topology } catch let error as TextDiagnostic {
                    throw CLIError.input(error.description)
                }
                let short = URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent
                types.append((ClusterSnapshot.LayoutSpec(parsed), short, count))
            }
        }
        guard !types.isEmpty else { throw CLIError.input("--nodes: no node types") }
        return types
    }
}

/// The comparison, as a table, JSON, a timeline CSV and an SVG plot.
struct SimulationReport {
    let setup: SimulationSetup
    let nodes: String
    let jobs: [SimJob]
    let until: Int64
    let results: [(SimPolicy, SimResult, Double)]

    struct JSON: Encodable {
        var nodes: String
        var gpus: Int
        var seconds: Int64
        var inferenceJobs: Int
        var batchJobs: Int
        var level: String
        /// The Slurm release modelled, and its GPU pick model.
        var slurm: String
        var gpuPick: String
        /// The topology-aware policies' cost order.
        var costOrder: String
        /// With `rough-work` in it: how near the least work plans tie.
        var roughWorkTolerance: String?
        var drain: DrainModel
        var policies: [Policy]
        /// TopoPreempt against the best stock variant, metric by metric.
        var comparison: [Comparison]
        /// Peak resident memory of the process so far (all policies), MB (VmHWM).
        var peakResidentMB: Int?
        struct Policy: Encodable {
            var metrics: SimMetrics
            var hitRate: Double
            var victimsPerPreemption: Double
            var gpuHoursLost: Double
            var wallSeconds: Double
            var eventsPerSecond: Double
            var timeline: [SimSample]
        }
    }

    var gpus: Int { setup.nodeTypes.reduce(0) { $0 + $1.count * $1.type.paths.count } }

    var json: JSON {
        JSON(nodes: nodes, gpus: gpus, seconds: until, inferenceJobs: jobs.count { $0.kind == .inference },
             batchJobs: jobs.count { $0.kind == .batch }, level: setup.level.name,
             slurm: setup.slurm.description, gpuPick: setup.slurm.gpuPick.rawValue,
             costOrder: CostCriterion.text(setup.costOrder),
             roughWorkTolerance: setup.costOrder.contains(.roughWork) ? setup.roughWorkTolerance.description : nil, drain: setup.drain,
             policies: results.map { policy, result, wall in
                 JSON.Policy(metrics: result.metrics, hitRate: result.metrics.hitRate,
                             victimsPerPreemption: result.metrics.victimsPerPreemption, gpuHoursLost: result.metrics.gpuHoursLost,
                             wallSeconds: wall, eventsPerSecond: wall > 0 ? Double(result.metrics.events) / wall : 0,
                             timeline: result.timeline)
             }, comparison: comparison(), peakResidentMB: Self.peakResidentMegabytes())
    }

    /// One metric: TopoPreempt's value against the best stock variant's.
    struct Comparison: Encodable {
        var metric: String
        var higherIsBetter: Bool
        var bestStock: String
        var bestStockValue: Double
        var policy: String
        var value: Double
        /// "3.1x less", "+12.4 pts", "same", ...
        var gain: String
    }

    /// The metrics compared, how each is read from a result and which way is better; rates
    /// compare in percentage points, quantities as ratios.
    static let compared: [(name: String, higher: Bool, points: Bool, value: @Sendable (SimMetrics) -> Double)] = [
        ("affinity hit rate of preemptions", true, true, { 100 * $0.hitRate }),
        ("inference aligned (all starts)", true, true, { $0.inferenceStarted == 0 ? 0 : 100 * Double($0.inferenceAligned) / Double($0.inferenceStarted) }),
        ("started at once, misaligned (% of starts)", false, true, { $0.inferenceStarted == 0 ? 0 : 100 * Double($0.misalignedFreeStarts) / Double($0.inferenceStarted) }),
        ("victims per preemption", false, false, { $0.victimsPerPreemption }),
        ("GPU-hours lost to preemption", false, false, { $0.gpuHoursLost }),
        ("GPU-hours idle while victims drain", false, false, { $0.drainGPUHours }),
        ("inference wait p50 (s)", false, false, { Double($0.inferenceWaitP50) }),
        ("inference wait p99 (s)", false, false, { Double($0.inferenceWaitP99) }),
        ("preemption wait p99 (s)", false, false, { Double($0.preemptionWaitP99) }),
        ("batch GPU-hours completed", true, false, { $0.batchGPUHoursCompleted }),
        ("GPU utilisation", true, true, { 100 * $0.utilisation }),
        ("scheduled performance", true, false, { $0.scheduledPerformance }),
    ]

    /// TopoPreempt (topo-guaranteed, else the first topo policy run) against the best stock
    /// variant run, per metric; empty when either side was not run.
    func comparison() -> [Comparison] {
        let stock = results.filter { $0.0.stockSettings != nil }
        guard let topo = results.first(where: { $0.0 == .topoGuaranteed }) ?? results.first(where: { $0.0 == .topoBestEffort }),
              !stock.isEmpty else { return [] }
        return Self.compared.map { metric in
            let values = stock.map { (name: $0.0.rawValue, value: metric.value($0.1.metrics)) }
            let best = values.dropFirst().reduce(values[0]) { best, next in
                (metric.higher ? next.value > best.value : next.value < best.value) ? next : best
            }
            let ours = metric.value(topo.1.metrics)
            return Comparison(metric: metric.name, higherIsBetter: metric.higher, bestStock: best.name, bestStockValue: best.value,
                              policy: topo.0.rawValue, value: ours,
                              gain: Self.gain(ours, against: best.value, higher: metric.higher, points: metric.points))
        }
    }

    /// How much better (or worse) `value` is than `baseline`.
    static func gain(_ value: Double, against baseline: Double, higher: Bool, points: Bool) -> String {
        if points {
            let delta = value - baseline
            guard abs(delta) >= 0.05 else { return "same" }
            return String(format: "%+.1f pts", delta) + ((higher ? delta > 0 : delta < 0) ? "" : " (worse)")
        }
        if abs(value - baseline) <= 1e-9 * max(1, abs(baseline)) { return "same" }
        let better = higher ? value > baseline : value < baseline
        let (large, small) = (max(value, baseline), min(value, baseline))
        guard small > 0 else { return better ? "better (\(higher ? "from" : "to") 0)" : "worse (\(higher ? "to" : "from") 0)" }
        let ratio = large / small
        let text = ratio >= 10 ? String(format: "%.0fx", ratio) : String(format: ratio >= 1.1 ? "%.2fx" : "%.3fx", ratio)
        return "\(text) \(value > baseline ? "more" : "less")\(better ? "" : " (worse)")"
    }

    /// The cost order, with the tolerance where `rough-work` is in it.
    var costText: String {
        CostCriterion.text(setup.costOrder) + (setup.costOrder.contains(.roughWork) ? " (rough-work within \(setup.roughWorkTolerance))" : "")
    }

    func table() -> String {
        var out = "cluster \(nodes) (\(setup.nodeCount) nodes, \(gpus) GPUs), \(String(format: "%.1f", Double(until) / 86_400)) days, "
        out += "\(jobs.count { $0.kind == .inference }) inference and \(jobs.count { $0.kind == .batch }) batch jobs, level \(setup.level.name), "
        out += "Slurm \(setup.slurm) (GPU pick \(setup.slurm.gpuPick.rawValue))\n"
        if setup.costOrder != CostCriterion.defaultOrder || setup.roughWorkTolerance != .default { out += "plans compared by \(costText)\n" }
        if let resources = resourcesText() { out += resources + "\n" }
        out += "\n"
        let names = results.map { $0.0.rawValue }
        let width = max(17, (names.map(\.count).max() ?? 0) + 2)
        func row(_ label: String, _ values: [String]) {
            out += label.padding(toLength: 44, withPad: " ", startingAt: 0)
            for value in values { out += String(repeating: " ", count: max(1, width - value.count)) + value }
            out += "\n"
        }
        row("metric", names)
        for (label, values) in rows() { row(label, values) }
        row("simulation wall time (s)", results.map { String(format: "%.1f", $0.2) })
        row("events per second", results.map { String(format: "%.0f", $0.2 > 0 ? Double($0.1.metrics.events) / $0.2 : 0) })
        if let baseline = results.first(where: { $0.0 == .stock }), baseline.2 > 0 {
            row("wall time relative to stock", results.map { String(format: "%.2f", $0.2 / baseline.2) })
        }
        let comparison = comparison()
        if let first = comparison.first {
            out += "\n\(first.policy) against the best stock variant for each metric:\n"
            let labels = ["metric", "best stock variant", "its value", first.policy, "gain"]
            var lines = [labels]
            for c in comparison {
                let points = Self.compared.first { $0.name == c.metric }?.points ?? false
                func format(_ v: Double) -> String { points ? String(format: "%.1f%%", v) : (v.rounded() == v && abs(v) < 1e15 ? String(format: "%.0f", v) : String(format: "%.3f", v)) }
                lines.append([c.metric, c.bestStock, format(c.bestStockValue), format(c.value), c.gain])
            }
            let widths = labels.indices.map { i in lines.map { $0[i].count }.max() ?? 0 }
            for line in lines {
                out += line.enumerated().map { i, cell in i == 0 || i == 1 ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - cell.count) + cell }.joined(separator: "  ") + "\n"
            }
        }
        out += "\nvictims drain: \(setup.drain.isInstant ? "no drain time (GPUs free when victims are chosen)" : "GraceTime \(setup.drain.graceTime) s, KillWait \(setup.drain.killWait) s, mean exit after SIGTERM \(setup.drain.exitMean) s, epilog \(setup.drain.epilog) s")\n"
        if let peak = Self.peakResidentMegabytes() { out += "\npeak resident memory of this run (all policies): \(peak) MB\n" }
        out += "\nscheduled performance: inference run time weighted by the placement factor of its GPUs "
        out += "(" + AffinityLevel.allCases.map { "\($0.name) \(setup.factors[$0] ?? 0)" }.joined(separator: ", ") + "), over inference run time.\n"
        return out
    }

    /// Whether the run gives CPUs or memory a part (memory consumable, or some job asks for
    /// more than one CPU, or spans nodes): the table then has their rows.
    var modelsResources: Bool { setup.memoryPerNodeMB != nil || jobs.contains { $0.cpus > 1 || $0.nodes > 1 } }

    /// The node model and the planner's view, when CPUs or memory take part.
    func resourcesText() -> String? {
        guard modelsResources else { return nil }
        let memory = setup.memoryPerNodeMB.map { "\($0 / 1000) GB of memory" } ?? "memory not consumable"
        let multi = jobs.count { $0.nodes > 1 && $0.kind == .batch }
        let multiInference = jobs.count { $0.nodes > 1 && $0.kind == .inference }
        return "nodes: \(setup.coresPerSocket) cores per socket, \(memory); \(multi) multi-node batch jobs\(multiInference > 0 ? ", \(multiInference) multi-node inference jobs" : "")\(setup.blockNodes > 0 ? ", blocks of \(setup.blockNodes) nodes" : ""); "
            + "TopoPreempt's planner given \(setup.plannerView == .full ? "GPUs, CPUs and memory (--planner-view full)" : "GPUs only, as preempt/topo_aware gives it (--planner-view gpus)")"
    }

    /// The rows of the table and of the report: label and one value per policy (the single
    /// source of both).
    func rows() -> [(String, [String])] {
        let m = results.map { $0.1.metrics }
        func percent(_ part: Int, _ whole: Int) -> String { String(format: "%.1f%%", whole == 0 ? 0 : 100 * Double(part) / Double(whole)) }
        var rows: [(String, [String])] = [
            ("preemptions", m.map { "\($0.preemptions)" }),
            ("affinity hit rate of preemptions", m.map { String(format: "%.1f%%", 100 * $0.hitRate) }),
            ("victims per preemption", m.map { String(format: "%.2f", $0.victimsPerPreemption) }),
            ("GPU-hours lost to preemption", m.map { String(format: "%.1f", $0.gpuHoursLost) }),
            ("inference started", m.map { "\($0.inferenceStarted)" }),
            ("inference aligned (all starts)", m.map { percent($0.inferenceAligned, $0.inferenceStarted) }),
            ("started at once, misaligned", m.map { "\($0.misalignedFreeStarts) (\(percent($0.misalignedFreeStarts, $0.inferenceStarted)))" }),
            ("inference still waiting at end", m.map { "\($0.inferenceUnstarted)" }),
            ("inference wait p50 / p99 (s)", m.map { "\($0.inferenceWaitP50) / \($0.inferenceWaitP99)" }),
            ("preemption wait p50 / p99 (s)", m.map { "\($0.preemptionWaitP50) / \($0.preemptionWaitP99)" }),
            ("GPU-hours idle while victims drain", m.map { String(format: "%.1f", $0.drainGPUHours) }),
            ("batch jobs completed", m.map { "\($0.batchCompleted)" }),
            ("batch GPU-hours completed", m.map { String(format: "%.0f", $0.batchGPUHoursCompleted) }),
            ("GPU utilisation", m.map { String(format: "%.1f%%", 100 * $0.utilisation) }),
            ("scheduled performance", m.map { String(format: "%.3f", $0.scheduledPerformance) }),
        ]
        if modelsResources {
            rows.append(("plans Slurm could not carry out", m.map { "\($0.unexecutablePlans)" }))
            rows.append(("preemptions left to the base policy", m.map { "\($0.basePolicyPreemptions)" }))
            rows.append(("GPU-hours free on nodes without a free CPU", m.map { String(format: "%.1f", $0.strandedGPUHours) }))
            rows.append(("jobs refused (no node can hold them)", m.map { "\($0.rejected)" }))
        }
        return rows
    }

    /// The report `--report` writes: how it was made, the table, TopoPreempt against the best
    /// stock variant, and the same trace on each node type alone.
    func markdown(command: [String], workload: String, breakdown: [SimulationReport]) -> String {
        func table(_ report: SimulationReport) -> String {
            var out = ""
            // Inference larger than every group at the level: job_submit/topo_aware rejects such
            // guaranteed jobs at submission; the simulator lets them wait and start misaligned.
            let largest = report.setup.nodeTypes.compactMap { type -> Int? in
                guard let topology = try? type.type.topology(), let table = try? AffinityTable(topology) else { return nil }
                return table.groups(at: report.setup.level).map(\.gpus.count).max()
            }.max() ?? 0
            let oversized = report.jobs.count { $0.kind == .inference && $0.gpus > largest }
            if oversized > 0 {
                out += "Note: \(oversized) of \(report.jobs.count { $0.kind == .inference }) inference jobs ask for more GPUs than "
                out += "the largest \(report.setup.level.name) group here (\(largest)): job_submit/topo_aware would reject them in "
                out += "guaranteed mode; in this replay they wait until they fit and start misaligned, under every policy.\n\n"
            }
            out += "| metric | " + report.results.map { $0.0.rawValue }.joined(separator: " | ") + " |\n"
            out += "| --- |" + String(repeating: " --- |", count: report.results.count) + "\n"
            for (label, values) in report.rows() { out += "| \(label) | " + values.joined(separator: " | ") + " |\n" }
            let comparison = report.comparison()
            if let first = comparison.first {
                out += "\n\(first.policy) against the best stock variant for each metric:\n\n"
                out += "| metric | best stock variant | its value | \(first.policy) | gain |\n| --- | --- | --- | --- | --- |\n"
                for c in comparison {
                    let points = Self.compared.first { $0.name == c.metric }?.points ?? false
                    func format(_ v: Double) -> String { points ? String(format: "%.1f%%", v) : String(format: "%.3f", v) }
                    out += "| \(c.metric) | \(c.bestStock) | \(format(c.bestStockValue)) | \(format(c.value)) | \(c.gain) |\n"
                }
            }
            return out
        }
        var out = "# topo-preempt simulate: \(nodes)\n\n"
        out += "Made by `\(command.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))`.\n\n"
        out += "- cluster: \(nodes) (\(setup.nodeCount) nodes, \(gpus) GPUs); level \(setup.level.name)\n"
        out += "- span: \(String(format: "%.1f", Double(until) / 86_400)) days; \(jobs.count { $0.kind == .inference }) inference "
        out += "and \(jobs.count { $0.kind == .batch }) batch jobs\n"
        out += "- workload: \(workload)\n"
        if let resources = resourcesText() { out += "- \(resources)\n" }
        out += "- Slurm modelled: \(setup.slurm) (GPU pick \(setup.slurm.gpuPick.rawValue))\n"
        out += "- cost order of the topology-aware policies: \(costText)\n"
        out += "- victims' drain: " + (setup.drain.isInstant ? "none (GPUs free when victims are chosen)"
            : "GraceTime \(setup.drain.graceTime) s, KillWait \(setup.drain.killWait) s, mean exit \(setup.drain.exitMean) s, epilog \(setup.drain.epilog) s") + "\n"
        out += "- policies: " + results.map { policy, _, _ in
            if let settings = policy.stockSettings {
                let request = policy == .stockShaped || policy == .stockShapedYoungest ? "--gpus-per-socket=N --sockets-per-node=1" : "--gres=gpu:N"
                return "`\(policy.rawValue)` (stock Slurm, `\(request)`, victims \(settings.name))"
            }
            return "`\(policy.rawValue)`"
        }.joined(separator: ", ") + "\n\n"
        out += table(self)
        out += "\n![hit rate and utilisation over time](simulation.svg)\n"
        for part in breakdown {
            out += "\n## The same trace on \(part.nodes) alone\n\n" + table(part)
        }
        return out
    }

    /// VmHWM from /proc/self/status, in MB; nil where unavailable.
    static func peakResidentMegabytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kb / 1024
    }

    func csv() -> String {
        var out = "policy,time,utilisation,hit_rate,pending_inference,running_inference\n"
        for (policy, result, _) in results {
            for s in result.timeline {
                out += "\(policy.rawValue),\(s.time),\(String(format: "%.4f", s.utilisation)),\(String(format: "%.4f", s.hitRate)),\(s.pendingInference),\(s.runningInference)\n"
            }
        }
        return out
    }

    /// Two panels over simulated time: the preemptions' cumulative affinity hit rate, and GPU
    /// utilisation; one line per policy.
    func svg() -> String {
        let width = 900.0, panel = 240.0, left = 70.0, right = 170.0, top = 40.0, gap = 70.0
        let plotWidth = width - left - right
        let height = top + 2 * panel + gap + 50
        let colors = ["#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#2ca02c", "#1f77b4", "#9467bd"]
        let span = Double(max(1, until))
        func x(_ t: Int64) -> Double { left + plotWidth * Double(t) / span }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"22\" font-size=\"15\">topo-preempt simulate: \(nodes), \(gpus) GPUs, level \(setup.level.name)</text>\n"
        let panels: [(String, (SimSample) -> Double)] = [("affinity hit rate of preemptions", { $0.hitRate }), ("GPU utilisation", { $0.utilisation })]
        for (p, (title, value)) in panels.enumerated() {
            let y0 = top + Double(p) * (panel + gap) + 10
            func y(_ v: Double) -> Double { y0 + panel * (1 - min(1, max(0, v))) }
            out += "<text x=\"\(left)\" y=\"\(y0 - 6)\" font-weight=\"bold\">\(title)</text>\n"
            out += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(panel)\" fill=\"none\" stroke=\"#888\"/>\n"
            for tick in stride(from: 0.0, through: 1.0, by: 0.25) {
                out += "<line x1=\"\(left)\" x2=\"\(left + plotWidth)\" y1=\"\(y(tick))\" y2=\"\(y(tick))\" stroke=\"#eee\"/>"
                out += "<text x=\"\(left - 8)\" y=\"\(y(tick) + 4)\" text-anchor=\"end\">\(Int(tick * 100))%</text>\n"
            }
            let days = Int(span / 86_400)
            for day in 0...max(0, days) {
                let t = Int64(day) * 86_400
                guard Double(t) <= span else { break }
                out += "<text x=\"\(x(t))\" y=\"\(y0 + panel + 16)\" text-anchor=\"middle\">day \(day)</text>\n"
            }
            for (i, (policy, result, _)) in results.enumerated() {
                let points = result.timeline.map { String(format: "%.1f,%.1f", x($0.time), y(value($0))) }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(colors[i % colors.count])\" stroke-width=\"2\" points=\"\(points)\"/>\n"
                if p == 0 {
                    let ly = top + 20 + Double(i) * 20
                    out += "<line x1=\"\(left + plotWidth + 15)\" x2=\"\(left + plotWidth + 35)\" y1=\"\(ly)\" y2=\"\(ly)\" stroke=\"\(colors[i % colors.count])\" stroke-width=\"3\"/>"
                    out += "<text x=\"\(left + plotWidth + 40)\" y=\"\(ly + 4)\">\(policy.rawValue)</text>\n"
                }
            }
        }
        out += "</svg>\n"
        return out
    }
}

/// Per-policy progress on standard error: one line, redrawn at most every percent.
final class ProgressBoard: @unchecked Sendable {
    private let lock = NSLock()
    private var fractions: [Double]
    private let names: [String]
    private let interactive: Bool

    init(policies: [SimPolicy], interactive: Bool) {
        names = policies.map(\.rawValue)
        fractions = Array(repeating: 0, count: policies.count)
        self.interactive = interactive
    }

    func update(_ i: Int, _ fraction: Double) {
        guard interactive else { return }
        lock.lock()
        defer { lock.unlock() }
        fractions[i] = fraction
        let line = zip(names, fractions).map { "\($0) \(Int($1 * 100))%" }.joined(separator: "  ")
        printError("\rsimulating: \(line)", newline: false)
    }

    func clear() {
        guard interactive else { return }
        printError("\r\(String(repeating: " ", count: 100))\r", newline: false)
    }
}

/// Results written by concurrent simulations.
final class ResultSlots: @unchecked Sendable {
    enum Outcome {
        case success((SimPolicy, SimResult, Double))
        case failure(CLIError)
    }

    private let lock = NSLock()
    private var slots: [Outcome?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ outcome: Outcome) {
        lock.lock()
        slots[i] = outcome
        lock.unlock()
    }

    var values: [Outcome?] {
        lock.lock()
        defer { lock.unlock() }
        return slots
    }
}
