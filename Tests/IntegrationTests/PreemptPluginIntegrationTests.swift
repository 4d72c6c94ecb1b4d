import Foundation
import Testing
import TopoEngine

/// preempt/topo_aware loaded in a real slurmctld (the second local cluster, PreemptType=
/// preempt/topo_aware). At this stage it answers with the base policy (partition PriorityTier),
/// so every scenario must come out exactly as under stock preempt/partition_prio.
@Suite(.serialized, .enabled(if: Cluster.topoAware?.topology == "islands", "needs the topo_aware cluster (scripts/test)"))
struct PreemptPluginIntegrationTests {
    let cluster: Cluster

    init() throws {
        cluster = try #require(Cluster.topoAware)
    }

    @Test func pluginExportsThePreemptAPIAndIsLoaded() throws {
        let plugin = cluster.pluginDir + "/preempt_topo_aware.so"
        let defined = try cluster.run(["nm", "-D", "--defined-only", plugin]).stdout
        for symbol in ["plugin_name", "plugin_type", "plugin_version", "init", "fini", "preempt_p_job_preempt_check",
                       "preempt_p_preemptable", "preempt_p_get_data"] {
            #expect(defined.split(separator: "\n").contains { $0.hasSuffix(" \(symbol)") }, "\(symbol) not exported")
        }
        #expect(cluster.logLines().contains { $0.contains("preempt/topo_aware: loaded (base policy: partition PriorityTier)") })
        let config = try cluster.run(["scontrol", "show", "config"]).stdout
        #expect(config.contains("preempt/topo_aware"))
        #expect(try cluster.controllerIsUp())
    }

    /// The full-node lab scenario, plain and shaped: the same victims and GPUs as stock
    /// (ShapingIntegrationTests measures these on the stock cluster).
    @Test(arguments: [false, true])
    func baseBehaviourMatchesStockPartitionPriority(shaping: Bool) throws {
        let (batch, infer, placed, victims) = try cluster.fullNodeScenario(shaping: shaping)
        defer { try? cluster.finish(batch + [infer]) }
        if shaping {
            #expect(placed == GPUSet(0...3))
            #expect(victims == [batch[0], batch[2]])
        } else {
            #expect(placed == GPUSet([0, 1, 4, 5]))
            #expect(victims == [batch[0], batch[1]])
        }
        // Victims are requeued (PENDING, one restart), never cancelled.
        for victim in victims {
            #expect(try cluster.state(victim) == "PENDING")
            #expect(try cluster.restarts(victim) == 1)
        }
        try cluster.finish(batch + [infer])
    }
}
