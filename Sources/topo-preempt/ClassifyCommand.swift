import ArgumentParser
import SlurmClient
import TopoEngine

struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Show how job_submit/topo_aware would classify a submission.",
        discussion: """
            Applies the same policy as the plugin inside slurmctld to the partition, QOS and \
            --gpu-affinity you give, and prints the class, the AdminComment the job would get, \
            or the message sbatch would show. Exit status 1 when the plugin would reject the job.
            """)

    @Option(name: [.customShort("p"), .long], help: "Partition(s), comma-separated, as given to sbatch -p.")
    var partition: String?

    @Option(help: "QOS, as given to sbatch --qos.")
    var qos: String?

    @Option(name: .customLong("gpu-affinity"), help: "LEVEL[:MODE], as given to sbatch --gpu-affinity.")
    var gpuAffinity: String?

    @Option(help: "GPU request as given to sbatch --gres (e.g. gpu:4, gpu:a100:2).")
    var gres: String?

    @Option(name: .customLong("gres-conf"), help: "gres.conf: apply the cluster's topology (rejection, shaping) too.")
    var gresConf: String?

    @Option(name: .customLong("slurm-conf"), help: "slurm.conf with the nodes' Gres= and socket layout (with --gres-conf).")
    var slurmConf: String?

    @OptionGroup var config: ConfigPathOption
    @OptionGroup var output: FormatOption

    func run() throws {
        let parsed: ParsedConfig
        do {
            parsed = try config.load()
        } catch let error as CLIError {
            throw error.exit()
        }
        let job = SubmittedJob(partitions: SubmittedJob.partitionList(partition), qos: qos,
                               affinityOverride: gpuAffinity)
        var verdict = SubmitPolicy(config: parsed.config).evaluate(job)
        var shape: ShapedRequest?
        if let gresConf, case let .accept(classification, notice) = verdict {
            let summary: TopologySummary
            do {
                let conf = try GresConf.parse(try readInput(gresConf), file: gresConf)
                let nodes = try slurmConf.map { path in try SlurmConfNodes.parse(try readInput(path), file: path) } ?? []
                summary = TopologySummary.build(slurmNodes: nodes, gresConf: conf).summary
            } catch let error as TextDiagnostic {
                throw CLIError.input(error.description).exit()
            } catch let error as CLIError {
                throw error.exit()
            }
            let request = GPURequest(tresPerNode: gres.map { "gres:" + $0 })
            switch TopologyPolicy(summary: summary, shapeRequests: parsed.config.shapeRequests,
                                  tresSyntax: SlurmClient.tresSyntax).decide(classification, request) {
            case .unchanged: break
            case let .reject(message): verdict = .reject(.topology, message: message)
            case let .shape(shaped):
                shape = shaped
                verdict = .accept(classification, notice: [notice, shaped.notice].compactMap { $0 }.joined(separator: "\n"))
            }
        }
        var report = ClassifyReport(verdict)
        if let shape, case let .accept(classification, _) = verdict {
            report.adminComment = AdminCommentTag.format(classification, shape: shape.tag)
            report.shape = shape.tag
            report.tresPerSocket = shape.tresPerSocket
        }
        switch output.format {
        case .json:
            try printJSON(report)
        case .text:
            switch verdict {
            case let .accept(classification, notice):
                print("accepted: \(classification.summary)")
                print("AdminComment: \(report.adminComment ?? "(unchanged)")")
                if let notice { print("sbatch shows: \(notice)") }
            case let .reject(_, message):
                print("rejected: sbatch shows: \(message)")
            }
        }
        if case .reject = verdict { throw ExitCode(1) }
    }
}

/// JSON shape of `classify` (documented in docs/reference.md).
struct ClassifyReport: Encodable {
    var verdict: String
    var role: String?
    var className: String?
    var level: String?
    var mode: String?
    var userOverride: Bool?
    var adminComment: String?
    var notice: String?
    var reason: String?
    var message: String?
    var shape: String?
    var tresPerSocket: String?

    init(_ verdict: SubmitVerdict) {
        switch verdict {
        case let .accept(classification, notice):
            self.verdict = "accept"
            self.notice = notice
            adminComment = AdminCommentTag.format(classification)
            className = classification.className
            switch classification {
            case let .preemptor(_, level, mode, user):
                role = "preemptor"
                self.level = level.name
                self.mode = mode.name
                userOverride = user
            case .preemptible:
                role = "preemptible"
            case .unmanaged:
                role = "unmanaged"
            }
        case let .reject(reason, message):
            self.verdict = "reject"
            self.message = message
            switch reason {
            case .invalidOverride: self.reason = "invalid-override"
            case .overrideNotAllowed: self.reason = "override-not-allowed"
            case .topology: self.reason = "topology"
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case verdict, role, className = "class", level, mode, userOverride, adminComment, notice, reason, message, shape,
             tresPerSocket
    }
}
