/// `audit --since --replay`: the period's jobs as slurmdbd keeps them, replayed through the
/// simulator on the cluster's own node layouts under stock Slurm's variants and
/// preempt/topo_aware: what stock Slurm would have done with the same jobs (modelled).
///
/// The model is the simulator's (docs/measurements.md, "Simulator"): preemptor jobs are its inference jobs
/// (one affinity level for all), every other GPU job is preemptible batch work; a job's work is
/// its last run's length (a requeued job's final run, the time it ran to the period's end if it
/// still runs); jobs that never started in the period are left out and counted.
public enum PeriodReplay {
    public struct Job: Sendable, Equatable {
        public var id: UInt32
        public var submit: Int64
        public var start: Int64?
        public var end: Int64?
        /// GPUs over all its nodes, and its node count.
        public var gpus: Int
        public var nodes: Int
        public var preemptor: Bool

        public init(id: UInt32, submit: Int64, start: Int64?, end: Int64?, gpus: Int, nodes: Int, preemptor: Bool) {
            self.id = id
            self.submit = submit
            self.start = start
            self.end = end
            self.gpus = gpus
            self.nodes = max(1, nodes)
            self.preemptor = preemptor
        }
    }

    /// The simulator's jobs (times from `from`), and how many of `jobs` were left out: submitted
    /// outside [from, to), no GPUs, GPUs not a whole number per node or more than a node holds,
    /// never started.
    public static func simJobs(_ jobs: [Job], from: Int64, to: Int64, maxGPUsPerNode: Int) -> (jobs: [SimJob], leftOut: Int) {
        var result: [SimJob] = []
        var leftOut = 0
        for job in jobs.sorted(by: { ($0.submit, $0.id) < ($1.submit, $1.id) }) {
            guard job.submit >= from, job.submit < to, job.gpus > 0, job.gpus % job.nodes == 0,
                  job.gpus / job.nodes <= maxGPUsPerNode, let start = job.start, start >= job.submit, start < to
            else {
                leftOut += 1
                continue
            }
            let end = min(job.end ?? to, to)
            result.append(SimJob(submit: job.submit - from, gpus: job.gpus / job.nodes, duration: max(1, end - start),
                                 kind: job.preemptor ? .inference : .batch, priority: job.preemptor ? 100 : 1, nodes: job.nodes))
        }
        return (result, leftOut)
    }

    /// One simulator node type per layout of the cluster, named as the exporter names it.
    public static func nodeTypes(_ topology: ClusterTopology) -> [(type: ClusterSnapshot.LayoutSpec, name: String, count: Int)] {
        var order: [String] = []
        var types: [String: (type: ClusterSnapshot.LayoutSpec, count: Int)] = [:]
        for node in topology.nodes {
            let name = Fragmentation.typeName(node.table)
            if types[name] == nil {
                order.append(name)
                types[name] = (ClusterSnapshot.LayoutSpec(node.table.topology), 0)
            }
            types[name]?.count += 1
        }
        return order.compactMap { name in types[name].map { ($0.type, name, $0.count) } }
    }
}
