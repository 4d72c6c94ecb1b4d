import Foundation
import Prometheus
import TopoEngine

/// Decision records turned into Prometheus metrics (names, units and label sets are docs/reference.md's
/// "Metrics" list). Fed one record at a time by one thread (the exporter's follower); scrapes read
/// the registry concurrently, which swift-prometheus allows.
///
/// A *preemption* is counted as `PreemptionGrouper` (the engine's, shared with `audit --since`)
/// completes it: the `preempted` records of one preemptor for one plan, or, for the base policy,
/// within the same two seconds; when its victims are all in, two seconds of record time passed,
/// its plan is released, or at `flush(now:)`.
public final class RecordMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry

    let plans: CounterFamily
    let preemptions: CounterFamily
    let affinity: CounterFamily
    let victims: CounterFamily
    let lostGPUSeconds: CounterFamily
    let fallbacks: CounterFamily
    let waits: CounterFamily
    let dropped: CounterFamily
    let takeovers: CounterFamily
    let rebuilds: CounterFamily
    let hookDecisions: CounterFamily
    let disagreements: CounterFamily
    let recordsLost: CounterFamily
    let recordsRead: CounterFamily
    let badRecords: CounterFamily
    let victimsPerPreemption: HistogramFamily
    let planDuration: HistogramFamily
    let hookDuration: HistogramFamily

    /// The plugin's hook histogram bounds (microseconds); the exporter's are these in seconds.
    /// (powers of two from 16 us to 8.4 s, the plugin's `TOPO_PREEMPT_STATS_BUCKETS`).
    public static let hookBucketsMicroseconds: [UInt64] = (0..<20).map { UInt64(1) << (4 + UInt64($0)) }

    private let decoder = JSONDecoder()
    private var grouper = PreemptionGrouper()
    private var lastStats: DecisionRecord.PluginStats?
    /// A stats delta above this many decisions is taken as a new baseline (bounded work).
    static let maxHookDelta: UInt64 = 10_000_000

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let r = registry
        plans = CounterFamily(r, "topo_preempt_plans_total",
                              "New plans of preempt/topo_aware, by mode, the level the job requires and the level the plan reaches.",
                              labels: ["mode", "level", "reached"])
        preemptions = CounterFamily(r, "topo_preempt_preemptions_total",
                                    "Preemptions carried out (victims stopped for a preemptor), by who chose the victims (plan, base-policy), mode and level reached.",
                                    labels: ["chosen_by", "mode", "reached"])
        affinity = CounterFamily(r, "topo_preempt_affinity_total",
                                 "Planned preemptions whose GPUs reach the level the job requires (hit) or not (miss, a degraded best-effort plan).",
                                 labels: ["mode", "result"])
        victims = CounterFamily(r, "topo_preempt_victims_total", "Jobs preempted, by who chose them (plan, base-policy).",
                                labels: ["chosen_by"])
        lostGPUSeconds = CounterFamily(r, "topo_preempt_lost_gpu_seconds_total",
                                       "GPU-seconds of the victims' runs lost to preemption (their GPUs times the time they had run).",
                                       labels: ["chosen_by"])
        fallbacks = CounterFamily(r, "topo_preempt_fallbacks_total", "Decisions left to the base policy, by reason.", labels: ["reason"])
        waits = CounterFamily(r, "topo_preempt_waits_total", "Guaranteed preemptors told to wait (nothing preempted), by reason.",
                              labels: ["reason"])
        dropped = CounterFamily(r, "topo_preempt_plans_dropped_total", "Kept plans dropped before they were carried out, by reason.",
                                labels: ["reason"])
        takeovers = CounterFamily(r, "topo_preempt_takeovers_total", "Plans given up to a higher-ranked preemptor.")
        rebuilds = CounterFamily(r, "topo_preempt_index_rebuilds_total", "Rebuilds of the plugin's job index, by reason.", labels: ["reason"])
        hookDecisions = CounterFamily(r, "topo_preempt_hook_decisions_total", "Preemption hook calls decided by preempt/topo_aware.")
        disagreements = CounterFamily(r, "topo_preempt_index_disagreements_total",
                                      "Checks where the plugin's job index disagreed with slurmctld's job list.")
        recordsLost = CounterFamily(r, "topo_preempt_records_lost_total",
                                    "Decision records the plugin could not write (full disk, queue full).")
        recordsRead = CounterFamily(r, "topo_preempt_exporter_records_total", "Decision records read by the exporter.")
        badRecords = CounterFamily(r, "topo_preempt_exporter_bad_records_total",
                                   "Lines of the decision log the exporter could not read as a record.")
        victimsPerPreemption = HistogramFamily(r, "topo_preempt_victims_per_preemption", "Victims per preemption.",
                                               buckets: [1, 2, 3, 4, 6, 8, 12, 16, 32])
        planDuration = HistogramFamily(r, "topo_preempt_plan_duration_seconds", "Time the planner took for a new plan.",
                                       buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1])
        hookDuration = HistogramFamily(r, "topo_preempt_hook_duration_seconds",
                                       "Time the preemption hook took to decide (snapshot, planner, answer), as the plugin measures it.",
                                       buckets: Self.hookBucketsMicroseconds.map { Double($0) / 1_000_000 })
        for family in [takeovers, hookDecisions, disagreements, recordsLost, recordsRead, badRecords] { family.touch() }
        for chosenBy in ["plan", "base-policy"] {
            victims.touch(chosenBy)
            lostGPUSeconds.touch(chosenBy)
        }
        for mode in PlacementMode.allCases {
            affinity.touch(mode.name, "hit")
            affinity.touch(mode.name, "miss")
        }
    }

    /// A line of the decision log.
    public func apply(line: ArraySlice<UInt8>) {
        guard let record = try? decoder.decode(DecisionRecord.self, from: Data(line)) else {
            badRecords.counter().increment()
            return
        }
        recordsRead.counter().increment()
        apply(record)
    }

    public func apply(_ record: DecisionRecord) {
        for preemption in grouper.add(record) { count(preemption) }
        switch record.event {
        case .plan:
            let level = record.level?.name ?? "unknown", reached = record.reached?.name ?? "unknown"
            plans.counter(record.mode?.name ?? "unknown", level, reached).increment()
            if let micros = record.planMicroseconds { planDuration.histogram().record(Double(micros) / 1_000_000) }
        case .preempted:
            let chosenBy = record.reason == "plan" ? "plan" : "base-policy"
            victims.counter(chosenBy).increment()
            // A float counter: an absurd value in a record cannot wrap it negative.
            if let lost = record.lostGPUSeconds, lost > 0 { lostGPUSeconds.counter(chosenBy).increment(by: Double(lost)) }
        case .fallback:
            fallbacks.counter(record.reason ?? "unknown").increment()
        case .wait:
            waits.counter(record.reason ?? "unknown").increment()
        case .dropped:
            dropped.counter(record.reason ?? "unknown").increment()
        case .takeover:
            takeovers.counter().increment()
        case .recordsLost:
            recordsLost.counter().increment(by: Int64(clamping: record.count ?? 0))
        case .stats:
            if let stats = record.stats { apply(stats) }
        case .executing, .released:
            break
        }
    }

    /// Counts the preemptions whose records are complete by record time `now` (two seconds later).
    public func flush(now: Int64) {
        for preemption in grouper.flush(now: now) { count(preemption) }
    }

    private func count(_ p: PreemptionGrouper.Preemption) {
        let mode = p.chosenBy == "plan" ? p.mode?.name ?? "unknown" : "base-policy"
        preemptions.counter(p.chosenBy, mode, p.chosenBy == "plan" ? p.reached?.name ?? "unknown" : "unknown").increment()
        victimsPerPreemption.histogram().record(Double(p.victimCount))
        if let hit = p.hit { affinity.counter(mode, hit ? "hit" : "miss").increment() }
    }

    /// The plugin's counters are cumulative since slurmctld started: the exporter adds what grew
    /// since the last stats record; a counter that went down means slurmctld restarted (all new).
    private func apply(_ stats: DecisionRecord.PluginStats) {
        let previous = lastStats.flatMap { $0.decisions <= stats.decisions ? $0 : nil } ?? DecisionRecord.PluginStats()
        lastStats = stats
        let delta = stats.decisions - previous.decisions
        guard delta <= Self.maxHookDelta else { return }  // a new baseline: more than one interval's worth
        hookDecisions.counter().increment(by: Int64(delta))
        if stats.disagreements >= previous.disagreements {
            disagreements.counter().increment(by: Int64(clamping: stats.disagreements - previous.disagreements))
        }
        for (reason, value) in stats.rebuilds where value > previous.rebuilds[reason] ?? 0 {
            rebuilds.counter(reason).increment(by: Int64(clamping: value - (previous.rebuilds[reason] ?? 0)))
        }
        recordHook(previous: previous, now: stats)
    }

    /// The hook histogram's growth, recorded into the exporter's histogram bucket by bucket: each
    /// new decision at a value inside its bucket, spread so that the sum grows by what the
    /// plugin's sum grew (both the counts and the sum are the plugin's).
    private func recordHook(previous: DecisionRecord.PluginStats, now: DecisionRecord.PluginStats) {
        func cumulative(_ stats: DecisionRecord.PluginStats) -> [UInt64] {
            let byBound = Dictionary(stats.buckets.map { ($0.le, $0.count) }, uniquingKeysWith: { a, _ in a })
            return Self.hookBucketsMicroseconds.map { byBound[$0] ?? 0 }
        }
        let after = cumulative(now), before = cumulative(previous)
        var counts: [(low: Double, high: Double, count: UInt64)] = []
        var lower: UInt64 = 0
        for i in Self.hookBucketsMicroseconds.indices {
            let a = after[i] - min(after[i], i > 0 ? after[i - 1] : 0)
            let b = before[i] - min(before[i], i > 0 ? before[i - 1] : 0)
            if a > b { counts.append((Double(lower), Double(Self.hookBucketsMicroseconds[i]), a - b)) }
            lower = Self.hookBucketsMicroseconds[i]
        }
        // Decisions above the last bound: between it and the plugin's maximum.
        let inBuckets = counts.reduce(0) { $0 + $1.count }
        let total = now.decisions - previous.decisions
        if total > inBuckets { counts.append((Double(lower), Double(max(lower, now.maxMicroseconds)), total - inBuckets)) }
        let low = counts.reduce(0.0) { $0 + $1.low * Double($1.count) }
        let high = counts.reduce(0.0) { $0 + $1.high * Double($1.count) }
        let sum = Double(now.sumMicroseconds - min(now.sumMicroseconds, previous.sumMicroseconds))
        let t = high > low ? min(1, max(0, (sum - low) / (high - low))) : 1
        let histogram = hookDuration.histogram()
        for bucket in counts {
            // Inside (low, high]: a value on the lower bound would count in the bucket below.
            let value = max((bucket.low + t * (bucket.high - bucket.low)) / 1_000_000, (bucket.low / 1_000_000).nextUp)
            for _ in 0..<bucket.count { histogram.record(value) }
        }
    }
}
