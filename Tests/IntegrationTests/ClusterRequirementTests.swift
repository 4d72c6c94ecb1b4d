import Foundation
import Testing

/// scripts/test sets TOPO_PREEMPT_REQUIRE_CLUSTER=1: there every cluster, the test user and the
/// CLI binary must be present, and a missing one is a failure named here (the suites that need
/// it also run and fail rather than skip).
@Test(.enabled(if: Cluster.required, "runs under scripts/test (TOPO_PREEMPT_REQUIRE_CLUSTER=1)"))
func everythingTheIntegrationSuitesNeedIsThere() throws {
    let clusters: [(String, Cluster?)] = [
        ("TOPO_PREEMPT_CLUSTER (stock, islands)", Cluster.current), ("TOPO_PREEMPT_CLUSTER_PAIRS (stock, pairs)", Cluster.pairs),
        ("TOPO_PREEMPT_CLUSTER_TOPO_AWARE (topo_aware, islands)", Cluster.topoAware),
        ("TOPO_PREEMPT_CLUSTER_TOPO_AWARE_PAIRS (topo_aware, pairs)", Cluster.topoAwarePairs),
        ("TOPO_PREEMPT_CLUSTER_TOPO_AWARE_QOS (topo_aware over QOS)", Cluster.topoAwareQOS),
        ("TOPO_PREEMPT_CLUSTER_YOUNGEST (stock, victims youngest first)", Cluster.youngest),
        ("TOPO_PREEMPT_CLUSTER_TOPO_AWARE_PAIR_SOCKETS (topo_aware, one socket per NVLink pair)", Cluster.topoAwarePairSockets),
    ]
    for (name, cluster) in clusters {
        let found = try #require(cluster, "\(name) does not point at a local cluster")
        #expect(try found.controllerIsUp(), "\(name): slurmctld in \(found.directory) is not answering")
    }
    #expect(Cluster.current?.topology == "islands" && Cluster.topoAware?.topology == "islands" && Cluster.topoAwareQOS?.topology == "islands")
    #expect(Cluster.pairs?.topology == "pairs" && Cluster.topoAwarePairs?.topology == "pairs")
    #expect(Cluster.topoAwareQOS?.accounting == true, "the QOS cluster runs without slurmdbd")
    #expect(Cluster.youngest?.victimOrder == "youngest-first" && Cluster.current?.victimOrder == "oldest-first")
    #expect(Cluster.topoAwarePairSockets?.sockets == 4 && Cluster.topoAwarePairSockets?.topology == "pairs")
    let user = try #require(TestUser.name, "$TOPO_PREEMPT_TEST_USER is unset: no unprivileged test user")
    #expect(getpwnam(user) != nil, "test user \(user) does not exist")
    #expect(CLI.binary != nil, "the topo-preempt binary is missing: \(CLI.root)/.build/debug/topo-preempt")
}
