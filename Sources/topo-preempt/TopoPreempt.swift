import ArgumentParser

@main
struct TopoPreempt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topo-preempt",
        abstract: "Topology-aware GPU preemption for Slurm: explain and check what the plugins do.",
        discussion: """
            Exit status: 0 success, 1 the input was checked and found wrong (an invalid \
            configuration, a rejected job), 64 bad usage.
            """,
        version: "0.1.0",
        subcommands: [TopoCommand.self, PlanCommand.self, ExplainCommand.self, AuditCommand.self, FragmentationCommand.self, ExporterCommand.self, ConfigCommand.self, ClassifyCommand.self, SimulateCommand.self, BenchCommand.self]
    )
}
