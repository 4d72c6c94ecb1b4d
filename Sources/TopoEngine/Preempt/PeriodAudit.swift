/// Preemptions as the decision records tell them, one per preemptor and moment: the `preempted`
/// records of one preemptor for one plan (chosen by the plan), or, for the base policy, those
/// within two seconds of record time. The exporter's counters and `audit --since` both count
/// through it. A preemption is complete when all its plan's victims are in, when a later record
/// is two seconds on, when its preemptor's plan is released, or at `flush`.
public struct PreemptionGrouper: Sendable {
    public struct Preemption: Sendable, Equatable {
        public var preemptor: UInt32
        public var time: Int64
        /// `plan` or `base-policy`.
        public var chosenBy: String
        public var mode: PlacementMode?
        public var level: AffinityLevel?
        public var reached: AffinityLevel?
        public var victims: Set<UInt32>
        public var planVictims: [UInt32]
        public var lostGPUSeconds: Int64

        /// For a planned preemption: its GPUs reach the level the job requires; nil otherwise.
        public var hit: Bool? {
            guard chosenBy == "plan", let level, let reached else { return nil }
            return reached.satisfies(level)
        }

        public var victimCount: Int { max(victims.count, planVictims.count) }
    }

    struct Planned {
        var mode: PlacementMode?
        var level: AffinityLevel?
        var reached: AffinityLevel?
    }

    private var planned: [UInt32: Planned] = [:]
    private var open: [UInt32: Preemption] = [:]
    /// Plans already counted (preemptor, its victims): a victim preempted later for the same plan
    /// is not a new preemption.
    private var counted: [UInt32: [UInt32]] = [:]
    /// Bound on the jobs tracked (a preemptor that never leaves the queue is forgotten).
    static let maxTracked = 100_000

    public init() {}

    /// Takes one record; returns the preemptions it completes.
    public mutating func add(_ record: DecisionRecord) -> [Preemption] {
        var done = close(before: record.time, except: record.event == .preempted ? record.other : nil)
        switch record.event {
        case .plan:
            if planned.count >= Self.maxTracked, planned[record.job] == nil { planned = [:] }
            planned[record.job] = Planned(mode: record.mode, level: record.level, reached: record.reached)
        case .released:
            planned[record.job] = nil
            counted[record.job] = nil
            if let group = open.removeValue(forKey: record.job) { done.append(finish(group)) }
        case .preempted:
            done += preempted(record)
        default:
            break
        }
        return done
    }

    /// Completes the open preemptions two seconds older than `now` (record time).
    public mutating func flush(now: Int64) -> [Preemption] { close(before: now, except: nil) }

    /// Completes every open preemption (the end of a period's records).
    public mutating func flushAll() -> [Preemption] {
        let all = open.values.sorted { ($0.time, $0.preemptor) < ($1.time, $1.preemptor) }
        open = [:]
        return all.map { finish($0) }
    }

    private mutating func preempted(_ record: DecisionRecord) -> [Preemption] {
        guard let preemptor = record.other else { return [] }
        let chosenBy = record.reason == "plan" ? "plan" : "base-policy"
        if chosenBy == "plan", counted[preemptor] == record.victims { return [] }
        var done: [Preemption] = []
        if var group = open[preemptor], group.chosenBy == chosenBy, chosenBy == "base-policy" || group.planVictims == record.victims {
            group.victims.insert(record.job)
            group.lostGPUSeconds = saturatingSum(group.lostGPUSeconds, max(0, record.lostGPUSeconds ?? 0))
            open[preemptor] = group
        } else {
            if let group = open.removeValue(forKey: preemptor) { done.append(finish(group)) }
            let known = planned[preemptor]
            let plan = chosenBy == "plan"
            open[preemptor] = Preemption(preemptor: preemptor, time: record.time, chosenBy: chosenBy,
                                         mode: plan ? record.mode ?? known?.mode : nil,
                                         level: plan ? record.level ?? known?.level : nil,
                                         reached: plan ? record.reached ?? known?.reached : nil,
                                         victims: [record.job], planVictims: plan ? record.victims : [],
                                         lostGPUSeconds: max(0, record.lostGPUSeconds ?? 0))
        }
        if let group = open[preemptor], group.chosenBy == "plan", !group.planVictims.isEmpty,
           Set(group.planVictims).isSubset(of: group.victims) {
            open[preemptor] = nil
            done.append(finish(group))
        }
        return done
    }

    private mutating func close(before now: Int64, except: UInt32?) -> [Preemption] {
        guard !open.isEmpty else { return [] }
        var done: [Preemption] = []
        for (preemptor, group) in open where preemptor != except && now - group.time >= 2 {
            open[preemptor] = nil
            done.append(finish(group))
        }
        return done.sorted { ($0.time, $0.preemptor) < ($1.time, $1.preemptor) }
    }

    private mutating func finish(_ group: Preemption) -> Preemption {
        if group.chosenBy == "plan" {
            if counted.count >= Self.maxTracked { counted = [:] }
            counted[group.preemptor] = group.planVictims
        }
        return group
    }
}

/// `topo-preempt audit --since`: what preempt/topo_aware did over a period, from its decision
/// records: preemptions (by who chose the victims, by mode), the affinity hit rate of planned
/// ones, victims and GPU-hours lost per preemption, guaranteed jobs told to wait, fallbacks to
/// the base policy; in total and per time bucket. Records are added in time order (the log's
/// order); those outside [from, to) only complete what began inside.
public struct PeriodAudit: Sendable, Equatable {
    public struct Bucket: Sendable, Equatable {
        public var start: Int64
        public var preemptions = 0
        public var hits = 0
        public var misses = 0
        public var victims = 0
        public var lostGPUSeconds: Int64 = 0
        public var waits = 0
        public var fallbacks = 0

        public init(start: Int64) { self.start = start }
    }

    public var from: Int64
    public var to: Int64
    public var bucketSeconds: Int64
    public var preemptions = 0
    public var byChosen: [String: Int] = [:]
    public var byMode: [String: Int] = [:]
    public var hits = 0
    public var misses = 0
    /// Victims and the GPU-seconds their runs lost (every `preempted` record in the period).
    public var victims = 0
    public var lostGPUSeconds: Int64 = 0
    public var plans = 0
    public var waits: [String: Int] = [:]
    public var waitingJobs = 0
    public var fallbacks: [String: Int] = [:]
    public var dropped: [String: Int] = [:]
    public var recordsLost: UInt64 = 0
    /// The first and last record time seen inside the period (nil: none).
    public var firstRecord: Int64?
    public var lastRecord: Int64?
    public var buckets: [Bucket]

    private var grouper = PreemptionGrouper()
    private var waited = Set<UInt32>()
    /// At most this many buckets (a narrower bucket over a long period is widened).
    public static let maxBuckets = 10_000

    public static func == (a: PeriodAudit, b: PeriodAudit) -> Bool {
        a.from == b.from && a.to == b.to && a.bucketSeconds == b.bucketSeconds && a.preemptions == b.preemptions
            && a.byChosen == b.byChosen && a.byMode == b.byMode && a.hits == b.hits && a.misses == b.misses
            && a.victims == b.victims && a.lostGPUSeconds == b.lostGPUSeconds && a.plans == b.plans && a.waits == b.waits
            && a.waitingJobs == b.waitingJobs && a.fallbacks == b.fallbacks && a.dropped == b.dropped
            && a.recordsLost == b.recordsLost && a.buckets == b.buckets
    }

    public init(from: Int64, to: Int64, bucketSeconds: Int64) {
        self.from = from
        self.to = max(from + 1, to)
        let span = self.to - from
        let width = max(1, bucketSeconds, (span + Int64(Self.maxBuckets) - 1) / Int64(Self.maxBuckets))
        self.bucketSeconds = width
        buckets = stride(from: from, to: self.to, by: Int(width)).map { Bucket(start: $0) }
    }

    public var hitRate: Double? { hits + misses == 0 ? nil : Double(hits) / Double(hits + misses) }

    private func bucket(_ time: Int64) -> Int? {
        guard time >= from, time < to else { return nil }
        let i = Int((time - from) / bucketSeconds)
        return buckets.indices.contains(i) ? i : nil
    }

    public mutating func add(_ record: DecisionRecord) {
        for p in grouper.add(record) { count(p) }
        guard let b = bucket(record.time) else { return }
        firstRecord = min(firstRecord ?? record.time, record.time)
        lastRecord = max(lastRecord ?? record.time, record.time)
        switch record.event {
        case .plan: plans += 1
        case .preempted:
            victims += 1
            let lost = max(0, record.lostGPUSeconds ?? 0)
            lostGPUSeconds = saturatingSum(lostGPUSeconds, lost)
            buckets[b].victims += 1
            buckets[b].lostGPUSeconds = saturatingSum(buckets[b].lostGPUSeconds, lost)
        case .wait:
            waits[record.reason ?? "unknown", default: 0] += 1
            buckets[b].waits += 1
            if waited.count < PreemptionGrouper.maxTracked, waited.insert(record.job).inserted { waitingJobs += 1 }
        case .fallback:
            fallbacks[record.reason ?? "unknown", default: 0] += 1
            buckets[b].fallbacks += 1
        case .dropped: dropped[record.reason ?? "unknown", default: 0] += 1
        case .recordsLost: recordsLost += record.count ?? 0
        default: break
        }
    }

    /// Counts what is still open (call once, after the last record).
    public mutating func finish() {
        for p in grouper.flushAll() { count(p) }
    }

    private mutating func count(_ p: PreemptionGrouper.Preemption) {
        guard let b = bucket(p.time) else { return }
        preemptions += 1
        buckets[b].preemptions += 1
        byChosen[p.chosenBy, default: 0] += 1
        byMode[p.mode?.name ?? "base-policy", default: 0] += 1
        switch p.hit {
        case true?:
            hits += 1
            buckets[b].hits += 1
        case false?:
            misses += 1
            buckets[b].misses += 1
        case nil: break
        }
    }

    /// A time as the audit's options give it: `now`, a time that long ago (`90m`, `24h`, `7d`,
    /// `30s`), or a UTC date and time (`2026-12-01`, `2026-12-01T10:00`, `2026-12-01T10:00:00Z`,
    /// a space for the `T`). Nil when it is none of these.
    public static func parseTime(_ text: String, now: Int64) -> Int64? {
        let t = Array(text.utf8)
        if text == "now" { return now }
        if let unit = t.last, let factor: Int64 = [UInt8(ascii: "s"): 1, UInt8(ascii: "m"): 60, UInt8(ascii: "h"): 3600,
                                                   UInt8(ascii: "d"): 86_400, UInt8(ascii: "w"): 604_800][unit],
           t.count > 1, t.count <= 10, t.dropLast().allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int64(String(decoding: t.dropLast(), as: UTF8.self)) {
            let (product, overflow) = n.multipliedReportingOverflow(by: factor)
            return overflow ? nil : now - product
        }
        var digits = t
        if digits.last == UInt8(ascii: "Z") { digits.removeLast() }
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= digits.count, digits[range].allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            return Int64(String(decoding: digits[range], as: UTF8.self))
        }
        guard digits.count >= 10, digits[4] == UInt8(ascii: "-"), digits[7] == UInt8(ascii: "-"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        var hour: Int64 = 0, minute: Int64 = 0, second: Int64 = 0
        if digits.count > 10 {
            guard digits[10] == UInt8(ascii: "T") || digits[10] == UInt8(ascii: " "), digits.count == 16 || digits.count == 19,
                  digits[13] == UInt8(ascii: ":"), let h = number(11..<13), let m = number(14..<16), h < 24, m < 60 else { return nil }
            (hour, minute) = (h, m)
            if digits.count == 19 {
                guard digits[16] == UInt8(ascii: ":"), let s = number(17..<19), s < 60 else { return nil }
                second = s
            }
        }
        // Days from the civil date (H. Hinnant's algorithm, the inverse of `utcTimestamp`).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second
        // A day the month does not have (2026-02-30) does not round-trip.
        guard utcTimestamp(seconds).hasPrefix(String(decoding: t[0..<10], as: UTF8.self)) else { return nil }
        return seconds
    }
}

/// `a + b`, or Int64.max where that overflows (GPU-seconds from records are not trusted to be small).
func saturatingSum(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? Int64.max : Int64.min) : sum
}
