import Testing
@testable import TopoEngine

/// preempt/topo_aware's C side as a model: its job index by slot (a job leaving frees its slot,
/// the last job moves in), the node table, and what changed since the last slot snapshot. It
/// hands the controller either a whole snapshot (`decide`) or what changed (`decideLive`).
struct IndexModel {
    struct Job {
        var id: UInt32
        var start: Int64
        var draining: Bool
        var allocations: [ControllerSnapshot.Job.Allocation]
        var eligible: Bool
        var basePriority: Int
    }

    var nodes: [ControllerSnapshot.Node]
    var slots: [Job] = []
    var dirtySlots: [Int] = []
    var dirtyNodes: Set<Int> = []
    var everything = true
    var epoch: UInt64 = 1
    var sequence: UInt64 = 0
    var nextID: UInt32 = 1

    init(nodes: Int) {
        self.nodes = (0..<nodes).map { .init(name: "n\($0)", available: true, gpuCount: 8, allocated: GPUSet()) }
    }

    mutating func start(_ gpus: [(node: Int, gpus: GPUSet)], time: Int64, eligible: Bool = true, priority: Int = 1 << 16 | 1) {
        for (node, set) in gpus { nodes[node].allocated = nodes[node].allocated.union(set) }
        slots.append(Job(id: nextID, start: time, draining: false, allocations: gpus.map { .init(node: $0.node, gpus: $0.gpus) },
                         eligible: eligible, basePriority: priority))
        nextID += 1
        dirtySlots.append(slots.count - 1)
        dirtyNodes.formUnion(gpus.map(\.node))
    }

    /// The job in slot `s` ends: its GPUs are freed, the last job takes its slot.
    mutating func end(_ s: Int) {
        for allocation in slots[s].allocations {
            nodes[allocation.node].allocated = nodes[allocation.node].allocated.subtracting(allocation.gpus)
            dirtyNodes.insert(allocation.node)
        }
        let last = slots.count - 1
        if s != last {
            slots[s] = slots[last]
            dirtySlots.append(s)
        }
        slots.removeLast()
    }

    mutating func signal(_ s: Int) {
        slots[s].draining = true
        dirtySlots.append(s)
        dirtyNodes.formUnion(slots[s].allocations.map(\.node))
    }

    mutating func setAvailable(_ node: Int, _ available: Bool) {
        nodes[node].available = available
        dirtyNodes.insert(node)
    }

    /// GPUs Slurm holds without a running job (a completing job's).
    mutating func hold(_ node: Int, _ gpus: GPUSet) {
        nodes[node].allocated = nodes[node].allocated.union(gpus)
        dirtyNodes.insert(node)
    }

    func header(time: Int64, preemptor: ControllerSnapshot.Preemptor, owners: Set<UInt32> = []) -> ControllerSnapshot {
        ControllerSnapshot(time: time, nodes: [], jobs: [], preemptor: preemptor, pendingOwners: owners)
    }

    func snapshot(time: Int64, preemptor: ControllerSnapshot.Preemptor, owners: Set<UInt32> = []) -> ControllerSnapshot {
        ControllerSnapshot(time: time, nodes: nodes, jobs: slots.map {
            .init(id: $0.id, basePriority: $0.basePriority, eligible: $0.eligible, startTime: $0.start,
                  allocations: $0.allocations, draining: $0.draining)
        }, preemptor: preemptor, pendingOwners: owners)
    }

    /// What changed since the last update (everything when due); resets the dirty lists.
    mutating func update() -> LiveUpdate {
        sequence += 1
        let all = everything
        let slotList = all ? Array(slots.indices) : dirtySlots
        let nodeList = all ? Array(nodes.indices) : dirtyNodes.sorted()
        let update = LiveUpdate(
            epoch: epoch, sequence: sequence, everything: all, nodeCount: nodes.count, slotCount: slots.count,
            nodes: nodeList.map { ($0, nodes[$0]) },
            slots: slotList.map { s in
                (s, s < slots.count ? LiveSlot(id: slots[s].id, startTime: slots[s].start, draining: slots[s].draining,
                                               allocations: slots[s].allocations) : nil)
            })
        dirtySlots = []
        dirtyNodes = []
        everything = false
        return update
    }

    func fill(_ priorities: inout [Int], _ eligible: inout [Bool]) {
        for s in slots.indices where s < priorities.count && s < eligible.count {
            priorities[s] = slots[s].basePriority
            eligible[s] = slots[s].eligible
        }
    }
}

@Suite struct LiveIndexTests {
    static let layoutOfNode = Dictionary(uniqueKeysWithValues: (0..<12).map { ("n\($0)", 0) })
    let topology = ControllerTopology(layouts: [Lab.islands], gpuCounts: [8], layoutOfNode: Self.layoutOfNode)
    let settings = PreemptSettings()

    /// Decides live (what changed) and on the whole snapshot, on two controllers: the same
    /// answers, targets, plans.
    func both(_ model: inout IndexModel, _ live: inout PreemptController, _ whole: inout PreemptController,
              time: Int64, preemptor: ControllerSnapshot.Preemptor, owners: Set<UInt32> = [],
              topology: ControllerTopology? = nil) -> (PreemptDecision, PreemptDecision) {
        let topology = topology ?? self.topology
        let reference = whole.decide(model.snapshot(time: time, preemptor: preemptor, owners: owners), config: Controller.config,
                                     topology: topology, settings: settings, clock: Controller.Clock().read)
        let update = model.update()
        let view = model
        var decision = live.decideLive(model.header(time: time, preemptor: preemptor, owners: owners), update: update,
                                       attributes: view.fill, config: Controller.config, topology: topology,
                                       settings: settings, clock: Controller.Clock().read)
        if decision.resync {
            model.everything = true
            let again = model.update()
            decision = live.decideLive(model.header(time: time, preemptor: preemptor, owners: owners), update: again,
                                       attributes: view.fill, config: Controller.config, topology: topology,
                                       settings: settings, clock: Controller.Clock().read)
        }
        return (decision, reference)
    }

    /// One decision on what changed since the model's last update.
    func step(_ live: inout PreemptController, _ model: inout IndexModel, time: Int64,
              _ p: ControllerSnapshot.Preemptor) -> PreemptDecision {
        let update = model.update()
        return live.decideLive(model.header(time: time, preemptor: p), update: update, attributes: model.fill,
                               config: Controller.config, topology: topology, settings: settings, clock: Controller.Clock().read)
    }

    @Test func randomChangesDecideAsWholeSnapshots() throws {
        var rng = SplitMix64(seed: 15)
        var model = IndexModel(nodes: 12)
        var live = PreemptController(), whole = PreemptController()
        var time: Int64 = 1000
        var decided = 0, planned = 0, resyncs = 0
        for round in 0..<400 {
            time += Int64(rng.next() % 30)
            // Changes: jobs start on free GPUs, end, get signalled; nodes go down and up; GPUs
            // held by completing jobs.
            for _ in 0..<Int(rng.next() % 4) {
                let node = Int(rng.next() % 12)
                let free = GPUSet.first(8).subtracting(model.nodes[node].allocated)
                guard !free.isEmpty else { continue }
                let want = 1 + Int(rng.next() % 2)
                let gpus = GPUSet(free.prefix(want))
                if rng.next() % 8 == 0, let other = (0..<12).first(where: { $0 != node && model.nodes[$0].allocated.count < 8 }) {
                    let gpus2 = GPUSet(GPUSet.first(8).subtracting(model.nodes[other].allocated).prefix(1))
                    model.start([(node, gpus), (other, gpus2)], time: time - Int64(rng.next() % 3000), eligible: rng.next() % 5 != 0)
                } else {
                    model.start([(node, gpus)], time: time - Int64(rng.next() % 3000), eligible: rng.next() % 5 != 0,
                                priority: rng.next() % 4 == 0 ? 2 << 16 | 1 : 1 << 16 | 1)
                }
            }
            if !model.slots.isEmpty, rng.next() % 3 == 0 { model.end(Int(rng.next() % UInt64(model.slots.count))) }
            if !model.slots.isEmpty, rng.next() % 10 == 0 { model.signal(Int(rng.next() % UInt64(model.slots.count))) }
            if rng.next() % 15 == 0 { model.setAvailable(Int(rng.next() % 12), rng.next() % 3 != 0) }
            if rng.next() % 25 == 0 {
                let node = Int(rng.next() % 12)
                let free = GPUSet.first(8).subtracting(model.nodes[node].allocated)
                if let gpu = free.min() { model.hold(node, GPUSet([gpu])) }
            }
            if round % 97 == 96 { model.everything = true }
            let id = 1000 + UInt32(rng.next() % 3)
            let preemptor = Controller.infer(rng.next() % 2 == 0 ? 4 : 2, id: id,
                                             tag: rng.next() % 2 == 0 ? "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed"
                                                 : "topo_aware:preemptor=inference,level=nvlink,mode=best-effort")
            var withCandidates = preemptor
            if rng.next() % 4 == 0 { withCandidates.candidateNodes = (0..<12).filter { _ in rng.next() % 2 == 0 } }
            let before = model.sequence
            let (decision, reference) = both(&model, &live, &whole, time: time, preemptor: withCandidates, owners: [1000, 1001, 1002])
            if model.sequence > before + 1 { resyncs += 1 }
            #expect(decision.action == reference.action, "round \(round)")
            #expect(decision.targetNodes == reference.targetNodes, "round \(round)")
            #expect(decision.newPlan == reference.newPlan, "round \(round)")
            #expect(decision.inconsistent == reference.inconsistent, "round \(round)")
            #expect(decision.log.map(\.text) == reference.log.map(\.text), "round \(round)")
            #expect(live.plans == whole.plans, "round \(round)")
            decided += 1
            if decision.newPlan { planned += 1 }
        }
        #expect(decided == 400)
        #expect(planned > 20)
        #expect(resyncs == 0)
    }

    @Test func anUpdateThatDoesNotFollowAsksForEverything() {
        var model = IndexModel(nodes: 2)
        model.start([(0, GPUSet(0...3))], time: 0)
        model.start([(0, GPUSet(4...7))], time: 0)
        model.start([(1, GPUSet(0...7))], time: 0, eligible: false)
        var live = PreemptController()
        let p = Controller.infer(4)
        let first = step(&live, &model, time: 100, p)
        #expect(!first.resync)
        #expect(first.action == .onlyVictims([1]))
        _ = model.update()  // lost on the way
        model.end(0)
        let skipped = step(&live, &model, time: 101, p)
        #expect(skipped.resync)
        #expect(skipped.action == .basePolicy)
        #expect(skipped.log.isEmpty)
        model.everything = true
        let again = step(&live, &model, time: 101, p)
        #expect(!again.resync)
        // Job 3 moved into slot 0; the plan's victim is gone: it waits for its GPUs (0-3 of n0).
        #expect(again.action == .noVictims)
        #expect(again.targetNodes == [0])

        // A new epoch (the C index rebuilt) with only changes: everything is needed.
        model.epoch += 1
        model.end(0)
        let stale = step(&live, &model, time: 102, p)
        #expect(stale.resync)
    }

    @Test func contradictionsAreInconsistentAndDropTheKeptState() {
        var model = IndexModel(nodes: 2)
        model.start([(0, GPUSet(0...3))], time: 0)
        var live = PreemptController()
        let p = Controller.infer(4)
        _ = step(&live, &model, time: 100, p)
        // A second job on GPUs the first holds.
        model.start([(0, GPUSet(2...5))], time: 0)
        let bad = step(&live, &model, time: 101, p)
        #expect(bad.inconsistent)
        #expect(bad.action == .basePolicy)
        #expect(bad.log.contains { $0.text.contains("GPUs 2-3 of n0 are held by job 2 and another job") })
        // Nothing kept: the next update must be everything.
        model.end(1)
        let next = step(&live, &model, time: 102, p)
        #expect(next.resync)
    }

    @Test func aTopologyReloadDerivesAgainWithoutAResync() {
        var model = IndexModel(nodes: 2)
        model.start([(0, GPUSet(0...1))], time: 0)
        model.start([(0, GPUSet(4...7))], time: 0)
        model.start([(1, GPUSet(0...7))], time: 0)
        var live = PreemptController(), whole = PreemptController()
        let p = Controller.infer(2)
        var (decision, reference) = both(&model, &live, &whole, time: 100, preemptor: p)
        #expect(decision.action == reference.action)
        var pairs = ControllerTopology(layouts: [Lab.pairs], gpuCounts: [8], layoutOfNode: ["n0": 0, "n1": 0])
        pairs.generation = 7
        let before = model.sequence
        (decision, reference) = both(&model, &live, &whole, time: 101, preemptor: p, topology: pairs)
        #expect(model.sequence == before + 1)
        #expect(decision.action == reference.action)
        #expect(decision.targetNodes == reference.targetNodes)
    }
}
