import Testing
@testable import TopoEngine

@Suite struct WorkloadTests {
    /// The hand-written math matches known values closely enough for variates.
    @Test func mathHelpers() {
        #expect(abs(WorkloadSpec.log(1) - 0) < 1e-12)
        #expect(abs(WorkloadSpec.log(10) - 2.302_585_092_994_046) < 1e-9)
        #expect(abs(WorkloadSpec.log(1e-9) + 20.723_265_836_946_41) < 1e-7)
        #expect(abs(WorkloadSpec.exp(1) - 2.718_281_828_459_045) < 1e-9)
        #expect(abs(WorkloadSpec.exp(-3.5) - 0.030_197_383_422_318_5) < 1e-12)
        #expect(abs(WorkloadSpec.cosine(0) - 1) < 1e-12)
        #expect(abs(WorkloadSpec.cosine(Double.pi) + 1) < 1e-9)
        #expect(abs(WorkloadSpec.cosine(100) - 0.862_318_872_287_684) < 1e-9)
    }

    @Test func generationIsDeterministicAndShaped() {
        let spec = WorkloadSpec(seconds: 2 * 86_400, seed: 7, inferencePerDay: 200)
        let a = spec.generate(totalGPUs: 320), b = spec.generate(totalGPUs: 320)
        #expect(a == b)
        #expect(a != WorkloadSpec(seconds: 2 * 86_400, seed: 8, inferencePerDay: 200).generate(totalGPUs: 320))
        let inference = a.filter { $0.kind == .inference }
        // About 200 a day over two days (Poisson): well within 25%.
        #expect(inference.count > 300 && inference.count < 500, "\(inference.count)")
        #expect(inference.allSatisfy { [2, 4].contains($0.gpus) && $0.priority == 10 })
        // Daily curve: more arrivals in the 6 hours around the 14:00 peak than around 02:00.
        let hour = { (job: SimJob) in Int(job.submit % 86_400 / 3600) }
        let peak = inference.filter { (11...16).contains(hour($0)) }.count
        let trough = inference.filter { (23...23).contains(hour($0)) || (0...4).contains(hour($0)) }.count
        #expect(peak > 2 * trough, "peak \(peak), trough \(trough)")
        // Batch: the warm-up fills the cluster at time 0; sizes from the distribution.
        let batch = a.filter { $0.kind == .batch }
        #expect(batch.filter { $0.submit == 0 }.reduce(0) { $0 + $1.gpus } >= 320)
        #expect(Set(batch.map(\.gpus)).isSubset(of: [1, 2, 4, 8]))
        #expect(batch.allSatisfy { $0.duration >= 60 && $0.duration <= 2 * 86_400 })
        #expect(zip(a, a.dropFirst()).allSatisfy { $0.submit <= $1.submit })
        // Merged as drawn: the order of a stable sort of the inference jobs then the batch jobs.
        #expect(a == (inference + batch).sorted { $0.submit < $1.submit })
        #expect(a.filter { $0.submit == 0 }.first?.kind == .inference || inference.allSatisfy { $0.submit > 0 })
    }

    @Test func csvTraces() throws {
        let jobs = try WorkloadSpec.parseCSV("""
            # a trace
            class,submit,gpus,duration,priority
            batch,0,2,3600,
            inference,60,4,7200,20\r
            """, file: "t.csv")
        #expect(jobs == [SimJob(submit: 0, gpus: 2, duration: 3600, kind: .batch, priority: 1),
                         SimJob(submit: 60, gpus: 4, duration: 7200, kind: .inference, priority: 20)])
        let cases: [(String, String)] = [
            ("submit,gpus,class\n", "t.csv:1:1: header lacks column 'duration' (expected submit,gpus,duration,class[,priority])"),
            ("submit,gpus,duration,class\n0,0,10,batch\n", "t.csv:2:1: gpus '0' is not a whole number from 1 to 64"),
            ("submit,gpus,duration,class\n0,1,10,train\n", "t.csv:2:1: class 'train' is neither inference nor batch"),
            ("submit,gpus,duration,class\n-5,1,10,batch\n", "t.csv:2:1: submit '-5' is not a whole number from 0 to 1099511627776"),
            ("", "t.csv:1:1: empty trace: no header line"),
        ]
        for (text, message) in cases {
            #expect(throws: TextDiagnostic.self) { try WorkloadSpec.parseCSV(text, file: "t.csv") }
            do { _ = try WorkloadSpec.parseCSV(text, file: "t.csv") } catch { #expect(error.description == message) }
        }
        // Nodes, CPUs and memory per node, optional.
        let sized = try WorkloadSpec.parseCSV("submit,gpus,duration,class,nodes,cpus,memory\n0,8,600,batch,2,64,512000\n5,4,60,inference,,,\n", file: "t.csv")
        #expect(sized == [SimJob(submit: 0, gpus: 8, duration: 600, kind: .batch, priority: 1, nodes: 2, cpus: 64, memoryMB: 512_000),
                          SimJob(submit: 5, gpus: 4, duration: 60, kind: .inference, priority: 10)])
        do {
            _ = try WorkloadSpec.parseCSV("submit,gpus,duration,class,cpus\n0,1,10,batch,0\n", file: "t.csv")
            Issue.record("a job of 0 CPUs was accepted")
        } catch {
            #expect(error.description == "t.csv:2:1: cpus '0' is not a whole number from 1 to 65535")
        }
        // Multi-node inference (NVLink domains of topology/block).
        let multi = try WorkloadSpec.parseCSV("submit,gpus,duration,class,nodes\n0,4,10,inference,2\n", file: "t.csv")
        #expect(multi == [SimJob(submit: 0, gpus: 4, duration: 10, kind: .inference, priority: 10, nodes: 2)])
    }

    /// CPUs, memory and nodes are drawn only when asked for: the default trace is the one
    /// before they existed (every job 1 CPU, no memory, one node); asked for, per GPU from
    /// the lists, and only the largest batch jobs span nodes.
    @Test func resourcesAndMultiNodeJobs() {
        let plain = WorkloadSpec(seconds: 86_400, seed: 9, inferencePerDay: 100).generate(totalGPUs: 256)
        #expect(plain.allSatisfy { $0.cpus == 1 && $0.memoryMB == 0 && $0.nodes == 1 })
        var spec = WorkloadSpec(seconds: 86_400, seed: 9, inferencePerDay: 100)
        spec.batchResources = ResourceDraw(cpusPerGPU: [(4, 1), (16, 1)], memoryPerGPU: [(64_000, 1)])
        spec.inferenceResources = ResourceDraw(cpusPerGPU: [(8, 1)])
        spec.multiNodeFraction = 0.5
        spec.multiNodeCounts = [2, 4]
        let jobs = spec.generate(totalGPUs: 256)
        #expect(jobs == spec.generate(totalGPUs: 256))
        let batch = jobs.filter { $0.kind == .batch }, inference = jobs.filter { $0.kind == .inference }
        #expect(batch.allSatisfy { ($0.cpus == 4 * $0.gpus || $0.cpus == 16 * $0.gpus) && $0.memoryMB == 64_000 * Int64($0.gpus) })
        #expect(Set(batch.map { $0.cpus / $0.gpus }) == [4, 16])
        #expect(inference.allSatisfy { $0.cpus == 8 * $0.gpus && $0.memoryMB == 0 && $0.nodes == 1 })
        let multi = batch.filter { $0.nodes > 1 }
        #expect(multi.allSatisfy { $0.gpus == 8 } && Set(multi.map(\.nodes)) == [2, 4])
        let eights = batch.filter { $0.gpus == 8 }.count
        #expect(Double(multi.count) > 0.35 * Double(eights) && Double(multi.count) < 0.65 * Double(eights), "\(multi.count) of \(eights)")
    }
}

@Suite struct SimulatorTests {
    static func setup(_ types: [(SimNodeType, Int)]) -> SimulationSetup {
        SimulationSetup(nodeTypes: types.map { ($0.0.layout, $0.0.rawValue, $0.1) })
    }

    /// The lab's full node as a trace: five batch jobs (2 2 2 1 1), then a 4-GPU inference job.
    /// Stock Slurm's model splits it over both islands; TopoPreempt frees island 0-3.
    @Test func labTraceUnderEachPolicy() throws {
        var jobs = [2, 2, 2, 1, 1].enumerated().map { i, g in
            SimJob(submit: Int64(i), gpus: g, duration: 86_400, kind: .batch, priority: 1)
        }
        jobs.append(SimJob(submit: 600, gpus: 4, duration: 3600, kind: .inference, priority: 10))
        let setup = Self.setup([(.islands, 1)])
        var results: [SimPolicy: SimMetrics] = [:]
        for policy in SimPolicy.standard {
            results[policy] = try Simulator.run(setup: setup, policy: policy, jobs: jobs, until: 1200).metrics
        }
        #expect(results[.stock]?.preemptions == 1 && results[.stock]?.alignedPreemptions == 0)
        #expect(results[.stock]?.victims == 2)
        #expect(results[.stockShaped]?.alignedPreemptions == 1)
        #expect(results[.topoGuaranteed]?.alignedPreemptions == 1 && results[.topoGuaranteed]?.victims == 2)
        #expect(results[.topoBestEffort]?.alignedPreemptions == 1)
        // Victims were running 600 s less their submit offsets: 2 jobs x 2 GPUs.
        let lost: Int64 = 2 * 600 + 2 * 598
        #expect(results[.topoGuaranteed].map(\.gpuSecondsLost) == lost)
    }

    /// Blocks (topology/block) and a multi-node inference job, the issue's scenario mirrored by
    /// best-fit placement: sixteen 1-GPU jobs fill b1 = node1-4 first, eight 2-GPU jobs fill b2;
    /// a 4-node, 4-GPU-per-node job takes b1's sixteen under stock Slurm (oldest first), b2's
    /// eight under TopoPreempt and under youngest-first.
    @Test func multiNodeInferenceInBlocks() throws {
        var jobs = (0..<16).map { SimJob(submit: Int64($0), gpus: 1, duration: 86_400, kind: .batch, priority: 1) }
        jobs += (0..<8).map { SimJob(submit: Int64(16 + $0), gpus: 2, duration: 86_400, kind: .batch, priority: 1) }
        jobs.append(SimJob(submit: 600, gpus: 4, duration: 3600, kind: .inference, priority: 10, nodes: 4))
        var setup = Self.setup([(.gb200, 8)])
        setup.blockNodes = 4
        setup.slurm = SlurmRelease(26, 5, 3)
        var victims: [SimPolicy: Int] = [:]
        for policy in SimPolicy.standard {
            var sim = Simulator(setup: setup, policy: policy, jobs: jobs)
            try sim.prepare()
            sim.loop(until: 700, progress: nil)
            #expect(sim.metrics.preemptions == 1 && sim.metrics.inferenceStarted == 1 && sim.conflicts == 0, "\(policy)")
            victims[policy] = sim.metrics.victims
            // The job runs on the four nodes of one block.
            let parts = sim.running.filter { sim.jobs[$0.key].kind == .inference }.flatMap { sim.parts($0.key, $0.value) }
            let blocks = Set(parts.map { sim.baseNodes[$0.node].block })
            #expect(parts.count == 4 && blocks.count == 1, "\(policy): \(parts.map(\.node))")
        }
        #expect(victims[.stock] == 16 && victims[.stockShaped] == 16)
        #expect(victims[.stockYoungest] == 8 && victims[.topoGuaranteed] == 8 && victims[.topoBestEffort] == 8)
        // The oracle plans single-node jobs only.
        #expect(throws: SnapshotError.self) { try Simulator.run(setup: setup, policy: .oracle, jobs: jobs, until: 700) }
    }

    /// A day on NVL72-like racks (blocks of 18 gb200 nodes) with 2- to 8-node inference: every
    /// policy keeps its GPUs consistent and starts every inference job inside one block.
    @Test func nvl72DayIsConsistent() throws {
        var setup = Self.setup([(.gb200, 36)])
        setup.blockNodes = 18
        setup.slurm = SlurmRelease(24, 11, 5)
        var spec = WorkloadSpec(seconds: 86_400, seed: 3, inferencePerDay: 12, inferenceGPUs: [4],
                                batchSizes: [(1, 0.45), (2, 0.3), (4, 0.25)])
        spec.inferenceNodes = [2, 4, 8]
        let jobs = spec.generate(totalGPUs: 144)
        #expect(Set(jobs.filter { $0.kind == .inference }.map(\.nodes)) == [2, 4, 8])
        for policy in SimPolicy.standard {
            var sim = Simulator(setup: setup, policy: policy, jobs: jobs)
            try sim.prepare()
            sim.loop(until: spec.seconds, progress: nil)
            #expect(sim.metrics.preemptions >= 8 && sim.conflicts == 0, "\(policy): \(sim.metrics.preemptions) preemptions")
            #expect(sim.metrics.inferenceUnstarted <= 2, "\(policy)")
            for (j, run) in sim.running where sim.jobs[j].kind == .inference {
                #expect(Set(sim.parts(j, run).map { sim.baseNodes[$0.node].block }).count == 1, "\(policy) job \(j)")
            }
        }
    }

    /// Drain time: the victims hold their GPUs for the epilog, the plan's GPUs are held for the
    /// preemptor meanwhile (a batch job submitted then does not take them), and the preemptor
    /// starts when its last victim has drained. With no drain the trace replays as before.
    @Test func victimsDrainBeforeThePreemptorStarts() throws {
        var jobs = [2, 2, 2, 1, 1].enumerated().map { i, g in
            SimJob(submit: Int64(i), gpus: g, duration: 86_400, kind: .batch, priority: 1)
        }
        jobs.append(SimJob(submit: 600, gpus: 4, duration: 3600, kind: .inference, priority: 10))
        // A 4-GPU batch job arriving while the victims drain: nothing else is free for it.
        jobs.append(SimJob(submit: 605, gpus: 4, duration: 60, kind: .batch, priority: 1))
        var setup = Self.setup([(.islands, 1)])
        let instant = try Simulator.run(setup: setup, policy: .topoGuaranteed, jobs: jobs, until: 1200).metrics
        #expect(instant.inferenceWaitP50 == 0 && instant.preemptionWaitP99 == 0 && instant.drainGPUSeconds == 0)
        setup.drain = DrainModel(graceTime: 0, killWait: 30, exitMean: 0, epilog: 20)
        let drained = try Simulator.run(setup: setup, policy: .topoGuaranteed, jobs: jobs, until: 1200).metrics
        #expect(drained.alignedPreemptions == 1 && drained.victims == 2)
        #expect(drained.inferenceWaitP50 == 20 && drained.preemptionWaitP50 == 20 && drained.preemptionWaitP99 == 20)
        // Two 2-GPU victims drain 20 s each; nothing else is held (the plan's GPUs are all theirs).
        #expect(drained.drainGPUSeconds == 2 * 2 * 20)
        // The batch job of 605 s never got the held GPUs: still waiting at the end with the
        // requeued victims (they cannot fit either), so nothing but the inference job started.
        #expect(drained.batchCompleted == 0 && drained.inferenceStarted == 1)
        // Exits drawn per victim, capped by GraceTime + KillWait: a preemption waits for its
        // slowest victim, never more than the cap plus the epilog.
        setup.drain = DrainModel(graceTime: 5, killWait: 10, exitMean: 1000, epilog: 2)
        let capped = try Simulator.run(setup: setup, policy: .topoGuaranteed, jobs: jobs, until: 1200).metrics
        #expect(capped.preemptionWaitP99 == 17)
        let model = DrainModel(graceTime: 0, killWait: 1_000_000, exitMean: 30, epilog: 0)
        let draws = (0..<2000).map { model.seconds(job: $0, run: 1) }
        let mean = Double(draws.reduce(0, +)) / Double(draws.count)
        #expect(mean > 25 && mean < 35, "mean exit \(mean)")
        #expect(draws == (0..<2000).map { model.seconds(job: $0, run: 1) })
        #expect(model.seconds(job: 7, run: 1) != model.seconds(job: 7, run: 2) || model.seconds(job: 8, run: 1) != model.seconds(job: 8, run: 2))
    }

    /// Every policy's run with drain time keeps the GPUs consistent: no GPU both free and
    /// held, draining GPUs come back, all preemptors start.
    /// (With an epilog every victim drains; without one, short exits round to no drain at all,
    /// so some victims of a preemption free their GPUs at once and others later.)
    @Test(arguments: [DrainModel(graceTime: 0, killWait: 30, exitMean: 10, epilog: 5),
                      DrainModel(graceTime: 0, killWait: 30, exitMean: 1, epilog: 0)])
    func drainTimeKeepsEveryPolicyConsistent(drain: DrainModel) throws {
        var setup = Self.setup([(.islands, 4), (.pairs, 4)])
        setup.drain = drain
        let spec = WorkloadSpec(seconds: 86_400, seed: 5, inferencePerDay: 40)
        let jobs = spec.generate(totalGPUs: 64)
        for policy in SimPolicy.standard {
            var sim = Simulator(setup: setup, policy: policy, jobs: jobs)
            try sim.prepare()
            sim.loop(until: spec.seconds, progress: nil)
            #expect(sim.metrics.preemptions > 5, "\(policy)")
            #expect(sim.metrics.preemptionWaitP99 > 0 && sim.metrics.preemptionWaitP99 <= 35, "\(policy): \(sim.metrics.preemptionWaitP99)")
            #expect(sim.conflicts == 0, "\(policy): \(sim.conflicts) jobs started on GPUs in use")
            // Every preemptor started: none left waiting for victims at the end of the day.
            #expect(sim.waitingPlans.isEmpty || sim.waitingPlans.values.allSatisfy { $0.since > spec.seconds - 60 })
            for n in sim.free.indices {
                #expect(sim.free[n].intersection(sim.held[n]).isEmpty && sim.free[n].intersection(sim.draining[n]).isEmpty)
                let running = sim.running.flatMap { sim.parts($0.key, $0.value) }.filter { $0.node == n }.reduce(GPUSet()) { $0.union($1.gpus) }
                #expect(running.intersection(sim.free[n]).isEmpty && running.intersection(sim.draining[n]).isEmpty, "\(policy) node \(n)")
            }
        }
    }

    /// The lab's `2 2 2 1 1` with 0-1 and 4-5 ended: a plain 4-GPU request fits at once on
    /// 0-1,4-5 (split) and starts there under every unshaped policy, preemption never asked;
    /// shaped to a socket (stock-shaped, and topo-guaranteed on islands) it preempts 2-3.
    @Test func misalignedStartsWithoutPreemption() throws {
        var jobs = [2, 2, 2, 1, 1].enumerated().map { i, g in
            SimJob(submit: Int64(i), gpus: g, duration: i < 2 ? 300 : 86_400, kind: .batch, priority: 1)
        }
        jobs.append(SimJob(submit: 600, gpus: 4, duration: 3600, kind: .inference, priority: 10))
        var results: [SimPolicy: SimMetrics] = [:]
        for policy in SimPolicy.standard {
            results[policy] = try Simulator.run(setup: Self.setup([(.islands, 1)]), policy: policy, jobs: jobs, until: 1200).metrics
        }
        for policy in [SimPolicy.stock, .stockYoungest, .topoBestEffort] {
            #expect(results[policy]?.misalignedFreeStarts == 1 && results[policy]?.preemptions == 0, "\(policy)")
        }
        for policy in [SimPolicy.stockShaped, .stockShapedYoungest, .topoGuaranteed] {
            #expect(results[policy]?.misalignedFreeStarts == 0 && results[policy]?.alignedPreemptions == 1, "\(policy)")
        }
    }

    /// The planner's view of CPUs. Node islands1 (8 CPUs) holds X (island 0-3, 4 CPUs) and Y
    /// (island 4-7, 1 CPU); islands2 four 2-GPU jobs of 1 CPU. A 4-GPU inference job of 5
    /// CPUs: given GPUs only (as preempt/topo_aware gives them), the cheapest plan requeues Y,
    /// which frees an island but one CPU: Slurm removes Y, the job still does not fit, nothing
    /// is preempted, and the job waits, planned the same at every retry. Given CPUs too, the
    /// planner requeues X instead (an island and 4 CPUs) and the job starts at once.
    @Test func cpusDecideWhichPlanSlurmCanCarryOut() throws {
        var jobs = [SimJob(submit: 0, gpus: 4, duration: 86_400, kind: .batch, priority: 1, cpus: 4),
                    SimJob(submit: 1, gpus: 4, duration: 86_400, kind: .batch, priority: 1, cpus: 1)]
        for i in 0..<4 { jobs.append(SimJob(submit: Int64(2 + i), gpus: 2, duration: 86_400, kind: .batch, priority: 1)) }
        jobs.append(SimJob(submit: 600, gpus: 4, duration: 3600, kind: .inference, priority: 10, cpus: 5))
        var setup = Self.setup([(.islands, 2)])
        setup.coresPerSocket = 4
        var sim = Simulator(setup: setup, policy: .topoGuaranteed, jobs: jobs)
        try sim.prepare()
        sim.loop(until: 1200, progress: nil)
        #expect(sim.metrics.inferenceStarted == 0 && sim.metrics.preemptions == 0)
        #expect(sim.metrics.unexecutablePlans == 11, "one per try from 600 s to 1200 s: \(sim.metrics.unexecutablePlans)")
        #expect(sim.conflicts == 0)
        setup.plannerView = .full
        var full = Simulator(setup: setup, policy: .topoGuaranteed, jobs: jobs)
        try full.prepare()
        full.loop(until: 1200, progress: nil)
        #expect(full.metrics.inferenceStarted == 1 && full.metrics.alignedPreemptions == 1 && full.metrics.victims == 1)
        #expect(full.running[0] == nil && full.running[1] != nil, "X requeued, Y kept")
        #expect(full.metrics.unexecutablePlans == 0 && full.metrics.inferenceWaitP99 == 0 && full.conflicts == 0)
        // Stock Slurm tests the whole job while it removes candidates: it never stalls.
        let stock = try Simulator.run(setup: setup, policy: .stock, jobs: jobs, until: 1200).metrics
        #expect(stock.inferenceStarted == 1 && stock.unexecutablePlans == 0)
        // Best-effort under the GPU-only view: the plan's victim first, then Slurm's own order.
        setup.plannerView = .gpus
        let bestEffort = try Simulator.run(setup: setup, policy: .topoBestEffort, jobs: jobs, until: 1200).metrics
        #expect(bestEffort.inferenceStarted == 1 && bestEffort.unexecutablePlans == 1)
    }

    /// Free GPUs Slurm cannot use: X and Y (2 GPUs, 4 CPUs each) hold all 8 CPUs of islands1
    /// and GPUs 0-1 and 4-5, so 2-3 and 6-7 are free but no job can start there. Given GPUs
    /// only, the planner sees a free pair in an island and answers "fits without preemption",
    /// so preempt/topo_aware leaves the 2-GPU job to the base policy (stock order: X, the
    /// oldest). Given CPUs too, it plans itself (the youngest 2-GPU job on islands2: less work).
    @Test func freeGPUsWithoutCPUsGoToTheBasePolicy() throws {
        var jobs = [SimJob(submit: 0, gpus: 2, duration: 86_400, kind: .batch, priority: 1, cpus: 4),
                    SimJob(submit: 1, gpus: 2, duration: 86_400, kind: .batch, priority: 1, cpus: 4)]
        for i in 0..<4 { jobs.append(SimJob(submit: Int64(2 + i), gpus: 2, duration: 86_400, kind: .batch, priority: 1)) }
        jobs.append(SimJob(submit: 600, gpus: 2, duration: 3600, kind: .inference, priority: 10))
        var setup = Self.setup([(.islands, 2)])
        setup.coresPerSocket = 4
        var metrics: [PlannerView: SimMetrics] = [:]
        var requeued: [PlannerView: [Int]] = [:]
        for view in PlannerView.allCases {
            setup.plannerView = view
            var sim = Simulator(setup: setup, policy: .topoGuaranteed, jobs: jobs)
            try sim.prepare()
            sim.loop(until: 1200, progress: nil)
            #expect(sim.conflicts == 0 && sim.metrics.inferenceStarted == 1 && sim.metrics.preemptions == 1, "\(view)")
            metrics[view] = sim.metrics
            requeued[view] = (0..<6).filter { sim.running[$0] == nil }
        }
        #expect(metrics[.gpus]?.basePolicyPreemptions == 1 && metrics[.full]?.basePolicyPreemptions == 0)
        #expect(requeued[.gpus] == [0] && requeued[.full] == [5], "\(requeued)")
        #expect((metrics[.gpus]?.strandedGPUSeconds ?? 0) >= 4 * 599)
    }

    /// A 2-node batch job holds GPUs, CPUs and memory on both nodes; preempted, it frees both
    /// (its lost work counts all 16 GPUs) and a batch job then starts on the other node.
    @Test func multiNodeJobsArePlacedAndPreemptedWhole() throws {
        let jobs = [SimJob(submit: 0, gpus: 8, duration: 86_400, kind: .batch, priority: 1, nodes: 2, cpus: 16, memoryMB: 100_000),
                    SimJob(submit: 600, gpus: 4, duration: 3600, kind: .inference, priority: 10),
                    SimJob(submit: 700, gpus: 8, duration: 60, kind: .batch, priority: 1, cpus: 8, memoryMB: 150_000)]
        var setup = Self.setup([(.islands, 2)])
        setup.memoryPerNodeMB = 200_000
        for policy in [SimPolicy.stock, .topoGuaranteed] {
            for view in PlannerView.allCases {
                setup.plannerView = view
                var sim = Simulator(setup: setup, policy: policy, jobs: jobs)
                try sim.prepare()
                sim.loop(until: 1200, progress: nil)
                #expect(sim.metrics.preemptions == 1 && sim.metrics.victims == 1, "\(policy) \(view)")
                #expect(sim.metrics.gpuSecondsLost == 16 * 600, "\(policy) \(view)")
                #expect(sim.metrics.batchCompleted == 1 && sim.metrics.batchGPUHoursCompleted == 8.0 * 60 / 3600, "\(policy) \(view)")
                #expect(sim.conflicts == 0)
                // The requeued job (two whole nodes) cannot start again beside the inference job.
                #expect(sim.running.count == 1)
            }
        }
        // A job no node can hold is refused at submission, not queued forever.
        let huge = [SimJob(submit: 0, gpus: 1, duration: 60, kind: .batch, priority: 1, cpus: 17)]
        let refused = try Simulator.run(setup: setup, policy: .stock, jobs: huge, until: 600).metrics
        #expect(refused.rejected == 1 && refused.batchCompleted == 0)
    }

    /// NVLink pairs: shaping cannot express a pair; only the planner aligns 2-GPU jobs.
    @Test func pairsTraceShowsWhereShapingFallsShort() throws {
        var jobs = [1, 1, 2, 1, 1, 2].enumerated().map { i, g in
            SimJob(submit: Int64(i), gpus: g, duration: 86_400, kind: .batch, priority: 1)
        }
        jobs.append(SimJob(submit: 600, gpus: 2, duration: 3600, kind: .inference, priority: 10))
        let setup = Self.setup([(.pairs, 1)])
        let stock = try Simulator.run(setup: setup, policy: .stock, jobs: jobs, until: 1200).metrics
        let shaped = try Simulator.run(setup: setup, policy: .stockShaped, jobs: jobs, until: 1200).metrics
        let topo = try Simulator.run(setup: setup, policy: .topoGuaranteed, jobs: jobs, until: 1200).metrics
        #expect(stock.alignedPreemptions == 0 && shaped.alignedPreemptions == 0)
        #expect(topo.alignedPreemptions == 1 && topo.victims == 1)
    }

    /// A two-day synthetic run: deterministic, GPUs never over-committed, every preemption of
    /// the guaranteed planner aligned and never costlier in GPU-hours than either stock variant.
    @Test func syntheticRunInvariants() throws {
        let setup = Self.setup([(.islands, 8), (.pairs, 8)])
        let spec = WorkloadSpec(seconds: 2 * 86_400, seed: 3, inferencePerDay: 40)
        let jobs = spec.generate(totalGPUs: 128)
        var metrics: [SimPolicy: SimMetrics] = [:]
        for policy in SimPolicy.standard {
            let a = try Simulator.run(setup: setup, policy: policy, jobs: jobs, until: spec.seconds)
            let b = try Simulator.run(setup: setup, policy: policy, jobs: jobs, until: spec.seconds)
            #expect(a.metrics == b.metrics && a.timeline == b.timeline, "\(policy) not deterministic")
            #expect(a.timeline.allSatisfy { $0.utilisation >= 0 && $0.utilisation <= 1 })
            #expect(a.metrics.utilisation > 0.9, "\(policy): \(a.metrics.utilisation)")
            #expect(a.timeline.count == 49)
            metrics[policy] = a.metrics
        }
        let topo = try #require(metrics[.topoGuaranteed]), stock = try #require(metrics[.stock]),
            shaped = try #require(metrics[.stockShaped])
        #expect(topo.preemptions > 40)
        #expect(topo.alignedPreemptions == topo.preemptions)
        #expect(stock.hitRate < 1 && shaped.hitRate < 1)
        #expect(topo.gpuSecondsLost <= stock.gpuSecondsLost && topo.gpuSecondsLost <= shaped.gpuSecondsLost)
        #expect(topo.victimsPerPreemption <= stock.victimsPerPreemption && topo.victimsPerPreemption <= shaped.victimsPerPreemption)
        #expect(topo.scheduledPerformance > stock.scheduledPerformance)
    }

    /// On small clusters the exhaustive oracle replays to exactly the planner's results: every
    /// preemption the same cost, so the same trajectory.
    @Test func plannerEqualsTheOracleOnSmallRuns() throws {
        for (seed, types) in [(11, [(SimNodeType.islands, 2), (.pairs, 2)]), (12, [(.pairs, 3)]), (13, [(.islands, 3), (.pcie, 1)])] as [(UInt64, [(SimNodeType, Int)])] {
            let setup = Self.setup(types)
            let gpus = types.reduce(0) { $0 + 8 * $1.1 }
            let spec = WorkloadSpec(seconds: 86_400, seed: seed, inferencePerDay: Double(gpus) * 1.5, inferenceGPUs: [2], inferenceMeanSeconds: 1800)
            let jobs = spec.generate(totalGPUs: gpus)
            let planner = try Simulator.run(setup: setup, policy: .topoGuaranteed, jobs: jobs, until: spec.seconds).metrics
            let oracle = try Simulator.run(setup: setup, policy: .oracle, jobs: jobs, until: spec.seconds).metrics
            #expect(planner.preemptions > 20, "seed \(seed): \(planner.preemptions) preemptions")
            var same = oracle
            same.policy = planner.policy
            #expect(same == planner, "seed \(seed): oracle \(oracle), planner \(planner)")
        }
        #expect(throws: SnapshotError.self) {
            try Simulator.run(setup: Self.setup([(.islands, 17)]), policy: .oracle, jobs: [], until: 10)
        }
    }

    @Test func emptyClusterIsAnError() {
        #expect(throws: SnapshotError.self) {
            try Simulator.run(setup: SimulationSetup(nodeTypes: []), policy: .stock, jobs: [], until: 10)
        }
    }

    @Test func heapOrdersEvents() {
        var heap = MinHeap<Int>()
        var rng = SplitMix64(seed: 5)
        var values: [Int] = []
        for _ in 0..<1000 {
            let v = Int(rng.next() % 10_000)
            values.append(v)
            heap.push(v)
        }
        var out: [Int] = []
        while let v = heap.pop() { out.append(v) }
        #expect(out == values.sorted())
    }

    /// The packed event: its fields back as given, ordered by time, then kind, then push order.
    @Test func eventsOrderByTimeKindOrder() {
        typealias Event = Simulator.Event
        let e = Event(time: 86_400, order: 123_456_789, kind: .planReady, job: 4_000_000, serial: -1)
        #expect(e.time == 86_400 && e.order == 123_456_789 && e.kind == .planReady && e.job == 4_000_000 && e.serial == -1)
        var rng = SplitMix64(seed: 3)
        let kinds: [Event.Kind] = [.completion, .released, .planReady, .ready, .arrival, .retry, .sample]
        let events = (0..<2000).map { i in
            Event(time: Int64(rng.next() % 50), order: i + 1, kind: kinds[Int(rng.next() % 7)], job: Int(rng.next() % 100), serial: 0)
        }
        let sorted = events.sorted()
        #expect(sorted.map { [Int($0.time), $0.kind.rawValue, $0.order] }
                == events.map { [Int($0.time), $0.kind.rawValue, $0.order] }.sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// Pushes and pops interleaved (the simulator's use): each pop the least of what is in.
    @Test func heapInterleaved() {
        var heap = MinHeap<Int>()
        var reference: [Int] = []
        var rng = SplitMix64(seed: 11)
        for step in 0..<5000 {
            if rng.next() % 3 == 0 {
                let expected = reference.min()
                if let expected { reference.remove(at: reference.firstIndex(of: expected)!) }
                #expect(heap.pop() == expected, "step \(step)")
            } else {
                let v = Int(rng.next() % 500)
                heap.push(v)
                reference.append(v)
            }
            #expect(heap.count == reference.count)
            #expect(heap.first == reference.min())
        }
    }

    /// A node's cores per socket held inline: as many sockets as the node has (at most four),
    /// each read and written alone, below zero kept (a model error the runs count).
    @Test func socketCoresBehaveAsAnArray() {
        var cores = Simulator.SocketCores(sockets: 2, cores: 16)
        #expect(Array(cores) == [16, 16] && cores.count == 2 && cores.indices == 0..<2)
        cores[1] -= 5
        cores[0] += 1
        #expect(Array(cores) == [17, 11])
        var best = 0
        for (i, count) in cores.enumerated() where count > cores[best] { best = i }
        #expect(best == 0)
        cores[0] -= 20
        #expect(cores.contains { $0 < 0 } && cores[0] == -3)
        #expect(Array(Simulator.SocketCores(sockets: 4, cores: 65_535)) == [65_535, 65_535, 65_535, 65_535])
        #expect(Simulator.SocketCores(sockets: 9, cores: 1).count == Simulator.maxSockets)
        #expect(Simulator.SocketCores(sockets: 0, cores: 1).isEmpty)
    }
}
