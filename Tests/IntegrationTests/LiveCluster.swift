import Testing

/// Suites that act on the live controller (submit jobs, run them, edit topo_aware.conf) are
/// nested here and run one at a time: they share slurmctld, its nodes and its configuration.
@Suite(.serialized, .needs("the stock islands cluster: run scripts/test", Cluster.isAvailable))
enum LiveCluster {}
