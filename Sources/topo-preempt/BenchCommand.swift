import ArgumentParser
import Foundation
import TopoEngine

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, each printed as a ratio to a baseline measured in the same run.",
        subcommands: [Topology.self, Plan.self, Simulate.self])

    struct Topology: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time parsing topology files and building their affinity tables.",
            discussion: """
                Baseline: one pass over the file's bytes counting whitespace-separated tokens, the \
                least any parser of these formats must do. Prints the median of --iterations runs \
                per file. Build with -c release for meaningful numbers.
                """)

        @Argument(help: "nvidia-smi topo -m, rocm-smi --showtopo or gres.conf files.")
        var files: [String]

        @Option(help: "Runs per file (the median is printed).")
        var iterations: Int = 2000

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one file") }
            if iterations < 1 || iterations > 10_000_000 { throw ValidationError("--iterations must be 1...10000000") }
        }

        func run() throws {
            print("file                                       bytes   tokenize(us)  parse(us)  ratio  table(us)")
            for file in files {
                let text: String
                do { text = try readInput(file) } catch let error as CLIError { throw error.exit() }
                let format = TopoCommand.Input.detect(text)
                func parse() throws -> ParsedTopology {
                    switch format {
                    case .rocmSmi: return try RocmSmiTopo.parse(text, file: file)
                    case .gresConf:
                        let conf = try GresConf.parse(text, file: file)
                        return try NodeTopology.fromGresConf(conf, node: conf.nodeNames.first ?? "")
                    default: return try NvidiaSmiTopo.parse(text, file: file)
                    }
                }
                let parsed: ParsedTopology
                do { parsed = try parse() } catch { throw CLIError.input("\(error)").exit() }
                let baseline = median(iterations) { blackHole(countTokens(text)) }
                let parsing = median(iterations) { blackHole((try? parse())?.topology.gpuCount ?? 0) }
                let table = median(iterations) { blackHole((try? AffinityTable(parsed.topology))?.largestGroup.count ?? 0) }
                let name = (file as NSString).lastPathComponent
                let padded = name.count >= 42 ? name : name + String(repeating: " ", count: 42 - name.count)
                print(padded + String(format: " %6d %13.2f %10.2f %6.1f %10.2f", text.utf8.count,
                                      baseline, parsing, parsing / max(baseline, 0.001), table))
            }
        }

        /// Median wall time of `body` in microseconds.
        func median(_ runs: Int, _ body: () -> Void) -> Double {
            let clock = ContinuousClock()
            var samples: [Double] = []
            samples.reserveCapacity(runs)
            for _ in 0..<runs {
                let elapsed = clock.measure(body)
                samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
            }
            samples.sort()
            return samples[samples.count / 2]
        }

        func countTokens(_ text: String) -> Int {
            var tokens = 0
            var inToken = false
            for byte in text.utf8 {
                let blank = byte == 32 || byte == 9 || byte == 10 || byte == 13
                if !blank && !inToken { tokens += 1 }
                inToken = !blank
            }
            return tokens
        }
    }
}

extension BenchCommand {
    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Plan latency on synthetic clusters, against the stock Slurm order in the same run.",
            discussion: """
                Each cluster: N nodes x 8 GPUs (NVLink islands 0-3 and 4-7, one per socket), every GPU \
                busy with batch jobs whose GPU counts are drawn from --sizes (default: 1 GPU 8 times in \
                10, else 2 or 4: about 6 jobs per node; --sizes 1: 8 jobs per node), random start times \
                and priorities 1-3. Each run plans a new 4-GPU nvlink-guaranteed preemptor on a fresh \
                random draw of job ages. Baseline: the stock Slurm order (candidates by priority then \
                age, removed until the job fits), same snapshot. The index (snapshot preparation, once \
                per scheduling pass) is timed separately.
                """)

        @Option(help: "Cluster sizes (nodes), comma-separated.")
        var nodes: String = "1000,10000"

        @Option(help: "Plans per cluster size.")
        var runs: Int = 200

        @Option(help: "Random seed.")
        var seed: UInt64 = 1

        @Option(help: "GPU counts batch jobs are drawn from, uniformly (1 alone: 8 jobs per node).")
        var sizes: String = "1,1,1,1,1,1,1,1,2,4"

        @Option(name: .customLong("extra-plans"),
                help: "Plan this many more times on each snapshot, untimed (to count allocations per plan under valgrind: compare two values).")
        var extraPlans: Int = 0

        func validate() throws {
            guard clusterSizes.allSatisfy({ $0 >= 1 && $0 <= 100_000 }), !clusterSizes.isEmpty else {
                throw ValidationError("--nodes must list sizes from 1 to 100000")
            }
            guard !jobSizes.isEmpty, jobSizes.allSatisfy({ (1...8).contains($0) }) else {
                throw ValidationError("--sizes must list GPU counts from 1 to 8")
            }
            if runs < 1 || runs > 100_000 { throw ValidationError("--runs must be 1...100000") }
            if extraPlans < 0 || extraPlans > 100_000 { throw ValidationError("--extra-plans must be 0...100000") }
        }

        var clusterSizes: [Int] { nodes.split(separator: ",").compactMap { Int($0) } }
        var jobSizes: [Int] { sizes.split(separator: ",").compactMap { Int($0) } }

        func run() throws {
            print("nodes    jobs    index(ms)  plan p50(ms)  plan p99(ms)  stock p50(ms)  stock p99(ms)  p50 ratio  victims plan/stock  aligned plan/stock")
            var rng = SplitMix64(seed: seed)
            for size in clusterSizes {
                var indexTimes: [Double] = []
                var planTimes: [Double] = []
                var stockTimes: [Double] = []
                var planVictims = 0, stockVictims = 0, planAligned = 0, stockAligned = 0, jobs = 0
                let clock = ContinuousClock()
                for _ in 0..<runs {
                    let snapshot = Self.synthetic(nodes: size, sizes: jobSizes, rng: &rng)
                    jobs = snapshot.jobs.count
                    var index: PlanningIndex?
                    indexTimes.append(Self.ms(clock.measure { index = try? PlanningIndex(snapshot) }))
                    guard let index else { throw CLIError.input("synthetic snapshot did not index").exit() }
                    let request = PreemptorRequest(gpusPerNode: 4, level: .nvlink, priority: 10)
                    var outcome: PlanOutcome?
                    planTimes.append(Self.ms(clock.measure { outcome = Planner.plan(request, in: index) }))
                    for _ in 0..<extraPlans { if case .plan = Planner.plan(request, in: index) { blackHole(1) } }
                    var stock: StockPreemption.Outcome?
                    stockTimes.append(Self.ms(clock.measure { stock = StockPreemption.simulate(request, in: index) }))
                    if case let .plan(plan)? = outcome {
                        planVictims += plan.victims.count
                        if plan.level <= .nvlink { planAligned += 1 }
                    }
                    if let stock {
                        stockVictims += stock.victims.count
                        if stock.level <= .nvlink { stockAligned += 1 }
                    }
                }
                func pct(_ v: [Double], _ p: Double) -> Double {
                    let s = v.sorted()
                    return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
                }
                let ratio = pct(planTimes, 0.5) / max(pct(stockTimes, 0.5), 1e-6)
                print(String(format: "%-8d %-7d %9.2f %13.3f %13.3f %14.3f %14.3f %10.2f %10.2f/%-8.2f %8d/%d",
                             size, jobs, pct(indexTimes, 0.5), pct(planTimes, 0.5), pct(planTimes, 0.99),
                             pct(stockTimes, 0.5), pct(stockTimes, 0.99), ratio,
                             Double(planVictims) / Double(runs), Double(stockVictims) / Double(runs),
                             planAligned, stockAligned))
            }
        }

        static func ms(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        }

        static func synthetic(nodes: Int, sizes: [Int], rng: inout SplitMix64) -> ClusterSnapshot {
            let paths = (0..<8).map { i in (0..<8).map { j in i == j ? "X" : (i / 4 == j / 4 ? "NV4" : "SYS") } }
            var jobs: [ClusterSnapshot.RunningJob] = []
            jobs.reserveCapacity(nodes * 8)
            var id: UInt32 = 1
            for node in 0..<nodes {
                var gpu = 0
                while gpu < 8 {
                    let size = min(8 - gpu, sizes[Int(rng.next() % UInt64(sizes.count))])
                    jobs.append(.init(id: id, priority: 1 + Int(rng.next() % 3), startTime: Int64(rng.next() % 86_400),
                                      allocations: [.init(node: node, gpus: GPUSet(gpu..<(gpu + size)))]))
                    id += 1
                    gpu += size
                }
            }
            return ClusterSnapshot(layouts: [.init(paths: paths, sockets: (0..<8).map { $0 / 4 })],
                                   nodes: (0..<nodes).map { .init(name: "gpu\($0)", layout: 0) }, jobs: jobs, time: 86_400)
        }
    }
}

extension BenchCommand {
    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "How the simulator scales: events per second by cluster size and span, against the smallest size.",
            discussion: """
                Runs `topo-preempt simulate` (the default synthetic workload, half islands and half \
                pairs nodes of 8 GPUs) per size and span, each in its own process, and prints a \
                Markdown table: events per second of each policy, the lowest of them against the \
                smallest size's for the same span (the baseline, measured in the same run), each \
                policy's against its own at the smallest size, wall time and peak resident memory. \
                The policies run in parallel in one process, or with --sequential one process per \
                policy, one after another (each policy's events per second then do not depend on \
                how the others shared the cores). With --runs N each row is run N times and the \
                medians are printed (events per second, wall time; memory: the largest), the runs \
                interleaved (each round runs every size once) and each policy's ratio the median of \
                the rounds' ratios. Build with -c release for meaningful numbers.
                """)

        @Option(help: "Cluster sizes (nodes), comma-separated; the first is the baseline.")
        var nodes: String = "1000,5000,10000,20000"

        @Option(help: "Simulated spans (days), comma-separated.")
        var days: String = "1,7"

        @Option(help: "Policies (comma-separated, as simulate takes them).")
        var policies: String = "stock,stock-shaped-youngest,topo-guaranteed,topo-best-effort"

        @Option(help: "Seed of the synthetic trace.")
        var seed: UInt64 = 1

        @Flag(help: "One simulate process per policy, one after another, instead of all policies in parallel in one.")
        var sequential = false

        @Option(help: "Runs per row (1-9), in rounds over every size; medians are printed.")
        var runs = 1

        var sizes: [Int] { nodes.split(separator: ",").compactMap { Int($0) } }
        var spans: [Double] { days.split(separator: ",").compactMap { Double($0) } }
        var chosen: [String] { policies.split(separator: ",").map(String.init) }

        func validate() throws {
            guard !sizes.isEmpty, sizes.count == nodes.split(separator: ",").count, sizes.allSatisfy({ $0 >= 2 && $0 <= 100_000 }) else {
                throw ValidationError("--nodes must list sizes from 2 to 100000")
            }
            guard !spans.isEmpty, spans.count == days.split(separator: ",").count, spans.allSatisfy({ $0 > 0 && $0 <= 366 }) else {
                throw ValidationError("--days must list spans above 0 and at most 366")
            }
            guard !chosen.isEmpty else { throw ValidationError("--policies: none given") }
            for name in chosen where SimPolicy(rawValue: name) == nil {
                throw ValidationError("unknown policy '\(name)' (expected \(SimPolicy.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard (1...9).contains(runs) else { throw ValidationError("--runs must be from 1 to 9, not \(runs)") }
        }

        /// What is read of simulate's JSON.
        struct Report: Decodable {
            struct Policy: Decodable {
                struct Metrics: Decodable {
                    var policy: String
                    var events: Int
                }
                var metrics: Metrics
                var eventsPerSecond: Double
            }
            var policies: [Policy]
            var peakResidentMB: Int?
        }

        /// One `simulate` process of `group`'s policies: its report and wall time.
        func simulate(_ executable: URL, size: Int, span: Double, group: [String]) throws -> (report: Report, wall: Double) {
            let half = size / 2
            let arguments = ["simulate", "--nodes", "islands:\(size - half),pairs:\(half)", "--days", "\(span)",
                             "--policies", group.joined(separator: ","), "--seed", "\(seed)", "--format", "json",
                             "--plot", "-", "--no-progress"]
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            let output = Pipe()
            process.standardOutput = output
            let started = Date()
            do { try process.run() } catch { throw CLIError.input("cannot run \(executable.path): \(error)").exit() }
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            let wall = Date().timeIntervalSince(started)
            guard process.terminationStatus == 0 else {
                throw CLIError.input("topo-preempt \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)").exit()
            }
            do { return (try JSONDecoder().decode(Report.self, from: data), wall) } catch {
                throw CLIError.input("simulate's JSON for \(size) nodes: \(error)").exit()
            }
        }

        static func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            let mid = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        }

        func run() throws {
            guard let executable = Bundle.main.executableURL else { throw CLIError.input("cannot find this program's path").exit() }
            var header = "| nodes | GPUs | days |"
            var rule = "| --- | --- | --- |"
            for name in chosen {
                header += " \(name) events/s |"
                rule += " --- |"
            }
            header += " lowest events/s against \(sizes[0]) nodes | each policy's against \(sizes[0]) nodes | events per policy | wall (s) | peak memory (MB) |"
            rule += " --- | --- | --- | --- | --- |"
            let how = sequential ? "one policy at a time" : "policies in parallel"
            let repeated = runs > 1 ? ", medians of \(runs) runs per row" : ""
            print("Simulator scaling: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(how)\(repeated), seed \(seed)\n")
            print(header)
            print(rule)
            let groups = sequential ? chosen.map { [$0] } : [chosen]
            for span in spans {
                // Round by round: each round runs every size once, so that a change in the
                // machine's speed over minutes (a shared host) falls on every size alike.
                var rates = Array(repeating: Array(repeating: [Double](), count: chosen.count), count: sizes.count)
                var events = Array(repeating: Array(repeating: 0, count: chosen.count), count: sizes.count)
                var walls = Array(repeating: [Double](), count: sizes.count)
                var peaks = Array(repeating: Int?.none, count: sizes.count)
                var rows: [String] = []
                func finish(_ s: Int) {
                    let medians = rates[s].map(Self.median)
                    let baselines = rates[0].map(Self.median)
                    let lowest = medians.min() ?? 0
                    let lowestBaseline = baselines.min() ?? 1
                    // Each policy against itself at the smallest size: the median of the rounds'
                    // ratios (each round's sizes ran minutes apart at most).
                    let ratios = (0..<chosen.count).map { i in
                        Self.median(zip(rates[s][i], rates[0][i]).map { $0 / max($1, 1e-9) })
                    }
                    var row = "| \(sizes[s]) | \(sizes[s] * 8) | \(Self.format(span)) |"
                    for rate in medians { row += " \(Int(rate.rounded())) |" }
                    row += String(format: " %.2f | ", lowest / max(lowestBaseline, 1e-9))
                    row += ratios.map { String(format: "%.2f", $0) }.joined(separator: " / ")
                    row += " | " + events[s].map { "\($0)" }.joined(separator: " / ")
                    row += String(format: " | %.1f | ", Self.median(walls[s])) + (peaks[s].map { "\($0)" } ?? "-") + " |"
                    rows.append(row)
                }
                for round in 0..<runs {
                    for (s, size) in sizes.enumerated() {
                        var wall = 0.0
                        for group in groups {
                            let (report, seconds) = try simulate(executable, size: size, span: span, group: group)
                            wall += seconds
                            if let resident = report.peakResidentMB { peaks[s] = max(peaks[s] ?? 0, resident) }
                            for (i, name) in chosen.enumerated() {
                                guard let policy = report.policies.first(where: { $0.metrics.policy == name }) else { continue }
                                rates[s][i].append(policy.eventsPerSecond)
                                events[s][i] = policy.metrics.events
                            }
                        }
                        walls[s].append(wall)
                        // With one run, each row is printed as soon as it is measured.
                        if round == runs - 1 {
                            finish(s)
                            if runs == 1 {
                                print(rows.removeLast())
                                fflush(nil)
                            }
                        }
                    }
                }
                for row in rows { print(row) }
                fflush(nil)
            }
        }

        static func format(_ span: Double) -> String { span.rounded() == span ? "\(Int(span))" : "\(span)" }
    }
}

/// Keeps a value alive so the optimizer cannot drop the work that produced it.
@inline(never)
func blackHole(_ value: Int) {
    if value == Int.min { print("") }
}
