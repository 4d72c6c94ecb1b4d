/// What a job submission looks like to the classifier: the parts of Slurm's `job_desc_msg_t`
/// that decide its class.
public struct SubmittedJob: Sendable, Equatable {
    /// Requested partitions in order (`-p a,b`); empty when unknown (no `-p` and no default).
    public var partitions: [String]
    /// Requested QOS; nil when none was given (the association default applies later).
    public var qos: String?
    /// Raw `--gpu-affinity` value from the job's SPANK environment, nil when not given.
    public var affinityOverride: String?

    public init(partitions: [String], qos: String? = nil, affinityOverride: String? = nil) {
        self.partitions = partitions
        self.qos = qos
        self.affinityOverride = affinityOverride
    }

    /// Splits Slurm's comma-separated partition field; empty names are dropped.
    public static func partitionList(_ field: String?) -> [String] {
        guard let field else { return [] }
        return field.split(separator: ",").map(String.init)
    }
}

/// The class a job falls in, as recorded in its AdminComment and read by the preempt plugin.
public enum JobClassification: Sendable, Equatable {
    /// A latency-sensitive job whose preemptions must free GPUs aligned at `level`.
    case preemptor(className: String, level: AffinityLevel, mode: PlacementMode, userOverride: Bool)
    /// A job that may be preempted (requeued) to make room for preemptors.
    case preemptible(className: String)
    /// No class line matched: stock Slurm handles the job.
    case unmanaged

    public var className: String? {
        switch self {
        case let .preemptor(name, _, _, _), let .preemptible(name): name
        case .unmanaged: nil
        }
    }

    /// One line for logs and the CLI, e.g. `preemptor inference level=nvlink mode=guaranteed`.
    public var summary: String {
        switch self {
        case let .preemptor(name, level, mode, user):
            "preemptor \(name) level=\(level.name) mode=\(mode.name)\(user ? " (user override)" : "")"
        case let .preemptible(name):
            "preemptible \(name)"
        case .unmanaged:
            "unmanaged (no class matches; stock Slurm behaviour)"
        }
    }
}

extension TopoAwareConfig {
    /// The first class line (in file order) matching the job's partitions and QOS.
    public func rule(for job: SubmittedJob) -> (rule: JobClassRule, match: JobClassRule.Match)? {
        for rule in classes {
            if let match = rule.match(partitions: job.partitions, qos: job.qos) { return (rule, match) }
        }
        return nil
    }
}
