import Testing
@testable import TopoEngine

@Suite struct AffinityOverrideTests {
    @Test(arguments: [
        ("nvlink", AffinityOverride(level: .nvlink)),
        ("PCIe-Switch", AffinityOverride(level: .pcieSwitch)),
        ("socket:best-effort", AffinityOverride(level: .socket, mode: .bestEffort)),
        ("node:guaranteed", AffinityOverride(level: .node, mode: .guaranteed)),
        ("best-effort", AffinityOverride(mode: .bestEffort)),
    ])
    func parsesValidForms(text: String, expected: AffinityOverride) throws {
        #expect(try AffinityOverride.parse(text) == expected)
    }

    @Test(arguments: [
        ("", "empty value"),
        ("nvlnk", "'nvlnk' is neither a level nor a mode"),
        ("nvlink:strict", "unknown mode 'strict'"),
        ("fast:guaranteed", "unknown level 'fast'"),
        ("nvlink:guaranteed:x", "too many ':'"),
        (":guaranteed", "unknown level ''"),
        ("nvlink:", "unknown mode ''"),
        (" nvlink", "' nvlink' is neither a level nor a mode"),
        (String(repeating: "a", count: 65), "longer than 64 characters"),
    ])
    func rejectsMalformedValuesWithTheReason(text: String, reason: String) {
        do {
            _ = try AffinityOverride.parse(text)
            Issue.record("expected \(text) to be rejected")
        } catch {
            #expect(error.message.contains(reason), "\(error.message)")
            #expect(error.message.hasPrefix("invalid --gpu-affinity="))
            #expect(error.message.contains("expected LEVEL[:MODE]"))
        }
    }

    @Test func textRoundTrips() throws {
        for level in AffinityLevel.allCases {
            for mode in [nil] + PlacementMode.allCases.map(Optional.some) {
                let value = AffinityOverride(level: level, mode: mode)
                #expect(try AffinityOverride.parse(value.text) == value)
            }
        }
    }
}

@Suite struct SubmitPolicyTests {
    static let config = try! TopoAwareConfig.parse("""
        PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed
        PreemptorClass=rt QOS=realtime Level=socket Mode=best-effort
        PreemptibleClass=batch Partitions=batch
        """, file: "f").config

    @Test(arguments: [
        (SubmittedJob(partitions: ["batch"]), JobClassification.preemptible(className: "batch")),
        (SubmittedJob(partitions: ["infer"]), .preemptor(className: "inference", level: .nvlink, mode: .guaranteed, userOverride: false)),
        (SubmittedJob(partitions: ["batch", "infer"]), .preemptor(className: "inference", level: .nvlink, mode: .guaranteed, userOverride: false)),
        (SubmittedJob(partitions: ["batch"], qos: "realtime"), .preemptor(className: "rt", level: .socket, mode: .bestEffort, userOverride: false)),
        (SubmittedJob(partitions: ["debug"]), .unmanaged),
        (SubmittedJob(partitions: []), .unmanaged),
        (SubmittedJob(partitions: [], qos: "realtime"), .preemptor(className: "rt", level: .socket, mode: .bestEffort, userOverride: false)),
        (SubmittedJob(partitions: ["infer"], affinityOverride: "pcie-switch"), .preemptor(className: "inference", level: .pcieSwitch, mode: .guaranteed, userOverride: true)),
        (SubmittedJob(partitions: ["infer"], affinityOverride: "best-effort"), .preemptor(className: "inference", level: .nvlink, mode: .bestEffort, userOverride: true)),
    ])
    func classifiesByFirstMatchingLine(job: SubmittedJob, expected: JobClassification) {
        #expect(SubmitPolicy(config: Self.config).evaluate(job) == .accept(expected, notice: nil))
    }

    @Test func malformedOverrideIsRejectedWhateverTheClass() {
        for partition in ["infer", "batch", "debug"] {
            let verdict = SubmitPolicy(config: Self.config).evaluate(
                SubmittedJob(partitions: [partition], affinityOverride: "nvlnk"))
            guard case let .reject(reason, message) = verdict else {
                Issue.record("expected rejection, got \(verdict)")
                continue
            }
            #expect(reason == .invalidOverride)
            #expect(message.hasPrefix("topo_aware: invalid --gpu-affinity=nvlnk"))
        }
    }

    @Test func overrideOnNonPreemptorIsIgnoredWithANotice() {
        let policy = SubmitPolicy(config: Self.config)
        #expect(policy.evaluate(SubmittedJob(partitions: ["batch"], affinityOverride: "nvlink")) == .accept(
            .preemptible(className: "batch"),
            notice: "topo_aware: --gpu-affinity ignored: partition batch is in preemptible class 'batch', not a preemptor class"))
        #expect(policy.evaluate(SubmittedJob(partitions: ["debug"], affinityOverride: "nvlink")) == .accept(
            .unmanaged,
            notice: "topo_aware: --gpu-affinity ignored: partition debug is not configured for topology-aware preemption"))
    }

    @Test func overrideCanBeDisabledBySite() {
        var config = Self.config
        config.allowUserOverride = false
        let policy = SubmitPolicy(config: config)
        #expect(policy.evaluate(SubmittedJob(partitions: ["infer"], affinityOverride: "node")) == .reject(
            .overrideNotAllowed,
            message: "topo_aware: --gpu-affinity is disabled on this cluster (AllowUserOverride=no); class 'inference' uses level nvlink, mode guaranteed"))
        // Without an override the job is classified as usual.
        #expect(policy.evaluate(SubmittedJob(partitions: ["infer"])) == .accept(
            .preemptor(className: "inference", level: .nvlink, mode: .guaranteed, userOverride: false), notice: nil))
    }
}

@Suite struct AdminCommentTagTests {
    @Test(arguments: [
        (JobClassification.preemptor(className: "inference", level: .nvlink, mode: .guaranteed, userOverride: false),
         "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed"),
        (.preemptor(className: "rt", level: .pcieSwitch, mode: .bestEffort, userOverride: true),
         "topo_aware:preemptor=rt,level=pcie-switch,mode=best-effort,override=user"),
        (.preemptible(className: "batch"), "topo_aware:preemptible=batch"),
    ])
    func formatsAndParsesBack(classification: JobClassification, tag: String) {
        #expect(AdminCommentTag.format(classification) == tag)
        #expect(AdminCommentTag.parse(adminComment: tag) == classification)
        #expect(AdminCommentTag.parse(adminComment: "site note \(tag)") == classification)
    }

    @Test func unmanagedJobsGetNoTag() {
        #expect(AdminCommentTag.format(.unmanaged) == nil)
    }

    @Test(arguments: [
        nil, "", "no tag here", "topo_aware:", "topo_aware:preemptor=x,level=nvlink",
        "topo_aware:preemptor=x,level=fast,mode=guaranteed", "topo_aware:preemptible=",
        "topo_aware:preemptible=a,preemptible=b", "topo_aware:preemptor=x,level=nvlink,mode=guaranteed,extra=1",
    ])
    func unparsableTagsReadAsNone(comment: String?) {
        #expect(AdminCommentTag.parse(adminComment: comment) == nil)
    }

    @Test func mergeKeepsAdministratorTextAndReplacesOldTag() {
        #expect(AdminCommentTag.merge(existing: nil, tag: "topo_aware:preemptible=b") == "topo_aware:preemptible=b")
        #expect(AdminCommentTag.merge(existing: "ticket-42", tag: "topo_aware:preemptible=b") == "ticket-42 topo_aware:preemptible=b")
        #expect(AdminCommentTag.merge(existing: "topo_aware:preemptible=a note", tag: "topo_aware:preemptible=b") == "note topo_aware:preemptible=b")
        #expect(AdminCommentTag.merge(existing: "ticket-42", tag: nil) == "ticket-42")
        #expect(AdminCommentTag.merge(existing: "topo_aware:preemptible=a", tag: nil) == nil)
    }
}
