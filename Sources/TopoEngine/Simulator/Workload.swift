/// One job of a simulated trace.
public struct SimJob: Sendable, Equatable {
    public enum Kind: String, Sendable, Codable {
        /// Latency-sensitive inference: a preemptor that needs an aligned GPU group.
        case inference
        /// Preemptible batch work.
        case batch
    }

    public var submit: Int64
    /// GPUs per node.
    public var gpus: Int
    /// Seconds of work; a preempted job starts over (requeued, its work lost).
    public var duration: Int64
    public var kind: Kind
    /// Preemption priority (partition PriorityTier): inference above batch.
    public var priority: Int
    /// Nodes (`-N`), each with `gpus` GPUs, `cpus` CPUs and `memoryMB` of memory.
    public var nodes: Int
    public var cpus: Int
    public var memoryMB: Int64

    public init(submit: Int64, gpus: Int, duration: Int64, kind: Kind, priority: Int, nodes: Int = 1, cpus: Int = 1,
                memoryMB: Int64 = 0) {
        self.submit = submit
        self.gpus = gpus
        self.duration = duration
        self.kind = kind
        self.priority = priority
        self.nodes = max(1, nodes)
        self.cpus = max(1, cpus)
        self.memoryMB = max(0, memoryMB)
    }
}

/// CPUs and memory jobs ask for with each GPU, drawn per job; empty: one CPU per job and no
/// memory (the model before CPUs and memory were constraints).
public struct ResourceDraw: Sendable, Equatable {
    public var cpusPerGPU: [(value: Int, weight: Double)]
    public var memoryPerGPU: [(value: Int64, weight: Double)]

    public init(cpusPerGPU: [(value: Int, weight: Double)] = [], memoryPerGPU: [(value: Int64, weight: Double)] = []) {
        self.cpusPerGPU = cpusPerGPU
        self.memoryPerGPU = memoryPerGPU
    }

    public static let none = ResourceDraw()

    public static func == (a: ResourceDraw, b: ResourceDraw) -> Bool {
        a.cpusPerGPU.map(\.value) == b.cpusPerGPU.map(\.value) && a.cpusPerGPU.map(\.weight) == b.cpusPerGPU.map(\.weight)
            && a.memoryPerGPU.map(\.value) == b.memoryPerGPU.map(\.value) && a.memoryPerGPU.map(\.weight) == b.memoryPerGPU.map(\.weight)
    }

    /// Draws (CPUs, memory MB) for `gpus` GPUs; draws nothing from `rng` for an empty list.
    func draw(_ rng: inout SplitMix64, gpus: Int) -> (cpus: Int, memory: Int64) {
        func pick<T>(_ list: [(value: T, weight: Double)], _ rng: inout SplitMix64) -> T? {
            let total = list.reduce(0) { $0 + max(0, $1.weight) }
            guard total > 0 else { return nil }
            var at = WorkloadSpec.uniform(&rng) * total
            for entry in list {
                at -= max(0, entry.weight)
                if at <= 0 { return entry.value }
            }
            return list.last?.value
        }
        let cpus = pick(cpusPerGPU, &rng).map { $0 * gpus } ?? 1
        let memory = pick(memoryPerGPU, &rng).map { $0 * Int64(gpus) } ?? 0
        return (cpus, memory)
    }
}

/// The synthetic workload: diurnal inference arrivals and a batch stream that keeps the cluster
/// over-subscribed, both from one seed.
public struct WorkloadSpec: Sendable, Equatable {
    /// Simulated span in seconds.
    public var seconds: Int64
    public var seed: UInt64
    /// Inference instances per day (average); arrivals follow a daily curve peaking at
    /// `peakHour` with `dailySwing` relative amplitude (0: flat, 0.8: peak 1.8x the mean).
    public var inferencePerDay: Double
    public var dailySwing: Double
    public var peakHour: Double
    /// GPUs per inference instance, drawn uniformly.
    public var inferenceGPUs: [Int]
    /// Mean inference run time (exponential), seconds.
    public var inferenceMeanSeconds: Double
    /// Batch load offered, as a multiple of the cluster's GPUs (above 1 keeps a backlog).
    public var batchLoad: Double
    /// Batch job sizes and their weights (public GPU-cluster traces: mostly 1-GPU jobs).
    public var batchSizes: [(gpus: Int, weight: Double)]
    /// Batch run times: log-normal with this median (seconds) and sigma, capped.
    public var batchMedianSeconds: Double
    public var batchSigma: Double
    public var batchMaxSeconds: Double
    /// CPUs and memory per GPU of batch and of inference jobs.
    public var batchResources: ResourceDraw = .none
    public var inferenceResources: ResourceDraw = .none
    /// Fraction of batch jobs of the largest size (`batchSizes.last`) that run on several
    /// nodes, and how many (drawn uniformly): a 2-node 8-GPU job holds 8 GPUs on each node.
    public var multiNodeFraction: Double = 0
    public var multiNodeCounts: [Int] = [2]
    /// Nodes per inference instance, drawn uniformly (each with `inferenceGPUs` GPUs): several
    /// for multi-node inference in NVLink domains (topology/block). [1]: single-node, and no
    /// draw (traces of earlier versions stay the same).
    public var inferenceNodes: [Int] = [1]
    /// A node's CPUs and memory (MB): drawn requests are capped at them, as a user asks for at
    /// most a whole node (nil: no cap).
    public var nodeCPUs: Int?
    public var nodeMemoryMB: Int64?

    public init(seconds: Int64 = 7 * 86_400, seed: UInt64 = 1, inferencePerDay: Double = 720, dailySwing: Double = 0.8,
                peakHour: Double = 14, inferenceGPUs: [Int] = [2, 4], inferenceMeanSeconds: Double = 4 * 3600,
                batchLoad: Double = 1.3, batchSizes: [(gpus: Int, weight: Double)] = [(1, 0.45), (2, 0.25), (4, 0.2), (8, 0.1)],
                batchMedianSeconds: Double = 1800, batchSigma: Double = 1.4, batchMaxSeconds: Double = 2 * 86_400) {
        self.seconds = seconds
        self.seed = seed
        self.inferencePerDay = inferencePerDay
        self.dailySwing = dailySwing
        self.peakHour = peakHour
        self.inferenceGPUs = inferenceGPUs
        self.inferenceMeanSeconds = inferenceMeanSeconds
        self.batchLoad = batchLoad
        self.batchSizes = batchSizes
        self.batchMedianSeconds = batchMedianSeconds
        self.batchSigma = batchSigma
        self.batchMaxSeconds = batchMaxSeconds
    }

    public static func == (a: WorkloadSpec, b: WorkloadSpec) -> Bool {
        a.seconds == b.seconds && a.seed == b.seed && a.inferencePerDay == b.inferencePerDay && a.dailySwing == b.dailySwing
            && a.peakHour == b.peakHour && a.inferenceGPUs == b.inferenceGPUs && a.inferenceMeanSeconds == b.inferenceMeanSeconds
            && a.batchLoad == b.batchLoad && a.batchSizes.map(\.gpus) == b.batchSizes.map(\.gpus)
            && a.batchSizes.map(\.weight) == b.batchSizes.map(\.weight) && a.batchMedianSeconds == b.batchMedianSeconds
            && a.batchSigma == b.batchSigma && a.batchMaxSeconds == b.batchMaxSeconds
            && a.batchResources == b.batchResources && a.inferenceResources == b.inferenceResources
            && a.multiNodeFraction == b.multiNodeFraction && a.multiNodeCounts == b.multiNodeCounts
            && a.inferenceNodes == b.inferenceNodes
            && a.nodeCPUs == b.nodeCPUs && a.nodeMemoryMB == b.nodeMemoryMB
    }

    /// Jobs sorted by submit time. Batch arrivals start a little before time 0 so the cluster
    /// is full when measuring starts (their submit times are clamped to 0).
    public func generate(totalGPUs: Int) -> [SimJob] {
        var rng = SplitMix64(seed: seed)
        var inference: [SimJob] = []
        let inferencePriority = 10, batchPriority = 1
        // Inference: a non-homogeneous Poisson process by thinning.
        let mean = inferencePerDay / 86_400
        let peakRate = mean * (1 + abs(dailySwing))
        if mean > 0, !inferenceGPUs.isEmpty {
            var t = 0.0
            while true {
                t += Self.exponential(&rng, rate: peakRate)
                guard t < Double(seconds) else { break }
                let phase = 2 * Double.pi * (t / 86_400 - peakHour / 24)
                let rate = mean * (1 + dailySwing * Self.cosine(phase))
                guard Self.uniform(&rng) * peakRate <= rate else { continue }
                let gpus = inferenceGPUs[Int(rng.next() % UInt64(inferenceGPUs.count))]
                let duration = max(60, Self.exponential(&rng, rate: 1 / max(1, inferenceMeanSeconds)))
                let (cpus, memory) = capped(inferenceResources.draw(&rng, gpus: gpus))
                var nodes = inferenceNodes.first ?? 1
                if inferenceNodes.count > 1 { nodes = inferenceNodes[Int(rng.next() % UInt64(inferenceNodes.count))] }
                inference.append(SimJob(submit: Int64(t), gpus: gpus, duration: Int64(duration), kind: .inference,
                                   priority: inferencePriority, nodes: max(1, nodes), cpus: cpus, memoryMB: memory))
            }
        }
        // Batch: Poisson at the rate that offers `batchLoad` x the cluster's GPUs, drawn in
        // submit order and merged with the inference jobs as drawn (inference first among
        // equal submit times: the order a stable sort of inference then batch gives), without
        // a sort or a second copy of millions of jobs.
        var jobs: [SimJob] = []
        var nextInference = 0
        func append(_ job: SimJob) {
            while nextInference < inference.count, inference[nextInference].submit <= job.submit {
                jobs.append(inference[nextInference])
                nextInference += 1
            }
            jobs.append(job)
        }
        let weights = batchSizes.reduce(0) { $0 + max(0, $1.weight) }
        if weights > 0, batchLoad > 0, totalGPUs > 0 {
            let meanGPUs = batchSizes.reduce(0) { $0 + Double($1.gpus) * max(0, $1.weight) } / weights
            let meanDuration = batchMedianSeconds * Self.exp(batchSigma * batchSigma / 2)
            let rate = batchLoad * Double(totalGPUs) / (meanGPUs * meanDuration)
            let expected = rate * Double(seconds) + Double(totalGPUs) + Double(inference.count)
            if expected.isFinite, expected < 1e9 { jobs.reserveCapacity(Int(expected * 1.02) + 1024) }
            // Warm-up: the first batch jobs arrive at once, enough to fill the cluster.
            var filled = 0
            while filled < totalGPUs {
                let job = batchJob(&rng, at: 0, weights: weights, priority: batchPriority)
                filled += job.gpus * job.nodes
                append(job)
            }
            var t = 0.0
            while true {
                t += Self.exponential(&rng, rate: rate)
                guard t < Double(seconds) else { break }
                append(batchJob(&rng, at: Int64(t), weights: weights, priority: batchPriority))
            }
        }
        jobs.append(contentsOf: inference[nextInference...])
        return jobs
    }

    private func batchJob(_ rng: inout SplitMix64, at time: Int64, weights: Double, priority: Int) -> SimJob {
        var pick = Self.uniform(&rng) * weights
        var gpus = batchSizes.last?.gpus ?? 1
        for size in batchSizes {
            pick -= max(0, size.weight)
            if pick <= 0 {
                gpus = size.gpus
                break
            }
        }
        let duration = min(batchMaxSeconds, max(60, batchMedianSeconds * Self.exp(batchSigma * Self.normal(&rng))))
        let (cpus, memory) = capped(batchResources.draw(&rng, gpus: gpus))
        var nodes = 1
        if multiNodeFraction > 0, !multiNodeCounts.isEmpty, gpus == batchSizes.last?.gpus, Self.uniform(&rng) < multiNodeFraction {
            nodes = max(1, multiNodeCounts[Int(rng.next() % UInt64(multiNodeCounts.count))])
        }
        return SimJob(submit: time, gpus: gpus, duration: Int64(duration), kind: .batch, priority: priority, nodes: nodes,
                      cpus: cpus, memoryMB: memory)
    }

    func capped(_ request: (cpus: Int, memory: Int64)) -> (cpus: Int, memory: Int64) {
        (min(request.cpus, nodeCPUs ?? Int.max), min(request.memory, nodeMemoryMB ?? Int64.max))
    }

    // MARK: - Random variates (no Foundation: plain series and Box-Muller)

    static func uniform(_ rng: inout SplitMix64) -> Double {
        Double(rng.next() >> 11) / Double(1 << 53)
    }

    static func exponential(_ rng: inout SplitMix64, rate: Double) -> Double {
        -log(1 - uniform(&rng)) / max(rate, 1e-12)
    }

    static func normal(_ rng: inout SplitMix64) -> Double {
        let u1 = max(uniform(&rng), 1e-12), u2 = uniform(&rng)
        return (-2 * log(u1)).squareRoot() * cosine(2 * Double.pi * u2)
    }

    /// Natural logarithm for x > 0 (argument reduction by powers of two, then atanh series).
    static func log(_ x: Double) -> Double {
        guard x > 0 else { return -745 }
        var m = x, e = 0.0
        while m > 2 { m /= 2; e += 1 }
        while m < 1 { m *= 2; e -= 1 }
        let y = (m - 1) / (m + 1), y2 = y * y
        var term = y, sum = 0.0, k = 1.0
        for _ in 0..<40 {
            sum += term / k
            term *= y2
            k += 2
        }
        return 2 * sum + e * 0.693_147_180_559_945_3
    }

    static func exp(_ x: Double) -> Double {
        guard x < 700 else { return .greatestFiniteMagnitude }
        guard x > -700 else { return 0 }
        let n = (x / 0.693_147_180_559_945_3).rounded()
        let r = x - n * 0.693_147_180_559_945_3
        var term = 1.0, sum = 1.0
        for k in 1..<30 {
            term *= r / Double(k)
            sum += term
        }
        var scale = 1.0
        if n > 0 { for _ in 0..<Int(n) { scale *= 2 } } else { for _ in 0..<Int(-n) { scale /= 2 } }
        return sum * scale
    }

    static func cosine(_ x: Double) -> Double {
        let twoPi = 2 * Double.pi
        var r = x - (x / twoPi).rounded(.down) * twoPi  // 0..<2pi
        if r > Double.pi { r -= twoPi }  // -pi...pi
        let r2 = r * r
        var term = 1.0, sum = 1.0
        for k in stride(from: 2, through: 40, by: 2) {
            term *= -r2 / Double((k - 1) * k)
            sum += term
        }
        return sum
    }
}

extension WorkloadSpec {
    /// Reads a trace: CSV with a header line naming the columns `submit,gpus,duration,class`
    /// and optionally `priority`, `nodes`, `cpus` and `memory` (any order; class `inference` or
    /// `batch`; times in seconds; `gpus`, `cpus` and `memory` (MB) per node). Errors name the line.
    public static func parseCSV(_ text: String, file: String) throws(TextDiagnostic) -> [SimJob] {
        var jobs: [SimJob] = []
        var columns: [String: Int] = [:]
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) || line.hasPrefix("#") { continue }
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map {
                String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
            }
            func fail(_ message: String) -> TextDiagnostic {
                TextDiagnostic(file: file, location: SourceLocation(line: lineNumber, column: 1), message: message)
            }
            if columns.isEmpty {
                for (i, name) in cells.enumerated() { columns[asciiLowercased(name)] = i }
                for required in ["submit", "gpus", "duration", "class"] where columns[required] == nil {
                    throw fail("header lacks column '\(required)' (expected submit,gpus,duration,class[,priority])")
                }
                continue
            }
            func cell(_ name: String) -> String? { columns[name].flatMap { $0 < cells.count ? cells[$0] : nil } }
            func integer(_ name: String, _ range: ClosedRange<Int64>) throws(TextDiagnostic) -> Int64 {
                guard let text = cell(name), let value = Int64(text), range.contains(value) else {
                    throw fail("\(name) '\(printable(cell(name) ?? ""))' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
                }
                return value
            }
            let submit = try integer("submit", 0...(1 << 40))
            let gpus = try integer("gpus", 1...64)
            let duration = try integer("duration", 1...(1 << 32))
            guard let kind = cell("class").flatMap({ SimJob.Kind(rawValue: asciiLowercased($0)) }) else {
                throw fail("class '\(printable(cell("class") ?? ""))' is neither inference nor batch")
            }
            var priority = kind == .inference ? 10 : 1
            if let text = cell("priority"), !text.isEmpty { priority = Int(try integer("priority", 0...65_535)) }
            var nodes: Int64 = 1, cpus: Int64 = 1, memory: Int64 = 0
            if let text = cell("nodes"), !text.isEmpty { nodes = try integer("nodes", 1...1024) }
            if let text = cell("cpus"), !text.isEmpty { cpus = try integer("cpus", 1...65_535) }
            if let text = cell("memory"), !text.isEmpty { memory = try integer("memory", 0...(1 << 32)) }
            jobs.append(SimJob(submit: submit, gpus: Int(gpus), duration: duration, kind: kind, priority: priority,
                               nodes: Int(nodes), cpus: Int(cpus), memoryMB: memory))
        }
        if columns.isEmpty {
            throw TextDiagnostic(file: file, location: SourceLocation(line: 1, column: 1), message: "empty trace: no header line")
        }
        jobs.sort { $0.submit < $1.submit }
        return jobs
    }
}
