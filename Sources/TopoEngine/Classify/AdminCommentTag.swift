/// The job's class as recorded in its AdminComment, where `scontrol show job` shows it and the
/// preempt plugin reads it back:
///
///     topo_aware:preemptor=inference,level=nvlink,mode=guaranteed
///     topo_aware:preemptor=inference,level=pcie-switch,mode=best-effort,override=user
///     topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,shape=gpus-per-socket:4
///     topo_aware:preemptible=batch
///
/// The tag is one space-free word; text an administrator already put in AdminComment is kept.
///
/// preempt/topo_aware adds provenance keys when Slurm preempts a job (slurmdbd stores
/// AdminComment with each run, so `sacct` keeps them after the job ends):
///
///     topo_aware:preemptible=batch,preempted_by=6,preempted_gpus=node1:0-1,preempted_at=1796236890,chosen_by=plan
///     topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,plan=node1:0-3,reached=nvlink,victims=1+3
public enum AdminCommentTag {
    public static let prefix = "topo_aware:"
    /// Keys preempt/topo_aware writes; the class keys are read as if they were absent.
    public static let provenanceKeys: Set<String> = ["preempted_by", "preempted_gpus", "preempted_at", "chosen_by",
                                                     "plan", "reached", "victims"]

    /// The tag for a classification; nil for unmanaged jobs (nothing is recorded).
    /// `shape`, when job_submit rewrote the GPU request, is recorded as `shape=...`.
    public static func format(_ classification: JobClassification, shape: String? = nil) -> String? {
        switch classification {
        case let .preemptor(name, level, mode, user):
            "\(prefix)preemptor=\(name),level=\(level.name),mode=\(mode.name)\(user ? ",override=user" : "")"
                + (shape.map { ",shape=\($0)" } ?? "")
        case let .preemptible(name):
            "\(prefix)preemptible=\(name)"
        case .unmanaged:
            nil
        }
    }

    /// Reads the tag back from an AdminComment; nil when there is none or it does not parse.
    public static func parse(adminComment: String?) -> JobClassification? {
        guard let adminComment else { return nil }
        guard let word = adminComment.split(separator: " ").last(where: { $0.hasPrefix(prefix) }) else {
            return nil
        }
        var fields: [String: String] = [:]
        for item in word.dropFirst(prefix.utf8.count).split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, fields[String(kv[0])] == nil else { return nil }
            if provenanceKeys.contains(String(kv[0])) { continue }
            fields[String(kv[0])] = String(kv[1])
        }
        if let name = fields["preemptible"], fields.count == 1, !name.isEmpty {
            return .preemptible(className: name)
        }
        guard let name = fields["preemptor"], !name.isEmpty,
              let level = fields["level"].flatMap(AffinityLevel.init(name:)),
              let mode = fields["mode"].flatMap(PlacementMode.init(name:))
        else { return nil }
        let user = fields["override"] == "user"
        let shaped = fields["shape"].map { !$0.isEmpty } ?? false
        guard fields.count == 3 + (user ? 1 : 0) + (shaped ? 1 : 0) else { return nil }
        return .preemptor(className: name, level: level, mode: mode, userOverride: user)
    }

    /// The AdminComment after recording `tag`: any earlier topo_aware tag is replaced, other
    /// words are kept in order. Returns nil when the result would be empty.
    /// Provenance keys of the earlier tag are kept (a job modified after it was preempted).
    public static func merge(existing: String?, tag: String?) -> String? {
        let all = (existing ?? "").split(separator: " ")
        var words = all.filter { !$0.hasPrefix(prefix) }.map(String.init)
        let kept = all.last(where: { $0.hasPrefix(prefix) }).map { pairs(of: $0).filter { provenanceKeys.contains($0.key) } } ?? []
        if let tag {
            words.append(kept.isEmpty ? tag : setting(kept, in: tag))
        } else if !kept.isEmpty {
            words.append(prefix + kept.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }

    /// The AdminComment with `values` set in its tag (added, or replacing the same keys; a tag
    /// is started when there is none). Values must be free of spaces, commas and `=`.
    public static func recording(_ values: [(key: String, value: String)], in existing: String?) -> String {
        var words = (existing ?? "").split(separator: " ").map(String.init)
        if let at = words.lastIndex(where: { $0.hasPrefix(prefix) }) {
            words[at] = setting(values, in: words[at])
        } else {
            words.append(prefix + values.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        }
        return words.joined(separator: " ")
    }

    /// The provenance keys of a job's AdminComment tag.
    public static func provenance(adminComment: String?) -> [String: String] {
        guard let word = adminComment?.split(separator: " ").last(where: { $0.hasPrefix(prefix) }) else { return [:] }
        var out: [String: String] = [:]
        for pair in pairs(of: word) where provenanceKeys.contains(pair.key) { out[pair.key] = pair.value }
        return out
    }

    private static func pairs<S: StringProtocol>(of word: S) -> [(key: String, value: String)] {
        word.dropFirst(prefix.utf8.count).split(separator: ",").compactMap { item in
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
        }
    }

    private static func setting(_ values: [(key: String, value: String)], in word: String) -> String {
        var list = pairs(of: word)
        for (key, value) in values {
            if let i = list.firstIndex(where: { $0.key == key }) { list[i].value = value } else { list.append((key, value)) }
        }
        return prefix + list.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
