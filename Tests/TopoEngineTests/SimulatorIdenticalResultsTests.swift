import Foundation
import Testing
@testable import TopoEngine

/// Changes made only for speed leave every metric of every policy unchanged: small runs of each
/// node type, of CPUs and memory, of drain time, of several batch priorities and of blocks with
/// multi-node inference, replayed under every policy, against the metrics the simulator gave
/// before the kept planning index (Fixtures/simulator/metrics.json, recorded with commit 0814d77's
/// simulator: `TOPO_SIM_RECORD=FILE swift test --filter SimulatorIdenticalResultsTests` writes
/// the file again from the code under test).
@Suite struct SimulatorIdenticalResultsTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var setup: SimulationSetup
        var jobs: [SimJob]
        var until: Int64
        var policies: [SimPolicy]
        var description: String { name }
    }

    static func setup(_ types: [(SimNodeType, Int)]) -> SimulationSetup {
        SimulationSetup(nodeTypes: types.map { ($0.0.layout, $0.0.rawValue, $0.1) })
    }

    static func jobs(_ spec: WorkloadSpec, gpus: Int) -> [SimJob] { spec.generate(totalGPUs: gpus) }

    static var cases: [Case] {
        var cases: [Case] = []
        let day: Int64 = 86_400
        // The default mix at a small size, two days.
        do {
            let spec = WorkloadSpec(seconds: 2 * day, seed: 1, inferencePerDay: 90 * 128 / 1000)
            cases.append(Case(name: "mixed", setup: setup([(.islands, 8), (.pairs, 8)]), jobs: jobs(spec, gpus: 128),
                              until: spec.seconds, policies: SimPolicy.standard))
        }
        // Each node type alone, one day, more inference (more preemptions).
        for type in [SimNodeType.islands, .pairs, .pcie, .nvswitch, .gb200] {
            let gpus = 12 * (type == .gb200 ? 4 : 8)
            let spec = WorkloadSpec(seconds: day, seed: 7, inferencePerDay: Double(gpus) * 0.8)
            cases.append(Case(name: type.rawValue, setup: setup([(type, 12)]), jobs: jobs(spec, gpus: gpus), until: spec.seconds,
                              policies: SimPolicy.standard))
        }
        // CPUs, memory and multi-node batch jobs; the planner given GPUs only, then everything.
        for view in PlannerView.allCases {
            var built = setup([(.islands, 6), (.pairs, 6)])
            built.coresPerSocket = 8
            built.memoryPerNodeMB = 512_000
            built.plannerView = view
            var spec = WorkloadSpec(seconds: day, seed: 5, inferencePerDay: 60)
            spec.batchResources = ResourceDraw(cpusPerGPU: [(1, 40), (2, 35), (4, 25)], memoryPerGPU: [(16_000, 50), (64_000, 50)])
            spec.inferenceResources = ResourceDraw(cpusPerGPU: [(2, 1)], memoryPerGPU: [(32_000, 1)])
            spec.multiNodeFraction = 0.3
            spec.nodeCPUs = 16
            spec.nodeMemoryMB = 512_000
            cases.append(Case(name: "resources-\(view.rawValue)", setup: built, jobs: jobs(spec, gpus: 96), until: spec.seconds,
                              policies: SimPolicy.standard))
        }
        // Victims that take time to drain.
        do {
            var built = setup([(.islands, 6), (.pairs, 6)])
            built.drain = DrainModel(graceTime: 30, killWait: 30, exitMean: 20, epilog: 5)
            let spec = WorkloadSpec(seconds: day, seed: 9, inferencePerDay: 80)
            cases.append(Case(name: "drain", setup: built, jobs: jobs(spec, gpus: 96), until: spec.seconds, policies: SimPolicy.standard))
        }
        // Batch jobs of three priorities (stock's order by priority, then age).
        do {
            let spec = WorkloadSpec(seconds: day, seed: 4, inferencePerDay: 80)
            let jobs = jobs(spec, gpus: 96).enumerated().map { i, job in
                var job = job
                if job.kind == .batch { job.priority = 1 + i % 3 }
                return job
            }
            cases.append(Case(name: "priorities", setup: setup([(.islands, 6), (.pairs, 6)]), jobs: jobs, until: spec.seconds,
                              policies: SimPolicy.standard))
        }
        // NVL72-class racks: blocks of 6 gb200 trays, multi-node batch and inference.
        do {
            var built = setup([(.gb200, 24)])
            built.blockNodes = 6
            built.slurm = SlurmRelease(24, 11, 5)
            var spec = WorkloadSpec(seconds: day, seed: 2, inferencePerDay: 60, inferenceGPUs: [4])
            spec.batchSizes = [(1, 0.4), (2, 0.3), (4, 0.3)]
            spec.inferenceNodes = [1, 2, 4]
            spec.multiNodeFraction = 0.3
            spec.multiNodeCounts = [2, 3]
            cases.append(Case(name: "blocks", setup: built, jobs: jobs(spec, gpus: 96), until: spec.seconds,
                              policies: [.stock, .stockYoungest, .topoGuaranteed, .topoBestEffort]))
        }
        // The oracle on a small cluster.
        do {
            let spec = WorkloadSpec(seconds: day, seed: 11, inferencePerDay: 48, inferenceGPUs: [2], inferenceMeanSeconds: 1800)
            cases.append(Case(name: "oracle", setup: setup([(.islands, 2), (.pairs, 2)]), jobs: jobs(spec, gpus: 32), until: spec.seconds,
                              policies: [.oracle]))
        }
        return cases
    }

    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/simulator/metrics.json")

    static func run(_ c: Case) throws -> [String: SimMetrics] {
        var out: [String: SimMetrics] = [:]
        for policy in c.policies {
            out[policy.rawValue] = try Simulator.run(setup: c.setup, policy: policy, jobs: c.jobs, until: c.until).metrics
        }
        return out
    }

    /// At every preemption attempt of every case and policy, the kept index equals the index of
    /// a snapshot built from the whole state, and so does stock Slurm's candidate order.
    @Test(arguments: cases) func keptIndexEqualsSnapshots(_ c: Case) throws {
        for policy in c.policies {
            var sim = Simulator(setup: c.setup, policy: policy, jobs: c.jobs)
            sim.verifyKeptIndex = true
            try sim.prepare()
            sim.loop(until: c.until, progress: nil)
            #expect(sim.keptIndexMismatches.isEmpty, "\(c.name) \(policy.rawValue): \(sim.keptIndexMismatches.prefix(3))")
            #expect(sim.metrics.preemptions > 0 || c.name == "pcie", "\(c.name) \(policy.rawValue): nothing compared")
        }
    }

    @Test func everyMetricIsAsRecorded() throws {
        if let path = ProcessInfo.processInfo.environment["TOPO_SIM_RECORD"] {
            var all: [String: [String: SimMetrics]] = [:]
            for c in Self.cases { all[c.name] = try Self.run(c) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(all).write(to: URL(fileURLWithPath: path))
            return
        }
        let recorded = try JSONDecoder().decode([String: [String: SimMetrics]].self, from: Data(contentsOf: Self.fixture))
        #expect(Set(recorded.keys) == Set(Self.cases.map(\.name)))
        for c in Self.cases {
            let metrics = try Self.run(c)
            for policy in c.policies {
                let expected = recorded[c.name]?[policy.rawValue]
                #expect(expected != nil, "\(c.name) \(policy.rawValue): not recorded")
                #expect(metrics[policy.rawValue] == expected, "\(c.name) \(policy.rawValue)")
            }
            // Runs that would show nothing do not count as the same.
            #expect(metrics.values.contains { $0.preemptions > 5 }, "\(c.name): too few preemptions to compare")
        }
    }
}
