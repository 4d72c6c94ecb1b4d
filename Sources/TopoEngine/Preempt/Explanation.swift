/// What preempt/topo_aware did about one job, from the decision log and (when Slurm still
/// knows the job) its live record: `topo-preempt explain JOBID`.
///
/// For a preemptor: the plan it got (where, the level reached, the victims, the cost and the
/// alternatives turned down), the victims Slurm preempted for it, or why it waits or was left to
/// the base policy. For a victim: who preempted it, on which GPUs, and why it was chosen.
public struct Explanation: Sendable {
    public enum Role: String, Sendable {
        case preemptor, victim, both
        /// No record names the job.
        case none
    }

    public var job: UInt32
    public var role: Role
    /// Human sentences, most important first.
    public var summary: [String]
    /// Every record naming the job (as `job` or `other`), oldest first.
    public var records: [DecisionRecord]
    /// The job as Slurm reports it now (nil: Slurm no longer knows it).
    public var live: LiveFacts?
    /// Its runs as slurmdbd keeps them (`sacct -D`), oldest first; empty when not asked or none.
    public var history: [Run]

    /// One run of the job in slurmdbd: its state and the provenance keys of its AdminComment
    /// (slurmctld sends AdminComment with each run's end).
    public struct Run: Sendable, Equatable {
        public var state: String
        public var start: String
        public var end: String
        public var adminComment: String?

        public init(state: String, start: String, end: String, adminComment: String?) {
            self.state = state
            self.start = start
            self.end = end
            self.adminComment = adminComment
        }

        public var provenance: [String: String] { AdminCommentTag.provenance(adminComment: adminComment) }
    }

    /// What the live record adds: state, the provenance preempt/topo_aware wrote on the job.
    public struct LiveFacts: Sendable, Equatable {
        public var state: String
        public var adminComment: String?
        public var systemComment: String?
        /// Node and GPUs it holds, while it runs.
        public var gpus: [DecisionRecord.Target]
        /// The level those GPUs are aligned at (nil: not known).
        public var reached: AffinityLevel?

        public init(state: String, adminComment: String? = nil, systemComment: String? = nil,
                    gpus: [DecisionRecord.Target] = [], reached: AffinityLevel? = nil) {
            self.state = state
            self.adminComment = adminComment
            self.systemComment = systemComment
            self.gpus = gpus
            self.reached = reached
        }
    }

    public init(job: UInt32, records all: [DecisionRecord], live: LiveFacts?, history: [Run] = []) {
        self.job = job
        self.live = live
        self.history = history
        records = all.filter { $0.job == job || $0.other == job }
        let preempted = records.filter { $0.event == .preempted && $0.job == job }
        let own = records.filter { $0.job == job && $0.event != .preempted }
        let asPreemptor = !own.isEmpty || records.contains { $0.event == .preempted && $0.other == job }
        switch (asPreemptor, !preempted.isEmpty) {
        case (true, true): role = .both
        case (true, false): role = .preemptor
        case (false, true): role = .victim
        case (false, false): role = .none
        }
        summary = []
        if let live {
            let holding = live.gpus.isEmpty ? "" : " on " + live.gpus.map { "\($0.node) gpus=\($0.gpus)" }.joined(separator: " ")
                + (live.reached.map { " (\($0.name)-aligned)" } ?? "")
            summary.append("JobId=\(job) is \(live.state)\(holding).")
        } else {
            summary.append("JobId=\(job) is not known to Slurm any more (finished and purged): from the decision log only.")
        }
        for record in preempted {
            summary.append("Preempted at \(utcTimestamp(record.time)): \(record.message)"
                + (record.lostGPUSeconds.map { "; \($0) GPU-seconds of its run lost" } ?? "") + ".")
        }
        if asPreemptor { explainPreemptor(own) }
        for run in history {
            let keys = run.provenance
            if let by = keys["preempted_by"], run.state.hasPrefix("PREEMPTED") || run.state.hasPrefix("REQUEUE") {
                summary.append("slurmdbd: its run \(run.start) - \(run.end) ended \(run.state): preempted by JobId=\(by) on "
                    + "\(keys["preempted_gpus"] ?? "?"), chosen by \(keys["chosen_by"] ?? "?").")
            } else if let plan = keys["plan"] {
                summary.append("slurmdbd: its run \(run.start) - \(run.end) (\(run.state)) ran on the plan \(plan), \(keys["reached"] ?? "?")-aligned, "
                    + "victims \(keys["victims"]?.split(separator: "+").joined(separator: ",") ?? "?").")
            }
        }
        if role == .none && !history.contains(where: { !$0.provenance.isEmpty }) {
            let keys = AdminCommentTag.provenance(adminComment: live?.adminComment)
            if let by = keys["preempted_by"] {
                summary.append("Its AdminComment says it was preempted by JobId=\(by) on \(keys["preempted_gpus"] ?? "?") "
                    + "at \(keys["preempted_at"].flatMap { Int64($0) }.map(utcTimestamp) ?? "?"), chosen by \(keys["chosen_by"] ?? "?") "
                    + "(the decision log no longer holds the record).")
            } else {
                summary.append("No decision of preempt/topo_aware names this job: it neither preempted nor was preempted while the log was kept.")
            }
        }
    }

    private mutating func explainPreemptor(_ own: [DecisionRecord]) {
        if let plan = own.last(where: { $0.event == .plan }) {
            let targets = plan.targets.map { "\($0.node) gpus=\($0.gpus)" }.joined(separator: " ")
            let level = plan.reached.map { reached in
                guard let required = plan.level, required != reached else { return "\(reached.name)-aligned" }
                return "\(reached.name)-aligned (degraded: \(required.name) required)"
            } ?? "?"
            summary.append("Plan made at \(utcTimestamp(plan.time)) (\(plan.mode?.name ?? "?") mode): \(targets), \(level), "
                + "victims \(plan.victims.isEmpty ? "none" : plan.victims.map(String.init).joined(separator: ","))"
                + (plan.cost.map { ", cost \($0.description)" } ?? "") + (plan.planMicroseconds.map { ", planned in \($0) us" } ?? "") + ".")
            for detail in plan.details { summary.append("  - \(detail)") }
        }
        let victims = records.filter { $0.event == .preempted && $0.other == job }
        if !victims.isEmpty {
            summary.append("Preempted for it: " + victims.map { v in
                "JobId=\(v.job) (\(v.preemptMode ?? "?"), \(v.targets.map { "\($0.node) gpus=\($0.gpus)" }.joined(separator: " ")), chosen by \(v.reason ?? "?"))"
            }.joined(separator: ", ") + ".")
        }
        for record in records where record.event == .takeover && record.other == job {
            summary.append("At \(utcTimestamp(record.time)) JobId=\(record.job), ranked higher, took over the GPUs planned for it; it was planned again.")
        }
        // What it waits for, or why the base policy answers, while it is pending (or when Slurm
        // no longer says).
        guard let last = own.last, live == nil || live?.state == "PENDING" else { return }
        switch last.event {
        case .wait:
            summary.append("Last decision (\(utcTimestamp(last.time))): it waits, \(last.reason ?? "?"): \(last.message).")
        case .fallback:
            summary.append("Last decision (\(utcTimestamp(last.time))): the base policy answers, \(last.reason ?? "?"): \(last.message).")
        case .dropped:
            summary.append("Last decision (\(utcTimestamp(last.time))): its plan was dropped (\(last.reason ?? "?")) and it is planned again.")
        case .released:
            summary.append("Its plan was released at \(utcTimestamp(last.time)): it left the pending queue.")
        case .plan, .executing, .takeover, .preempted, .recordsLost, .stats:
            break
        }
    }
}
