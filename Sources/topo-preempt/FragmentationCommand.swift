import ArgumentParser
import Foundation
import TopoEngine

struct FragmentationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fragmentation",
        abstract: "Count free and freeable aligned GPU groups per node type, level and size.",
        discussion: """
            Reads the live cluster through libslurm ($SLURM_CONF) and the topology of slurm.conf and \
            gres.conf. "free": disjoint groups of SIZE GPUs inside one affinity group of LEVEL on an \
            available node, all free now; "freeable": the same counting the GPUs of running jobs a \
            preemptor class of topo_aware.conf may preempt. Also lists running preemptors and whether \
            their GPUs are aligned, and how long they waited from submission to start. \
            topo-preempt-exporter reads the JSON form for its gauges.
            """)

    @OptionGroup var config: ConfigPathOption
    @OptionGroup var output: FormatOption

    /// JSON shape (documented in docs/reference.md).
    struct Report: Encodable {
        struct NodeType: Encodable {
            var name: String
            var nodes: Int
            var available: Int
            var gpus: Int
            var freeGPUs: Int
            var freeableGPUs: Int
            enum CodingKeys: String, CodingKey {
                case name, nodes, available, gpus, freeGPUs = "free_gpus", freeableGPUs = "freeable_gpus"
            }
        }

        struct Group: Encodable {
            var nodeType: String
            var level: String
            var size: Int
            var free: Int
            var freeable: Int
            enum CodingKeys: String, CodingKey { case nodeType = "node_type", level, size, free, freeable }
        }

        struct Preemptor: Encodable {
            var job: UInt32
            var className: String
            var mode: String
            var required: String
            var reached: String
            var aligned: Bool
            var startTime: Int64
            var waitSeconds: Int64?
            enum CodingKeys: String, CodingKey {
                case job, className = "class", mode, required, reached, aligned, startTime = "start_time", waitSeconds = "wait_seconds"
            }
        }

        var time: Int64
        var nodeTypes: [NodeType]
        var groups: [Group]
        var preemptors: [Preemptor]
        var warnings: [String]
        enum CodingKeys: String, CodingKey { case time, nodeTypes = "node_types", groups, preemptors, warnings }
    }

    func run() throws {
        let live: LiveCluster
        do { live = try LiveCluster.load(config: config) } catch let error as CLIError { throw error.exit() }
        let fragmentation = Fragmentation(live.state, topology: live.topology, config: live.config)
        let report = Report(
            time: live.state.time,
            nodeTypes: fragmentation.nodeTypes.map {
                .init(name: $0.name, nodes: $0.nodes, available: $0.available, gpus: $0.gpus, freeGPUs: $0.freeGPUs,
                      freeableGPUs: $0.freeableGPUs)
            },
            groups: fragmentation.rows.map {
                .init(nodeType: $0.nodeType, level: $0.level.name, size: $0.size, free: $0.free, freeable: $0.freeable)
            },
            preemptors: Audit.preemptors(live.state, topology: live.topology, config: live.config).map {
                .init(job: $0.jobID, className: $0.className, mode: $0.mode.name, required: $0.required.name,
                      reached: $0.reached.name, aligned: $0.aligned, startTime: $0.startTime, waitSeconds: $0.waitSeconds)
            },
            warnings: live.warnings)
        switch output.format {
        case .json: try printJSON(report)
        case .text:
            for type in report.nodeTypes {
                print("\(type.name): \(type.nodes) node(s), \(type.available) available, \(type.freeGPUs) GPU(s) free, "
                      + "\(type.freeableGPUs) free or freeable")
                print("  level        size  free  freeable")
                for group in report.groups where group.nodeType == type.name {
                    print("  " + pad(group.level, 13) + pad(String(group.size), 6) + pad(String(group.free), 6) + String(group.freeable))
                }
            }
            let misaligned = report.preemptors.filter { !$0.aligned }.count
            print("\(report.preemptors.count) running preemptor(s), \(misaligned) misaligned")
            for warning in live.warnings { printError("warning: \(warning)") }
        }
    }
}
