/// The job_submit decision for one submission, independent of Slurm's C types.
public enum SubmitVerdict: Sendable, Equatable {
    /// Let the job in with this class. `notice`, when present, is shown to the sbatch user.
    case accept(JobClassification, notice: String?)
    /// Refuse the job; the message is shown by sbatch.
    case reject(SubmitRejection, message: String)
}

/// Why a submission is refused; SlurmBridge maps each to a specific `ESLURM_*` code.
public enum SubmitRejection: Sendable, Equatable {
    /// `--gpu-affinity` does not parse.
    case invalidOverride
    /// `--gpu-affinity` was given on a preemptor while the site set `AllowUserOverride=no`.
    case overrideNotAllowed
    /// No node of the cluster can ever give the request aligned GPUs (`TopologyPolicy`).
    case topology
}

/// Classifies submissions against a configuration. Pure: the same inputs give the same verdict.
public struct SubmitPolicy: Sendable {
    public var config: TopoAwareConfig

    public init(config: TopoAwareConfig) {
        self.config = config
    }

    public func evaluate(_ job: SubmittedJob) -> SubmitVerdict {
        var override: AffinityOverride? = nil
        if let raw = job.affinityOverride {
            do {
                override = try AffinityOverride.parse(raw)
            } catch {
                return .reject(.invalidOverride, message: "topo_aware: \(error.message)")
            }
        }
        guard let (rule, match) = config.rule(for: job) else {
            let notice = override.map { _ in
                "topo_aware: \(AffinityOverride.optionName) ignored: \(describeScope(job)) is not configured for topology-aware preemption"
            }
            return .accept(.unmanaged, notice: notice)
        }
        switch rule.kind {
        case .preemptible:
            let notice = override.map { _ in
                "topo_aware: \(AffinityOverride.optionName) ignored: \(match.partition.map { "partition \($0)" } ?? "this job") is in preemptible class '\(rule.name)', not a preemptor class"
            }
            return .accept(.preemptible(className: rule.name), notice: notice)
        case let .preemptor(level, mode):
            guard let override else {
                return .accept(.preemptor(className: rule.name, level: level, mode: mode, userOverride: false), notice: nil)
            }
            guard config.allowUserOverride else {
                return .reject(.overrideNotAllowed,
                    message: "topo_aware: \(AffinityOverride.optionName) is disabled on this cluster (AllowUserOverride=no); class '\(rule.name)' uses level \(level.name), mode \(mode.name)")
            }
            return .accept(.preemptor(className: rule.name, level: override.level ?? level,
                                      mode: override.mode ?? mode, userOverride: true), notice: nil)
        }
    }

    private func describeScope(_ job: SubmittedJob) -> String {
        switch (job.partitions.isEmpty, job.qos) {
        case (false, let qos?): "partition \(job.partitions.joined(separator: ",")) with QOS \(qos)"
        case (false, nil): "partition \(job.partitions.joined(separator: ","))"
        case (true, let qos?): "QOS \(qos)"
        case (true, nil): "this job"
        }
    }
}
