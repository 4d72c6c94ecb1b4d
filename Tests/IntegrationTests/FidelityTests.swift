import Foundation
import Testing
import TopoEngine

/// Fidelity of the stock Slurm model the simulator (`topo-preempt simulate`) replays: on seeded
/// random fills of node1, what `StockPreemption` predicts for a held inference job (read from
/// the live cluster by `topo-preempt plan --job --compare-stock`) is what the real slurmctld then
/// does when the job is released: the same victims and the same GPU indices. The model is the
/// one of the cluster's release (the CLI reads it from slurmctld; its GPU pick changed in 24.05).
enum Fidelity {
    /// With `distinctStarts` every batch job starts in a later second than the one before
    /// (Slurm's start times have 1 s resolution; youngest-first sorts by them alone), and the
    /// run also asks the model for the other order to count the fills where the order matters.
    static func run(on cluster: Cluster, seeds: ClosedRange<UInt64>, gpus: Int, distinctStarts: Bool = false) throws {
        _ = try #require(CLI.binary, "the topo-preempt binary is missing (swift build)")  // before filling node1
        var matched = 0, orderMattered = 0, otherSocket = 0
        for seed in seeds {
            let sizes = RandomFills.sizes(seed: seed)
            try cluster.withShaping(false) {
                var batch: [String] = []
                for size in sizes {
                    batch.append(try cluster.start("batch", gpus: size))
                    if distinctStarts {
                        let running = time(nil)  // the job's start time is at most this second
                        _ = cluster.waitUntil(seconds: 3) { time(nil) > running }
                    }
                }
                let infer = try cluster.submitHeldOnNode1("infer", gpus: gpus)
                defer { try? cluster.finish(batch + [infer]) }
                let result = try cluster.cli(["plan", "--job", infer, "--compare-stock", "--format", "json"])
                let plan = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                                        "seed \(seed): \(result.stderr)")
                #expect(plan["slurm"] as? String == cluster.slurmRelease, "seed \(seed): modelled Slurm \(plan["slurm"] ?? "-")")
                #expect(plan["stockOrder"] as? String == cluster.victimOrder, "seed \(seed): modelled order \(plan["stockOrder"] ?? "-")")
                let stock = try #require(plan["stock"] as? [String: Any], "seed \(seed): no stock prediction")
                if distinctStarts {
                    let other = cluster.victimOrder == "youngest-first" ? "oldest-first" : "youngest-first"
                    let alternative = try cluster.cli(["plan", "--job", infer, "--compare-stock", "--stock-order", other, "--format", "json"])
                    let otherPlan = try JSONSerialization.jsonObject(with: Data(alternative.stdout.utf8)) as? [String: Any]
                    let otherStock = otherPlan?["stock"] as? [String: Any]
                    if otherStock?["victims"] as? [UInt32] != stock["victims"] as? [UInt32] { orderMattered += 1 }
                }
                let predictedVictims = try #require(stock["victims"] as? [UInt32])
                let firstSocketGPUs = try #require(stock["gpus"] as? String)
                #expect(try cluster.run(["scontrol", "release", infer]).status == 0)
                let running = try cluster.waitUntil(seconds: 60) { try cluster.state(infer) == "RUNNING" }
                try #require(running, "seed \(seed): infer job \(infer) did not start")
                let victims = try batch.filter { try cluster.restarts($0) > 0 || cluster.state($0) != "RUNNING" }.compactMap { UInt32($0) }
                let placed = try cluster.gpuIndices(infer)?.description
                // Slurm puts the job's core on the socket with the most free cores, which a
                // libslurm client cannot read from 24.05 on: the model gives the GPUs for each
                // socket, and the job's actual core (scontrol's CPU_IDs) says which case it is.
                var predictedGPUs = firstSocketGPUs
                if let socket = try cluster.coreSocket(infer), let bySocket = stock["gpusByCoreSocket"] as? [String: String],
                   let gpus = bySocket["\(socket)"] {
                    predictedGPUs = gpus
                    if gpus != firstSocketGPUs { otherSocket += 1 }
                }
                let fill = try batch.map { try cluster.gpuIndices($0)?.description ?? "?" }
                #expect(victims == predictedVictims, "seed \(seed) sizes \(sizes) fill \(fill): model \(predictedVictims), Slurm \(victims)")
                #expect(placed == predictedGPUs, "seed \(seed): model GPUs \(predictedGPUs), Slurm \(placed ?? "-")")
                if victims == predictedVictims && placed == predictedGPUs { matched += 1 }
            }
        }
        let model = SlurmRelease(cluster.slurmRelease)?.gpuPick.rawValue ?? "?"
        print("fidelity on \(cluster.topology), Slurm \(cluster.slurmRelease) (GPU pick \(model), victims \(cluster.victimOrder)): stock model matched slurmctld in \(matched) of \(seeds.count) scenarios (\(otherSocket) with the job's core on a socket whose pick differs from the first socket's)"
              + (distinctStarts ? "; the other victim order would have chosen other victims in \(orderMattered)" : ""))
        if distinctStarts {
            // Otherwise these fills could not tell the orders apart and the test could not fail.
            #expect(orderMattered > 0, "no fill where the victim order matters")
        }
    }
}

extension LiveCluster {
    @Suite(.needs("the stock islands cluster and the topo-preempt binary", Cluster.current?.topology == "islands" && CLI.binary != nil))
    struct StockModelFidelityIslands {
        @Test func stockModelMatchesSlurmOnSeededFills() throws {
            try Fidelity.run(on: try #require(Cluster.current), seeds: 201...206, gpus: 4)
        }
    }
}

extension StockPairsCluster {
    @Suite(.needs("the topo-preempt binary (swift build)", CLI.binary != nil))
    struct StockModelFidelity {
        @Test func stockModelMatchesSlurmOnSeededFills() throws {
            try Fidelity.run(on: try #require(Cluster.pairs), seeds: 301...305, gpus: 2)
        }
    }
}

extension YoungestFirstCluster {
    /// The strongest stock configuration: the model must follow slurmctld's youngest-first order.
    @Suite(.needs("the youngest-first stock cluster and the topo-preempt binary", Cluster.youngest != nil && CLI.binary != nil))
    struct StockModelFidelity {
        @Test func stockModelMatchesSlurmOnSeededFills() throws {
            let cluster = try #require(Cluster.youngest, "no youngest-first cluster (TOPO_PREEMPT_CLUSTER_YOUNGEST)")
            #expect(cluster.victimOrder == "youngest-first")
            try Fidelity.run(on: cluster, seeds: 201...206, gpus: 4, distinctStarts: true)
        }
    }
}

/// Stock Slurm configured youngest-first (`Cluster.youngest`).
enum YoungestFirstCluster {}
