import Foundation
import Testing
@testable import TopoEngine

/// The decision log's records: made where the decisions' info lines are made, as rarely, and
/// rendered as one JSON object per line with the documented keys.
@Suite struct DecisionRecordTests {
    let islands = try! Controller.topology(Lab.islands)
    static let lab: [[Int]] = [[0, 1], [4, 5], [2, 3], [6], [7]]

    func decide(_ controller: inout PreemptController, _ snapshot: ControllerSnapshot,
                settings: PreemptSettings = PreemptSettings()) -> PreemptDecision {
        controller.decide(snapshot, config: Controller.config, topology: islands, settings: settings,
                          clock: Controller.Clock().read)
    }

    /// A plan's life: made (victims, targets, level, cost, the planner's reasons), carried out,
    /// kept without new records, dropped at PlanTimeout and made again, released.
    @Test func aPlansLifeIsRecorded() throws {
        var controller = PreemptController()
        let first = decide(&controller, Controller.snapshot(Self.lab))
        #expect(first.records.count == 1)
        let plan = try #require(first.records.first)
        #expect(plan.event == .plan && plan.job == 100 && plan.time == 3600)
        #expect(plan.victims == [1, 3] && plan.targets == [.init(node: "node1", gpus: GPUSet(0...3))])
        #expect(plan.level == .nvlink && plan.reached == .nvlink && plan.mode == .guaranteed)
        #expect(plan.cost?.victims == 2 && plan.cost?.gpuSeconds == 14160 && plan.planMicroseconds == 50)
        #expect(plan.details.contains { $0.hasPrefix("on node1: requeue") })
        #expect(plan.details.contains { $0.hasPrefix("cost: ") })
        // The same plan again (Slurm did not act yet): no second record.
        #expect(decide(&controller, Controller.snapshot(Self.lab)).records.isEmpty)
        // Victims stopped: executing, once.
        let executing = decide(&controller, Controller.snapshot(Self.lab, time: 3605, completing: [1, 3])).records
        #expect(executing.map(\.event) == [.executing])
        #expect(executing.first?.victims == [1, 3])
        #expect(decide(&controller, Controller.snapshot(Self.lab, time: 3606, completing: [1, 3])).records.isEmpty)
        // PlanTimeout: dropped (reason code), then a new plan on the other island.
        let late = decide(&controller, Controller.snapshot(Self.lab, time: 3605 + 301, completing: [1, 3])).records
        #expect(late.map(\.event) == [.dropped, .plan])
        #expect(late.first?.reason == "plan-timeout" && late.first?.victims == [1, 3])
        #expect(late.last?.victims == [2, 4, 5])
        // Another preemptor's decision: job 100 is no longer pending, its plan is released.
        let other = decide(&controller, Controller.snapshot(Self.lab, time: 4000, preemptor: Controller.infer(1, id: 101),
                                                            completing: [1, 3])).records
        #expect(other.first?.event == .released && other.first?.job == 100)
    }

    /// A guaranteed job with no aligned plan waits: recorded once with the planner's code, again
    /// only when the reason changes; a fallback likewise.
    @Test func waitsAndFallbacksAreRecordedOnce() {
        var controller = PreemptController()
        var full = Controller.snapshot(Self.lab)
        for j in full.jobs.indices { full.jobs[j].eligible = false }
        let wait = decide(&controller, full).records
        #expect(wait.map(\.event) == [.wait])
        #expect(wait.first?.reason == "not-enough-preemptible", "\(wait)")
        #expect(decide(&controller, full).records.isEmpty)
        let budget = PreemptSettings(planBudgetMicroseconds: 10)
        let over = decide(&controller, Controller.snapshot(Self.lab, time: 3700), settings: budget).records
        #expect(over.map(\.event) == [.fallback] && over.first?.reason == "over-time-budget")
        // No topology at all: the base policy, recorded.
        var bare = PreemptController()
        let none = bare.decide(Controller.snapshot(Self.lab), config: Controller.config, topology: nil,
                               settings: PreemptSettings(), clock: Controller.Clock().read).records
        #expect(none.map(\.event) == [.fallback] && none.first?.reason == "no-topology")
        // Not a preemptor: nothing to record.
        var quiet = PreemptController()
        let batch = Controller.snapshot(Self.lab, preemptor: Controller.infer(4, tag: "topo_aware:preemptible=batch"))
        #expect(decide(&quiet, batch).records.isEmpty)
    }

    /// A higher-ranked preemptor taking a kept plan's GPUs says whose.
    @Test func takeoverNamesTheLoser() {
        var controller = PreemptController()
        _ = decide(&controller, Controller.snapshot(Self.lab, preemptor: Controller.infer(4, id: 100, priority: 10), owners: [100]))
        let high = decide(&controller, Controller.snapshot(Self.lab, time: 3601, preemptor: Controller.infer(4, id: 101, tier: 20),
                                                           owners: [100, 101])).records
        #expect(high.map(\.event) == [.takeover, .plan], "\(high)")
        #expect(high.first?.job == 101 && high.first?.other == 100 && high.first?.victims == [1, 3])
    }

    /// What the writer writes, the reader reads back: every record kind, every field.
    @Test func linesReadBack() throws {
        var controller = PreemptController()
        var records = decide(&controller, Controller.snapshot(Self.lab)).records
        var stats = DecisionRecord.PluginStats()
        stats.decisions = 55
        stats.rebuilds = ["start": 1, "period": 2]
        stats.p50Microseconds = 447
        stats.sumMicroseconds = 30_000
        stats.buckets = [(16, 0), (32, 3), (1024, 55)]
        var record = DecisionRecord(.stats, time: 9, job: 0, message: "since start")
        record.stats = stats
        records.append(record)
        var lost = DecisionRecord(.recordsLost, time: 10, job: 0, message: "3 lost")
        lost.count = 3
        records.append(lost)
        for domain in [NodeDomain(kind: .block, name: "b1"), NodeDomain(kind: .leafSwitch, name: "s1"),
                       NodeDomain(kind: .block, name: nil), NodeDomain(kind: .leafSwitch, name: nil)] {
            var multi = DecisionRecord(.plan, time: 11, job: 5, message: "plan")
            multi.domain = domain
            records.append(multi)
        }
        var ordered = DecisionRecord(.plan, time: 12, job: 6, message: "plan")
        ordered.costOrder = [.work, .victims, .priority, .collateral]
        records.append(ordered)
        #expect(ordered.jsonLine().contains(#""cost_order":"work,victims,priority,collateral""#))
        var rough = DecisionRecord(.plan, time: 13, job: 7, message: "plan")
        rough.costOrder = [.roughWork, .victims, .priority, .work, .collateral]
        rough.roughWorkTolerance = RoughWorkTolerance(clamping: 25)
        records.append(rough)
        #expect(rough.jsonLine().contains(#""cost_order":"rough-work,victims,priority,work,collateral","rough_work_tolerance":"2.5%""#))
        let decoder = JSONDecoder()
        for (i, original) in records.enumerated() {
            let line = original.jsonLine(sequence: UInt64(i + 1))
            let back = try decoder.decode(DecisionRecord.self, from: Data(line.utf8))
            var expected = original
            expected.cost?.victimIDs = original.victims.sorted()
            #expect(back == expected, "\(line)")
        }
        #expect(throws: DecodingError.self) { try decoder.decode(DecisionRecord.self, from: Data(#"{"time":1,"event":"nope","job":1}"#.utf8)) }
        #expect(throws: DecodingError.self) { try decoder.decode(DecisionRecord.self, from: Data(#"{"time":1,"event":"plan","job":1,"cost_order":"work,nope"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try decoder.decode(DecisionRecord.self, from: Data(#"{"time":1,"event":"plan","job":1,"level":"x"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try decoder.decode(DecisionRecord.self, from: Data(#"{"time":1,"event":"plan","job":1,"rough_work_tolerance":"200%"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try decoder.decode(DecisionRecord.self, from: Data(#"{"time":1,"event":"plan","job":1,"across":"racks"}"#.utf8)) }
    }

    /// Multi-node plans say where their nodes lie: `block`, `switch` or `across`.
    @Test func domainKeys() {
        var record = DecisionRecord(.plan, time: 1, job: 3, message: "m")
        record.domain = NodeDomain(kind: .block, name: "b1")
        #expect(record.jsonLine() == #"{"time":1,"event":"plan","job":3,"block":"b1","victims":[],"message":"m"}"#)
        record.domain = NodeDomain(kind: .leafSwitch, name: nil)
        #expect(record.jsonLine() == #"{"time":1,"event":"plan","job":3,"across":"switches","victims":[],"message":"m"}"#)
        #expect(PreemptController.domain(NodeDomain(kind: .block, name: nil)) == " across=blocks")
        #expect(PreemptController.domain(NodeDomain(kind: .leafSwitch, name: "s2")) == " switch=s2")
        #expect(PreemptController.domain(nil) == "")
    }

    @Test(arguments: [(0, "1970-01-01T00:00:00Z"), (1_796_236_889, "2026-12-02T18:41:29Z"), (951_782_400, "2000-02-29T00:00:00Z"),
                      (-1, "1969-12-31T23:59:59Z")] as [(Int64, String)])
    func timestamps(seconds: Int64, text: String) { #expect(utcTimestamp(seconds) == text) }

    /// The JSON line: fixed key order, the sequence number first, strings escaped.
    @Test func jsonLine() {
        var record = DecisionRecord(.fallback, time: 1_700_000_000, job: 7, message: "say \"why\"\\\n\u{01}é", reason: "no-topology")
        #expect(record.jsonLine(sequence: 3)
            == #"{"seq":3,"time":1700000000,"event":"fallback","job":7,"reason":"no-topology","message":"say \"why\"\\\n\u0001é"}"#)
        record = DecisionRecord(.preempted, time: 5, job: 2, message: "m")
        record.other = 9
        record.targets = [.init(node: "node1", gpus: GPUSet([0, 1]))]
        record.victims = [2]
        record.mode = .bestEffort
        record.level = .nvlink
        record.reached = .socket
        record.cost = PlanCost(maxPriority: 65537, victims: 1, gpuSeconds: 120, collateral: 0, victimIDs: [2])
        #expect(record.jsonLine()
            == #"{"time":5,"event":"preempted","job":2,"other":9,"mode":"best-effort","level":"nvlink","reached":"socket","degraded":true,"targets":[{"node":"node1","gpus":"0-1"}],"victims":[2],"cost":{"victims":1,"priority":65537,"lost_gpu_seconds":120,"collateral_gpus":0},"message":"m"}"#)
    }
}

/// Preemptions Slurm carries out: the record and the provenance texts for SystemComment.
@Suite struct ProvenanceTests {
    let islands = try! Controller.topology(Lab.islands)
    static let lab: [[Int]] = [[0, 1], [4, 5], [2, 3], [6], [7]]

    @Test func aPlannedVictimSaysWhoAndWhy() {
        var controller = PreemptController()
        _ = controller.decide(Controller.snapshot(Self.lab), config: Controller.config, topology: islands,
                              settings: PreemptSettings(), clock: Controller.Clock().read)
        let p = controller.preempted(.init(victim: 1, preemptor: 100, time: 3600, startTime: 0, mode: "REQUEUE",
                                           gpus: [.init(node: "node1", gpus: GPUSet([0, 1]))]), basePolicy: "partition_prio")
        #expect(p.record.event == .preempted && p.record.job == 1 && p.record.other == 100 && p.record.reason == "plan")
        #expect(p.record.lostGPUSeconds == 7200 && p.record.victims == [1, 3] && p.record.preemptMode == "REQUEUE")
        #expect(p.victimText == "topo_aware: preempted (REQUEUE) by JobId=100 on node1 gpus=0-1; chosen by its guaranteed plan node1 gpus=0-3 level=nvlink victims=1,3 cost=victims:2,prio:65537,lost:14160gpu-s,collateral:0 (with JobId 3)")
        #expect(p.preemptorText == "topo_aware: guaranteed plan node1 gpus=0-3 level=nvlink victims=1,3 cost=victims:2,prio:65537,lost:14160gpu-s,collateral:0")
        #expect(p.victimTag.map { "\($0.key)=\($0.value)" } == ["preempted_by=100", "preempted_gpus=node1:0-1", "preempted_at=3600", "chosen_by=plan"])
        #expect(p.preemptorTag.map { "\($0.key)=\($0.value)" } == ["plan=node1:0-3", "reached=nvlink", "victims=1+3"])
        // Not a victim of any plan: the base policy's choice; no text for the preemptor.
        let base = controller.preempted(.init(victim: 2, preemptor: 7, time: 3600, startTime: 3000, mode: "CANCEL", gpus: []),
                                        basePolicy: "qos")
        #expect(base.record.reason == "base-policy" && base.preemptorText.isEmpty)
        #expect(base.victimText == "topo_aware: preempted (CANCEL) by JobId=7 on no GPU node; chosen by the base policy (qos)")
        #expect(base.victimTag.last?.value == "base-policy" && base.preemptorTag.isEmpty)
    }

    /// Whatever Slurm or an administrator wrote stays; an earlier TopoPreempt part is replaced;
    /// the whole fits the limit.
    @Test(arguments: [
        (nil, "topo_aware: b", "topo_aware: b"),
        ("burst buffer: stage-in failed", "topo_aware: b", "burst buffer: stage-in failed; topo_aware: b"),
        ("x; topo_aware: old text", "topo_aware: new", "x; topo_aware: new"),
        ("topo_aware: old", "topo_aware: new", "topo_aware: new"),
    ] as [(String?, String, String)])
    func systemCommentKeepsOthers(existing: String?, text: String, expected: String) {
        #expect(PreemptController.systemComment(replacing: existing, with: text) == expected)
    }

    @Test func systemCommentIsBounded() {
        let long = String(repeating: "é", count: 800)
        let whole = PreemptController.systemComment(replacing: nil, with: "topo_aware: " + long, limit: 100)
        #expect(whole.utf8.count <= 100 && whole.hasPrefix("topo_aware: é"))
    }
}

/// Provenance keys in the AdminComment tag: added beside the class, read around, kept when
/// job_submit tags the job again.
@Suite struct AdminCommentProvenanceTests {
    @Test func keysAreAddedAndTheClassStillParses() {
        let tagged = AdminCommentTag.recording([("preempted_by", "6"), ("chosen_by", "plan")], in: "site:x topo_aware:preemptible=batch")
        #expect(tagged == "site:x topo_aware:preemptible=batch,preempted_by=6,chosen_by=plan")
        #expect(AdminCommentTag.parse(adminComment: tagged) == .preemptible(className: "batch"))
        #expect(AdminCommentTag.provenance(adminComment: tagged) == ["preempted_by": "6", "chosen_by": "plan"])
        // Preempted again: the keys are replaced, not repeated.
        let again = AdminCommentTag.recording([("preempted_by", "9")], in: tagged)
        #expect(again == "site:x topo_aware:preemptible=batch,preempted_by=9,chosen_by=plan")
        // No tag yet (an unclassified job): one is started; it is no class.
        let bare = AdminCommentTag.recording([("preempted_by", "6")], in: nil)
        #expect(bare == "topo_aware:preempted_by=6" && AdminCommentTag.parse(adminComment: bare) == nil)
        let preemptor = "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,plan=node1:0-3,reached=nvlink,victims=1+3"
        #expect(AdminCommentTag.parse(adminComment: preemptor) == .preemptor(className: "inference", level: .nvlink, mode: .guaranteed, userOverride: false))
    }

    @Test func jobSubmitKeepsTheKeys() {
        let merged = AdminCommentTag.merge(existing: "topo_aware:preemptible=batch,preempted_by=6", tag: "topo_aware:preemptible=other")
        #expect(merged == "topo_aware:preemptible=other,preempted_by=6")
        #expect(AdminCommentTag.merge(existing: "a topo_aware:preemptible=batch,preempted_by=6", tag: nil) == "a topo_aware:preempted_by=6")
        #expect(AdminCommentTag.merge(existing: "a topo_aware:preemptible=batch", tag: nil) == "a")
    }
}

/// explain's reading of slurmdbd's runs: a purged job whose records rotated away is still
/// explained from its runs' AdminComment keys.
@Suite struct ExplanationHistoryTests {
    @Test func runsSayWhoPreemptedAndWhichPlanRan() {
        let victim = Explanation(job: 1, records: [], live: nil, history: [
            .init(state: "PREEMPTED", start: "2026-12-02T18:49:20", end: "2026-12-02T18:49:33",
                  adminComment: "topo_aware:preemptible=batch,preempted_by=6,preempted_gpus=node1:0-1,preempted_at=1796236890,chosen_by=plan"),
            .init(state: "CANCELLED by 0", start: "2026-12-02T18:50:00", end: "2026-12-02T18:51:00", adminComment: "topo_aware:preemptible=batch"),
        ])
        #expect(victim.role == .none)
        #expect(victim.summary.contains("slurmdbd: its run 2026-12-02T18:49:20 - 2026-12-02T18:49:33 ended PREEMPTED: preempted by JobId=6 on node1:0-1, chosen by plan."))
        #expect(!victim.summary.contains { $0.hasPrefix("No decision") })
        let preemptor = Explanation(job: 6, records: [], live: nil, history: [
            .init(state: "COMPLETED", start: "a", end: "b",
                  adminComment: "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,plan=node1:0-3,reached=nvlink,victims=1+3"),
        ])
        #expect(preemptor.summary.contains("slurmdbd: its run a - b (COMPLETED) ran on the plan node1:0-3, nvlink-aligned, victims 1,3."))
        let nothing = Explanation(job: 9, records: [], live: nil, history: [.init(state: "COMPLETED", start: "a", end: "b", adminComment: nil)])
        #expect(nothing.summary.last?.hasPrefix("No decision of preempt/topo_aware names this job") == true)
    }
}
