import Testing

/// Suites that act on the live controller (submit jobs, run them, edit topo_aware.conf) are
/// nested here and run one at a time: they share slurmctld, its nodes and its configuration.
@Suite(.serialized, .enabled(if: Cluster.isAvailable, "needs the local cluster: run scripts/test"))
enum LiveCluster {}
