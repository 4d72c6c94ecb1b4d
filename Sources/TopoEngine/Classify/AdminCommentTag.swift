/// The job's class as recorded in its AdminComment, where `scontrol show job` shows it and the
/// preempt plugin reads it back:
///
///     topo_aware:preemptor=inference,level=nvlink,mode=guaranteed
///     topo_aware:preemptor=inference,level=pcie-switch,mode=best-effort,override=user
///     topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,shape=gpus-per-socket:4
///     topo_aware:preemptible=batch
///
/// The tag is one space-free word; text an administrator already put in AdminComment is kept.
public enum AdminCommentTag {
    public static let prefix = "topo_aware:"

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
    public static func merge(existing: String?, tag: String?) -> String? {
        var words = (existing ?? "").split(separator: " ").filter { !$0.hasPrefix(prefix) }.map(String.init)
        if let tag { words.append(tag) }
        return words.isEmpty ? nil : words.joined(separator: " ")
    }
}
