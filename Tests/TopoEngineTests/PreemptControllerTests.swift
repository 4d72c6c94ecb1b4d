import Testing
@testable import TopoEngine

/// slurmctld's state as preempt/topo_aware's C side hands it over, for controller tests: two
/// 8-GPU nodes (islands or pairs), node1 filled with batch jobs (ids 1, 2, ...; base priority
/// 1<<16|1 like partition_prio's tier 1), node2 full with one job of a higher tier.
enum Controller {
    static func topology(_ layout: ClusterSnapshot.LayoutSpec) throws -> ControllerTopology {
        let node = try layout.topology()
        return ControllerTopology(layouts: [layout], gpuCounts: [node.gpuCount], layoutOfNode: ["node1": 0, "node2": 0])
    }

    static let batchPriority = (1 << 16) | 1

    /// `completing`: jobs (by id) no longer running whose GPUs Slurm still holds (requeued,
    /// draining).
    static func snapshot(_ gpus: [[Int]], time: Int64 = 3600, preemptor: ControllerSnapshot.Preemptor = infer(4),
                         completing: Set<UInt32> = [], owners: Set<UInt32> = []) -> ControllerSnapshot {
        var jobs = gpus.enumerated().map { i, list in
            ControllerSnapshot.Job(id: UInt32(i + 1), basePriority: batchPriority, eligible: true, startTime: Int64(i * 60),
                                   allocations: [.init(node: 0, gpus: GPUSet(list))])
        }
        jobs.removeAll { completing.contains($0.id) }
        jobs.append(.init(id: 99, basePriority: 10 << 16 | 1, eligible: false, startTime: 0,
                          allocations: [.init(node: 1, gpus: GPUSet(0...7))]))
        let allocated = gpus.reduce(GPUSet()) { $0.union(GPUSet($1)) }
        return ControllerSnapshot(time: time, nodes: [
            .init(name: "node1", available: true, gpuCount: 8, allocated: allocated),
            .init(name: "node2", available: true, gpuCount: 8, allocated: GPUSet(0...7)),
        ], jobs: jobs, preemptor: preemptor, pendingOwners: owners)
    }

    static func infer(_ gpus: Int, id: UInt32 = 100, tag: String? = "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed",
                      tier: Int = 10, priority: Int = 1000) -> ControllerSnapshot.Preemptor {
        .init(id: id, basePriority: tier << 16 | 1, jobPriority: priority, gpusPerNode: gpus, adminComment: tag,
              partitions: ["infer"])
    }

    static let config = try! TopoAwareConfig.parse("""
        PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed
        PreemptibleClass=batch Partitions=batch
        """, file: "topo_aware.conf").config

    /// A clock advancing 50 us per reading.
    final class Clock: @unchecked Sendable {
        var now: UInt64 = 0
        var step: UInt64 = 50_000
        func read() -> UInt64 {
            now += step
            return now
        }
    }
}

@Suite struct PreemptControllerTests {
    let islands = try! Controller.topology(Lab.islands)
    let pairs = try! Controller.topology(Lab.pairs)
    let settings = PreemptSettings()
    static let lab: [[Int]] = [[0, 1], [4, 5], [2, 3], [6], [7]]

    func decide(_ controller: inout PreemptController, _ snapshot: ControllerSnapshot, topology: ControllerTopology? = nil,
                settings: PreemptSettings? = nil, clock: Controller.Clock = Controller.Clock()) -> PreemptDecision {
        controller.decide(snapshot, config: Controller.config, topology: topology ?? islands, settings: settings ?? self.settings,
                          clock: clock.read)
    }

    /// Lab scenario 1 inside the controller: only the jobs on 0-1 and 2-3 may be preempted, and
    /// the info line names node, GPUs, level, victims and time.
    @Test func labScenarioPlansTheIsland() {
        var controller = PreemptController()
        let d = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]))
        #expect(d.action == .onlyVictims([1, 3]))
        let info = d.log.filter { $0.level == .info }.map(\.text)
        #expect(info == ["preempt/topo_aware: JobId=100 plan node1 gpus=0-3 level=nvlink victims=1,3 cost=victims:2,prio:65537,lost:14160gpu-s,collateral:0 50us"])
        #expect(controller.planOwners == [100])
        #expect(d.newPlan)
        // Where the plan puts the job, as the snapshot's node index (the C side plans there and
        // on changed nodes only, next time); a consistent snapshot.
        #expect(d.targetNodes == [0])
        #expect(!d.inconsistent)
    }

    /// CostOrder=: one island held by a 4-GPU job (14,400 GPU-seconds so far), the other by two
    /// 2-GPU jobs (14,040 together). The default order takes the one victim; work first takes
    /// the two; a class's own order wins over the file's, and an order given in the settings
    /// (`plan --job --cost-order`) over both. The plan's record says the order.
    @Test func victimsFollowTheConfiguredCostOrder() throws {
        let fill: [[Int]] = [[0, 1, 2, 3], [4, 5], [6, 7]]
        func victims(_ text: String, settings: PreemptSettings = PreemptSettings()) throws -> (PreemptAction, [CostCriterion]?) {
            let config = try TopoAwareConfig.parse(text, file: "topo_aware.conf").config
            var controller = PreemptController()
            let d = controller.decide(Controller.snapshot(fill), config: config, topology: islands, settings: settings,
                                      clock: Controller.Clock().read)
            return (d.action, d.records.first { $0.event == .plan }?.costOrder)
        }
        let inference = "PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed"
        #expect(try victims(inference) == (.onlyVictims([1]), [.priority, .victims, .work, .collateral]))
        #expect(try victims(inference + " CostOrder=work") == (.onlyVictims([2, 3]), [.work, .priority, .victims, .collateral]))
        #expect(try victims("CostOrder=work\n" + inference).0 == .onlyVictims([2, 3]))
        #expect(try victims("CostOrder=work\n" + inference + " CostOrder=victims").0 == .onlyVictims([1]))
        #expect(try victims(inference + " CostOrder=work", settings: PreemptSettings(costOrder: CostCriterion.defaultOrder)).0
                == .onlyVictims([1]))
        // The class by the job's partition when it carries no tag.
        var untagged = Controller.snapshot(fill)
        untagged.preemptor.adminComment = nil
        let config = try TopoAwareConfig.parse(inference + " CostOrder=work", file: "f").config
        #expect(PreemptController.costOrder(untagged.preemptor, config: config) == [.work, .priority, .victims, .collateral])
        #expect(PreemptController.costOrder(untagged.preemptor, config: nil) == CostCriterion.defaultOrder)
    }

    /// RoughWorkTolerance=: the same island choice, 2.56% apart in work. With rough-work and the
    /// default 2% they do not tie and the two younger jobs lose less; within 3% (the file's or the
    /// class's) they tie and the one victim wins; settings (`plan --job --rough-work-tolerance`)
    /// win over both. The plan's record says the tolerance with the order.
    @Test func roughWorkFollowsTheConfiguredTolerance() throws {
        let fill: [[Int]] = [[0, 1, 2, 3], [4, 5], [6, 7]]
        func decided(_ text: String, settings: PreemptSettings = PreemptSettings()) throws -> (PreemptAction, DecisionRecord?) {
            let config = try TopoAwareConfig.parse(text, file: "topo_aware.conf").config
            var controller = PreemptController()
            let d = controller.decide(Controller.snapshot(fill), config: config, topology: islands, settings: settings,
                                      clock: Controller.Clock().read)
            return (d.action, d.records.first { $0.event == .plan })
        }
        let inference = "PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed CostOrder=rough-work"
        let byDefault = try decided(inference)
        #expect(byDefault.0 == .onlyVictims([2, 3]) && byDefault.1?.roughWorkTolerance == .default)
        #expect(byDefault.1?.costOrder == [.roughWork, .priority, .victims, .work, .collateral])
        let byFile = try decided("RoughWorkTolerance=3%\n" + inference)
        #expect(byFile.0 == .onlyVictims([1]) && byFile.1?.roughWorkTolerance?.perMille == 30)
        #expect(try decided(inference + " RoughWorkTolerance=3").0 == .onlyVictims([1]))
        #expect(try decided("RoughWorkTolerance=3\n" + inference + " RoughWorkTolerance=2.5").0 == .onlyVictims([2, 3]))
        #expect(try decided(inference + " RoughWorkTolerance=3", settings: PreemptSettings(roughWorkTolerance: .default)).0
                == .onlyVictims([2, 3]))
        // Without rough-work in the order, the record has no tolerance.
        #expect(try decided("PreemptorClass=inference Partitions=infer RoughWorkTolerance=3").1?.roughWorkTolerance == nil)
    }

    /// Sticky: once Slurm has stopped a victim, later passes preempt nothing more for the job
    /// (its victims drain), and the plan is released when the job is no longer pending.
    @Test func keptPlanStopsFurtherPreemption() {
        var controller = PreemptController()
        _ = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]))
        // Jobs 1 and 3 requeued: their GPUs still allocated (completing), no longer running.
        let draining = Controller.snapshot(Self.lab, time: 3605, completing: [1, 3])
        let d1 = decide(&controller, draining)
        #expect(d1.action == .noVictims)
        #expect(d1.targetNodes == [0])
        #expect(d1.log.contains { $0.level == .verbose && $0.text.contains("executing: 2 of 2 victim(s) stopped") })
        let d2 = decide(&controller, draining)
        #expect(d2.action == .noVictims)
        // Another preemptor asks; job 100 is no longer pending (it started): its plan goes.
        let other = Controller.snapshot(Self.lab, time: 3610, preemptor: Controller.infer(1, id: 101), completing: [1, 3])
        _ = decide(&controller, other)
        #expect(!controller.planOwners.contains(100))
    }

    /// A plan Slurm did not act on is made afresh next time (logged at info only when it changes).
    /// After a slurmctld restart (kept plans are in memory only) the victims Slurm already
    /// signalled are still draining in their GraceTime: the new controller plans with their GPUs
    /// as free and preempts nothing new, instead of a second round of victims.
    @Test func drainingJobsAreNotASecondRound() {
        var controller = PreemptController()
        var snapshot = Controller.snapshot(Self.lab)
        for j in snapshot.jobs.indices where [1, 3].contains(snapshot.jobs[j].id) {
            snapshot.jobs[j].draining = true
            snapshot.jobs[j].eligible = false  // the C side never offers signalled jobs as victims
        }
        let d = decide(&controller, snapshot)
        #expect(d.action == .onlyVictims([]))
        #expect(d.log.contains { $0.level == .info && $0.text == "preempt/topo_aware: JobId=100 waits for draining jobs to free node1 gpus=0-3; preempting nothing new" })
        // One draining job (0-1) and one more needed (2-3): only that one is a new victim.
        var partial = Controller.snapshot(Self.lab)
        partial.jobs[0].draining = true
        partial.jobs[0].eligible = false
        var fresh = PreemptController()
        #expect(decide(&fresh, partial).action == .onlyVictims([3]))
        // GPU 6 draining makes island 4-7 the cheaper one (4-5 and 7 hold less work than 0-1, 2-3).
        var elsewhere = Controller.snapshot(Self.lab)
        elsewhere.jobs[3].draining = true
        elsewhere.jobs[3].eligible = false
        var third = PreemptController()
        #expect(decide(&third, elsewhere).action == .onlyVictims([2, 5]))
    }

    /// A node left out of planning (its gres.conf Links= or GPU count disagree) is the base
    /// policy's: when no node of known topology has a plan, only jobs on left-out nodes may go.
    @Test func leftOutNodesKeepTheBasePolicy() {
        let node1Only = ControllerTopology(layouts: islands.layouts, gpuCounts: islands.gpuCounts, layoutOfNode: ["node1": 0])
        var snapshot = Controller.snapshot(Self.lab)
        for j in snapshot.jobs.indices where snapshot.jobs[j].id != 99 { snapshot.jobs[j].eligible = false }
        snapshot.jobs[snapshot.jobs.count - 1] = .init(id: 50, basePriority: Controller.batchPriority, eligible: true, startTime: 0,
                                                       allocations: [.init(node: 1, gpus: GPUSet(0...7))])
        var controller = PreemptController()
        let d = decide(&controller, snapshot, topology: node1Only)
        #expect(d.action == .onlyVictims([50]))
        #expect(d.log.contains { $0.level == .info && $0.text.contains("JobId=100 no plan on nodes of known topology") && $0.text.contains("base policy on node(s) node2, left out of planning") })
        // With node2 known, it is planned like any node (one island of it).
        var known = PreemptController()
        let knownDecision = decide(&known, snapshot)
        #expect(knownDecision.log.contains { $0.text.hasPrefix("preempt/topo_aware: JobId=100 plan node2 gpus=0-3|4-7 level=nvlink victims=50 ") }, "\(knownDecision.log)")
        // Not a candidate (-w node1): nothing on node2 may be preempted for it.
        var pinned = snapshot
        pinned.preemptor.candidateNodes = [0]
        var third = PreemptController()
        #expect(decide(&third, pinned, topology: node1Only).action == .noVictims)
    }

    @Test func unexecutedPlanIsRemade() {
        var controller = PreemptController()
        let snapshot = Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]])
        _ = decide(&controller, snapshot)
        let again = decide(&controller, snapshot)
        #expect(again.action == .onlyVictims([1, 3]))
        #expect(!again.log.contains { $0.level == .info })
        #expect(!again.newPlan)
    }

    @Test func keptPlanExpires() {
        var controller = PreemptController()
        _ = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]))
        _ = decide(&controller, Controller.snapshot(Self.lab, time: 3605, completing: [1, 3]))
        let late = decide(&controller, Controller.snapshot(Self.lab, time: 3605 + 301, completing: [1, 3]))
        #expect(late.log.contains { $0.level == .info && $0.text.contains("dropped: older than PlanTimeout=300s; planning again") })
        // GPUs 0-3 still completing: island 4-7 is the plan now.
        #expect(late.action == .onlyVictims([2, 4, 5]))
    }

    /// Freed GPUs taken by another job (backfill) invalidate the plan.
    @Test func stolenGPUsDropThePlan() {
        var controller = PreemptController()
        _ = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]))
        _ = decide(&controller, Controller.snapshot(Self.lab, time: 3605, completing: [1, 3]))
        // Job 1's GPUs were released and job 50 started on them.
        var stolen = Controller.snapshot(Self.lab, time: 3610, completing: [1, 3])
        stolen.jobs.append(.init(id: 50, basePriority: Controller.batchPriority, eligible: true, startTime: 3608,
                                 allocations: [.init(node: 0, gpus: GPUSet([0, 1]))]))
        let d = decide(&controller, stolen)
        #expect(d.log.contains { $0.text.contains("dropped: JobId=50 now holds GPUs 0-1 of node1") })
    }

    /// The plan's node going down drops it; with no other node the guaranteed job waits.
    @Test func unavailableNodeDropsThePlan() {
        var controller = PreemptController()
        _ = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]))
        _ = decide(&controller, Controller.snapshot(Self.lab, time: 3605, completing: [1, 3]))
        var down = Controller.snapshot(Self.lab, time: 3606, completing: [1, 3])
        down.nodes[0].available = false
        let d = decide(&controller, down)
        #expect(d.log.contains { $0.text.contains("dropped: node node1 is unavailable") })
        #expect(d.action == .noVictims)
        #expect(d.log.contains { $0.level == .info && $0.text.contains("JobId=100 no plan (") })
    }

    /// A higher-ranked preemptor takes over a lower one's GPUs; a lower-ranked one plans around
    /// a higher one's kept plan.
    @Test func higherRankTakesOverAndLowerRankPlansAround() {
        var controller = PreemptController()
        let fill: [[Int]] = [[0, 1], [4, 5], [2, 3], [6], [7]]
        _ = decide(&controller, Controller.snapshot(fill, preemptor: Controller.infer(4, id: 100, priority: 1000)))
        let high = decide(&controller, Controller.snapshot(fill, preemptor: Controller.infer(4, id: 200, priority: 5000), owners: [100]))
        #expect(high.action == .onlyVictims([1, 3]))
        #expect(high.log.contains { $0.text.contains("JobId=200 takes over the GPUs planned for JobId=100") })
        #expect(controller.planOwners == [200])
        let low = decide(&controller, Controller.snapshot(fill, preemptor: Controller.infer(4, id: 100, priority: 1000), owners: [200]))
        #expect(low.action == .onlyVictims([2, 4, 5]))
        #expect(controller.planOwners == [100, 200])
    }

    @Test func onlyPreemptorsArePlanned() {
        var controller = PreemptController()
        let snapshot = Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]], preemptor: Controller.infer(4, tag: "topo_aware:preemptible=batch"))
        let d = decide(&controller, snapshot)
        #expect(d.action == .basePolicy && d.log.isEmpty)
        // Untagged (submitted before job_submit/topo_aware was loaded): classified by partition.
        let untagged = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]], preemptor: Controller.infer(4, tag: nil)))
        #expect(untagged.action == .onlyVictims([1, 3]))
    }

    /// With two free GPUs on different islands, requeueing 1 and 2-3 would free island 0-3 but
    /// Slurm stops removing candidates once 4 GPUs are free, so it would requeue 2-3 alone and
    /// place the job on 0,2,3,4: no plan Slurm can carry out whole, the guaranteed job waits. Per
    /// socket (shaped) the same plan holds.
    @Test func plansSlurmCannotCarryOutAreNotMade() {
        var controller = PreemptController()
        let fill: [[Int]] = [[1], [2, 3], [5], [6, 7]]
        let plain = decide(&controller, Controller.snapshot(fill))
        #expect(plain.action == .noVictims)
        var shaped = Controller.infer(4)
        shaped.perSocket = true
        let d = decide(&controller, Controller.snapshot(fill, preemptor: shaped))
        #expect(d.action == .onlyVictims([3, 4]))
    }

    @Test func planOverBudgetFallsBack() {
        var controller = PreemptController()
        let slow = Controller.Clock()
        slow.step = 300_000_000
        let d = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]), clock: slow)
        #expect(d.action == .basePolicy)
        #expect(d.log.map(\.text) == ["preempt/topo_aware: JobId=100 plan took 300000us, over PlanTimeBudget=200ms; base policy"])
        // Logged once per job and reason.
        let again = decide(&controller, Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]]), clock: slow)
        #expect(!again.log.contains { $0.level == .info })
    }

    @Test func inconsistentStateFallsBack() {
        var controller = PreemptController()
        var snapshot = Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]])
        snapshot.nodes[0].allocated = GPUSet(2...7)
        let d = decide(&controller, snapshot)
        #expect(d.action == .basePolicy)
        #expect(d.log.map(\.text) == ["preempt/topo_aware: JobId=100 inconsistent state: job 1 holds GPUs 0-1 of node1, which Slurm has not allocated (2-7); base policy"])
        // The caller is told its view of the jobs is stale (the C side reads its index again).
        #expect(d.inconsistent && d.targetNodes.isEmpty)
        var twice = Controller.snapshot([[0, 1], [1, 5]])
        twice.nodes[0].allocated = GPUSet([0, 1, 5])
        #expect(decide(&controller, twice).action == .basePolicy)
        var bad = Controller.snapshot([[0, 1]])
        bad.jobs[0].allocations[0].node = 7
        #expect(decide(&controller, bad).action == .basePolicy)
    }

    /// Hostile times (unset or skewed start times, a negative clock) never trap.
    @Test func extremeTimesAreClamped() {
        var controller = PreemptController()
        var snapshot = Controller.snapshot(Self.lab, time: -5)
        snapshot.jobs[0].startTime = .min
        snapshot.jobs[1].startTime = .max
        snapshot.exemptSeconds = .max
        #expect(decide(&controller, snapshot).action == .noVictims)
        snapshot.exemptSeconds = 0
        snapshot.time = .max
        #expect(decide(&controller, snapshot).action == .onlyVictims([1, 3]))
    }

    /// A node whose GPU count disagrees with gres.conf is left out (logged once); no topology
    /// at all means the base policy.
    @Test func topologyMismatchesAreReported() {
        var controller = PreemptController()
        var snapshot = Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]])
        snapshot.nodes[0].gpuCount = 4
        let d = decide(&controller, snapshot)
        #expect(d.log.contains { $0.text == "preempt/topo_aware: node node1: Slurm counts 4 GPUs (allocated 0-7) but gres.conf describes 8; the node is left to the base policy" })
        #expect(!decide(&controller, snapshot).log.contains { $0.text.contains("Slurm counts") })
        let none = controller.decide(snapshot, config: Controller.config, topology: nil, settings: settings, clock: Controller.Clock().read)
        #expect(none.action == .basePolicy)
        #expect(none.log.map(\.text) == ["preempt/topo_aware: JobId=100 no GPU topology loaded (gres.conf); base policy"])
    }

    /// Best-effort: a 4-GPU job on NVLink pairs cannot be nvlink-aligned; it gets the best level
    /// reachable, its victims first among the base policy's candidates.
    @Test func bestEffortDegrades() {
        var controller = PreemptController()
        let p = Controller.infer(4, tag: "topo_aware:preemptor=inference,level=nvlink,mode=best-effort")
        let d = decide(&controller, Controller.snapshot([[0], [4], [1, 2], [5], [3], [6, 7]], preemptor: p), topology: pairs)
        guard case let .victimsFirst(victims) = d.action else { Issue.record("\(d.action)"); return }
        #expect(!victims.isEmpty)
        #expect(d.log.contains { $0.level == .info && $0.text.contains("(degraded, required nvlink)") })
    }

    /// Planned victims exclude PreemptExemptTime and jobs the base policy does not allow.
    @Test func baseEligibilityAndExemptTimeAreHonoured() {
        var controller = PreemptController()
        var snapshot = Controller.snapshot([[0, 1], [4, 5], [2, 3], [6], [7]])
        snapshot.jobs[0].eligible = false  // job 1 on 0-1: e.g. PreemptMode=OFF partition
        let d = decide(&controller, snapshot)
        #expect(d.action == .onlyVictims([2, 4, 5]))
        // Jobs started at 0, 60, 120, 180, 240; at 400 with PreemptExemptTime=300 only jobs 1
        // and 2 may go: no island can be freed, the guaranteed job waits.
        var recent = Controller.snapshot(Self.lab, time: 400)
        recent.exemptSeconds = 300
        let d2 = decide(&controller, recent)
        #expect(d2.action == .noVictims)
        recent.exemptSeconds = 200
        #expect(decide(&controller, recent).action == .onlyVictims([1, 3]))
    }
}
