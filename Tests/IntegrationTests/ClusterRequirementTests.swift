import Foundation
import Testing

/// scripts/test sets TOPO_PREEMPT_REQUIRE_CLUSTER: there, a missing cluster is a failure, not
/// a reason to skip the integration suites.
@Test func clusterIsAvailableWhenRequired() {
    if ProcessInfo.processInfo.environment["TOPO_PREEMPT_REQUIRE_CLUSTER"] == "1" {
        #expect(Cluster.isAvailable, "TOPO_PREEMPT_CLUSTER does not point at a running local cluster")
        #expect(Cluster.topoAware != nil, "TOPO_PREEMPT_CLUSTER_TOPO_AWARE does not point at a running local cluster")
    }
}
