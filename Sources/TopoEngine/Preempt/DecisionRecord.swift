/// One decision of preempt/topo_aware as a structured record: a line of the decision log
/// (`DecisionLog=` in topo_aware.conf), for `topo-preempt explain`, the exporter and audits.
///
/// Records are made where the decision's log line is made, and as rarely: a plan when it is new,
/// a fallback or a wait the first time it is said for the job (the same as its `info` line).
/// Rendered as one JSON object per line (`jsonLine`); the keys are a documented contract
/// (docs/reference.md, "Decision records"): new keys may be added, none is renamed.
public struct DecisionRecord: Sendable, Equatable {
    public enum Event: String, Sendable, CaseIterable {
        /// A new plan: the victims chosen for `job`, where it lands, the level reached, the cost.
        case plan
        /// Slurm has started to carry out the kept plan of `job` (a victim stopped running).
        case executing
        /// The kept plan of `job` no longer holds (`reason`); the job is planned again.
        case dropped
        /// `job` (higher-ranked) took over the GPUs planned for `other`, which is planned again.
        case takeover
        /// `job` left the pending queue (started, cancelled, held): its plan is released.
        case released
        /// Guaranteed mode: nothing is preempted for `job`, which waits (`reason`).
        case wait
        /// The base policy answers for `job` (`reason`).
        case fallback
        /// Slurm preempted `job` (the victim) for `other` (the preemptor); `reason` says who chose
        /// it: `plan` (the preemptor's plan), `base-policy`.
        case preempted
        /// The writer could not write `count` records (full disk, queue full); written once it can.
        case recordsLost = "records-lost"
        /// preempt/topo_aware's counters since slurmctld started (`stats`), every StatsInterval
        /// and at shutdown: what its summary log line says.
        case stats
    }

    /// The C plugin's counters since it started, and its deciding times (the whole hook's
    /// decision: snapshot, planner, answer) as a cumulative histogram.
    public struct PluginStats: Sendable, Equatable {
        public var decisions: UInt64 = 0
        public var kept: UInt64 = 0
        public var partial: UInt64 = 0
        public var full: UInt64 = 0
        public var disagreements: UInt64 = 0
        /// Job index rebuilds by reason (start, reconfigure, period, disagreement, overflow).
        public var rebuilds: [String: UInt64] = [:]
        public var indexedJobs: UInt64 = 0
        public var indexedGPUJobs: UInt64 = 0
        public var p50Microseconds: UInt64 = 0
        public var p99Microseconds: UInt64 = 0
        public var maxMicroseconds: UInt64 = 0
        public var sumMicroseconds: UInt64 = 0
        /// (upper bound in microseconds, decisions that took at most that), ascending.
        public var buckets: [(le: UInt64, count: UInt64)] = []

        public init() {}

        public static func == (a: PluginStats, b: PluginStats) -> Bool {
            a.decisions == b.decisions && a.kept == b.kept && a.partial == b.partial && a.full == b.full
                && a.disagreements == b.disagreements && a.rebuilds == b.rebuilds && a.indexedJobs == b.indexedJobs
                && a.indexedGPUJobs == b.indexedGPUJobs && a.p50Microseconds == b.p50Microseconds
                && a.p99Microseconds == b.p99Microseconds && a.maxMicroseconds == b.maxMicroseconds
                && a.sumMicroseconds == b.sumMicroseconds && a.buckets.map(\.le) == b.buckets.map(\.le)
                && a.buckets.map(\.count) == b.buckets.map(\.count)
        }

        func json() -> String {
            var o = JSONObjectWriter()
            o.number("decisions", decisions)
            o.number("kept", kept)
            o.number("partial", partial)
            o.number("full", full)
            o.number("disagreements", disagreements)
            o.raw("rebuilds", "{" + rebuilds.keys.sorted().map { "\(JSONObjectWriter.quoted($0)):\(rebuilds[$0] ?? 0)" }.joined(separator: ",") + "}")
            o.number("indexed_jobs", indexedJobs)
            o.number("indexed_gpu_jobs", indexedGPUJobs)
            var hook = JSONObjectWriter()
            hook.number("p50", p50Microseconds)
            hook.number("p99", p99Microseconds)
            hook.number("max", maxMicroseconds)
            hook.number("sum", sumMicroseconds)
            hook.raw("buckets", "[" + buckets.map { "[\($0.le),\($0.count)]" }.joined(separator: ",") + "]")
            o.raw("hook_us", hook.finish())
            return o.finish()
        }
    }

    /// One node of a plan: the GPUs the job is expected to get there.
    public struct Target: Sendable, Equatable {
        public var node: String
        public var gpus: GPUSet
        public init(node: String, gpus: GPUSet) {
            self.node = node
            self.gpus = gpus
        }
    }

    public var event: Event
    /// Seconds since the epoch (slurmctld's clock at the decision).
    public var time: Int64
    public var job: UInt32
    /// The other job of a `takeover` (the loser) or of `preempted` (the preemptor).
    public var other: UInt32?
    /// Machine-readable reason (`fallback`, `wait`, `dropped`): a short kebab-case code.
    public var reason: String?
    /// The human sentence (the log line without the plugin's prefix).
    public var message: String
    public var mode: PlacementMode?
    /// The level the job's class requires.
    public var level: AffinityLevel?
    /// The level the plan reaches (below `level` only for a degraded best-effort plan).
    public var reached: AffinityLevel?
    /// Multi-node plans on a cluster with blocks (switches): the block or leaf switch holding
    /// all the plan's nodes (`block`, `switch` keys), or which kind it spans (`across`).
    public var domain: NodeDomain?
    public var targets: [Target] = []
    public var victims: [UInt32] = []
    public var cost: PlanCost?
    /// The cost order the plan was chosen by (`CostOrder=`).
    public var costOrder: [CostCriterion]?
    /// The rough-work tolerance it was chosen with, when the order has `rough-work`.
    public var roughWorkTolerance: RoughWorkTolerance?
    /// Microseconds the planner took, when it ran.
    public var planMicroseconds: UInt64?
    /// The plan's reasons: each victim set, Slurm's expected pick, the alternatives turned down
    /// and why, the cost against the other candidate nodes.
    public var details: [String] = []
    /// `preempted`: Slurm's PreemptMode for the victim (REQUEUE, CANCEL, ...), and the GPU-seconds
    /// of its run that are lost (its GPUs times the time since it started).
    public var preemptMode: String?
    public var lostGPUSeconds: Int64?
    /// `records-lost`: how many.
    public var count: UInt64?
    /// `stats`: the plugin's counters.
    public var stats: PluginStats?

    public init(_ event: Event, time: Int64, job: UInt32, message: String, reason: String? = nil) {
        self.event = event
        self.time = time
        self.job = job
        self.message = message
        self.reason = reason
    }

    /// The record of a new plan.
    public init(plan: Plan, time: Int64, job: UInt32, mode: PlacementMode, micros: UInt64, message: String) {
        self.init(.plan, time: time, job: job, message: message)
        self.mode = mode
        self.level = plan.request.level
        self.reached = plan.level
        self.domain = plan.domain
        self.targets = plan.nodes.map { node in
            Target(node: node.node, gpus: node.expectedGPUs.reduce(GPUSet()) { $0.union($1) })
        }
        self.victims = plan.victims
        self.cost = plan.cost
        self.planMicroseconds = micros
        self.details = plan.reasons
    }

    /// The record as one line of JSON (no newline), keys in a fixed order, `sequence` first when
    /// given (the writer numbers the lines it writes).
    public func jsonLine(sequence: UInt64? = nil) -> String {
        var out = JSONObjectWriter()
        if let sequence { out.number("seq", sequence) }
        out.number("time", time)
        out.string("event", event.rawValue)
        out.number("job", job)
        if let other { out.number("other", other) }
        if let reason { out.string("reason", reason) }
        if let mode { out.string("mode", mode.name) }
        if let level { out.string("level", level.name) }
        if let reached { out.string("reached", reached.name) }
        if let level, let reached { out.bool("degraded", reached > level) }
        if let domain {
            if let name = domain.name { out.string(domain.kind.rawValue, name) } else { out.string("across", domain.kind.plural) }
        }
        if !targets.isEmpty {
            out.raw("targets", "[" + targets.map { t in
                var o = JSONObjectWriter()
                o.string("node", t.node)
                o.string("gpus", t.gpus.description)
                return o.finish()
            }.joined(separator: ",") + "]")
        }
        if !victims.isEmpty || event == .plan { out.raw("victims", "[" + victims.map(String.init).joined(separator: ",") + "]") }
        if let cost {
            var o = JSONObjectWriter()
            o.number("victims", cost.victims)
            if let prio = cost.maxPriority { o.number("priority", prio) }
            o.number("lost_gpu_seconds", cost.gpuSeconds)
            o.number("collateral_gpus", cost.collateral)
            out.raw("cost", o.finish())
        }
        if let costOrder { out.string("cost_order", CostCriterion.text(costOrder)) }
        if let roughWorkTolerance { out.string("rough_work_tolerance", roughWorkTolerance.description) }
        if let planMicroseconds { out.number("plan_us", planMicroseconds) }
        if let preemptMode { out.string("preempt_mode", preemptMode) }
        if let lostGPUSeconds { out.number("lost_gpu_seconds", lostGPUSeconds) }
        if let count { out.number("count", count) }
        if let stats { out.raw("stats", stats.json()) }
        out.string("message", message)
        if !details.isEmpty { out.raw("details", "[" + details.map(JSONObjectWriter.quoted).joined(separator: ",") + "]") }
        return out.finish()
    }
}

/// A JSON object written key by key (the engine has no Foundation). Strings are escaped as
/// RFC 8259 asks: quote, backslash and control characters; everything else is kept as UTF-8.
struct JSONObjectWriter {
    private var text = "{"
    private var first = true

    private mutating func key(_ key: String) {
        if !first { text += "," }
        first = false
        text += Self.quoted(key) + ":"
    }

    mutating func string(_ k: String, _ value: String) {
        key(k)
        text += Self.quoted(value)
    }

    mutating func number<T: BinaryInteger>(_ k: String, _ value: T) {
        key(k)
        text += String(value)
    }

    mutating func bool(_ k: String, _ value: Bool) {
        key(k)
        text += value ? "true" : "false"
    }

    mutating func raw(_ k: String, _ json: String) {
        key(k)
        text += json
    }

    func finish() -> String { text + "}" }

    static func quoted(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

// MARK: - Reading records back (`topo-preempt explain`, audits)

extension DecisionRecord: Decodable {
    enum CodingKeys: String, CodingKey {
        case time, event, job, other, reason, mode, level, reached, targets, victims, cost, message, details, count, stats
        case block, leafSwitch = "switch", across
        case planMicroseconds = "plan_us", preemptMode = "preempt_mode", lostGPUSeconds = "lost_gpu_seconds"
        case costOrder = "cost_order", roughWorkTolerance = "rough_work_tolerance"
    }

    enum CostKeys: String, CodingKey {
        case victims, priority
        case gpuSeconds = "lost_gpu_seconds", collateral = "collateral_gpus"
    }

    enum TargetKeys: String, CodingKey { case node, gpus }

    enum StatsKeys: String, CodingKey {
        case decisions, kept, partial, full, disagreements, rebuilds
        case indexedJobs = "indexed_jobs", indexedGPUJobs = "indexed_gpu_jobs", hook = "hook_us"
    }

    enum HookKeys: String, CodingKey { case p50, p99, max, sum, buckets }

    /// A line of the decision log; unknown keys are ignored (newer writers may add some).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .event)
        guard let event = Event(rawValue: name) else {
            throw DecodingError.dataCorruptedError(forKey: .event, in: c, debugDescription: "unknown event '\(name)'")
        }
        self.init(event, time: try c.decode(Int64.self, forKey: .time), job: try c.decode(UInt32.self, forKey: .job),
                  message: try c.decodeIfPresent(String.self, forKey: .message) ?? "",
                  reason: try c.decodeIfPresent(String.self, forKey: .reason))
        other = try c.decodeIfPresent(UInt32.self, forKey: .other)
        func named<T>(_ key: CodingKeys, _ make: (String) -> T?) throws -> T? {
            guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let value = make(text) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "unknown \(key.stringValue) '\(text)'")
            }
            return value
        }
        mode = try named(.mode, PlacementMode.init(name:))
        level = try named(.level, AffinityLevel.init(name:))
        reached = try named(.reached, AffinityLevel.init(name:))
        if let name = try c.decodeIfPresent(String.self, forKey: .block) {
            domain = NodeDomain(kind: .block, name: name)
        } else if let name = try c.decodeIfPresent(String.self, forKey: .leafSwitch) {
            domain = NodeDomain(kind: .leafSwitch, name: name)
        } else {
            domain = try named(.across) { text in
                [NodeDomain.Kind.block, .leafSwitch].first { $0.plural == text }.map { NodeDomain(kind: $0, name: nil) }
            }
        }
        if c.contains(.targets) {
            var list = try c.nestedUnkeyedContainer(forKey: .targets)
            while !list.isAtEnd {
                let t = try list.nestedContainer(keyedBy: TargetKeys.self)
                let text = try t.decode(String.self, forKey: .gpus)
                guard let indices = try? RangeList.parse(text, maxValue: GPUSet.capacity - 1) else {
                    throw DecodingError.dataCorruptedError(forKey: .gpus, in: t, debugDescription: "GPUs '\(text)' are not a range list")
                }
                targets.append(Target(node: try t.decode(String.self, forKey: .node), gpus: GPUSet(indices)))
            }
        }
        victims = try c.decodeIfPresent([UInt32].self, forKey: .victims) ?? []
        if c.contains(.cost) {
            let k = try c.nestedContainer(keyedBy: CostKeys.self, forKey: .cost)
            cost = PlanCost(maxPriority: try k.decodeIfPresent(Int.self, forKey: .priority), victims: try k.decode(Int.self, forKey: .victims),
                            gpuSeconds: try k.decode(Int64.self, forKey: .gpuSeconds), collateral: try k.decode(Int.self, forKey: .collateral),
                            victimIDs: victims.sorted())
        }
        costOrder = try named(.costOrder) { text in try? CostCriterion.parseOrder(text).get() }
        roughWorkTolerance = try named(.roughWorkTolerance, RoughWorkTolerance.init)
        planMicroseconds = try c.decodeIfPresent(UInt64.self, forKey: .planMicroseconds)
        details = try c.decodeIfPresent([String].self, forKey: .details) ?? []
        preemptMode = try c.decodeIfPresent(String.self, forKey: .preemptMode)
        lostGPUSeconds = try c.decodeIfPresent(Int64.self, forKey: .lostGPUSeconds)
        count = try c.decodeIfPresent(UInt64.self, forKey: .count)
        if c.contains(.stats) {
            let k = try c.nestedContainer(keyedBy: StatsKeys.self, forKey: .stats)
            var s = PluginStats()
            s.decisions = try k.decode(UInt64.self, forKey: .decisions)
            s.kept = try k.decode(UInt64.self, forKey: .kept)
            s.partial = try k.decode(UInt64.self, forKey: .partial)
            s.full = try k.decode(UInt64.self, forKey: .full)
            s.disagreements = try k.decode(UInt64.self, forKey: .disagreements)
            s.rebuilds = try k.decode([String: UInt64].self, forKey: .rebuilds)
            s.indexedJobs = try k.decode(UInt64.self, forKey: .indexedJobs)
            s.indexedGPUJobs = try k.decode(UInt64.self, forKey: .indexedGPUJobs)
            let h = try k.nestedContainer(keyedBy: HookKeys.self, forKey: .hook)
            s.p50Microseconds = try h.decode(UInt64.self, forKey: .p50)
            s.p99Microseconds = try h.decode(UInt64.self, forKey: .p99)
            s.maxMicroseconds = try h.decode(UInt64.self, forKey: .max)
            s.sumMicroseconds = try h.decode(UInt64.self, forKey: .sum)
            s.buckets = try h.decode([[UInt64]].self, forKey: .buckets).compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
            stats = s
        }
    }
}

/// Seconds since the epoch as `2026-12-02T18:41:29Z` (UTC; the engine has no Foundation).
public func utcTimestamp(_ seconds: Int64) -> String {
    let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    let rest = seconds - days * 86_400
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(year)-\(two(month))-\(two(day))T\(two(rest / 3600)):\(two(rest % 3600 / 60)):\(two(rest % 60))Z"
}
