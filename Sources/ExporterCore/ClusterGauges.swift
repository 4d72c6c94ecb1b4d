import Foundation
import Prometheus

/// The cluster's fragmentation and the running preemptors' alignment as gauges, from
/// `topo-preempt fragmentation --format json` (the topo-preempt built against the site's Slurm
/// release reads libslurm; the exporter links none). Series of node types or classes that are
/// gone are removed.
public final class ClusterGauges: @unchecked Sendable {
    /// The JSON of `topo-preempt fragmentation --format json` (docs/reference.md, "fragmentation").
    public struct Report: Decodable, Sendable {
        public struct NodeType: Decodable, Sendable {
            public var name: String
            public var nodes: Int
            public var available: Int
            public var gpus: Int
            public var freeGPUs: Int
            public var freeableGPUs: Int
            enum CodingKeys: String, CodingKey {
                case name, nodes, available, gpus, freeGPUs = "free_gpus", freeableGPUs = "freeable_gpus"
            }
        }

        public struct Group: Decodable, Sendable {
            public var nodeType: String
            public var level: String
            public var size: Int
            public var free: Int
            public var freeable: Int
            enum CodingKeys: String, CodingKey { case nodeType = "node_type", level, size, free, freeable }
        }

        public struct Preemptor: Decodable, Sendable {
            public var job: UInt32
            public var className: String
            public var mode: String
            public var aligned: Bool
            public var startTime: Int64?
            public var waitSeconds: Int64?
            enum CodingKeys: String, CodingKey {
                case job, className = "class", mode, aligned, startTime = "start_time", waitSeconds = "wait_seconds"
            }
        }

        public var nodeTypes: [NodeType]
        public var groups: [Group]
        public var preemptors: [Preemptor]
        enum CodingKeys: String, CodingKey { case nodeTypes = "node_types", groups, preemptors }
    }

    let registry: PrometheusCollectorRegistry
    let free: GaugeFamily
    let freeable: GaugeFamily
    let nodes: GaugeFamily
    let availableNodes: GaugeFamily
    let freeGPUs: GaugeFamily
    let freeableGPUs: GaugeFamily
    let running: GaugeFamily
    let up: GaugeFamily
    let duration: GaugeFamily
    let wait: HistogramFamily
    private var current: [ObjectIdentifier: Gauge] = [:]
    /// Running preemptors seen, with the start observed (a requeued job that starts again waits again).
    private var started: [UInt32: Int64] = [:]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        let r = registry
        let groupLabels = ["node_type", "level", "size"]
        free = GaugeFamily(r, "topo_preempt_free_aligned_groups",
                           "Disjoint groups of SIZE free GPUs aligned at LEVEL, on available nodes of the type.", labels: groupLabels)
        freeable = GaugeFamily(r, "topo_preempt_freeable_aligned_groups",
                               "Disjoint groups of SIZE GPUs aligned at LEVEL that are free or held by jobs a preemptor class may preempt.",
                               labels: groupLabels)
        nodes = GaugeFamily(r, "topo_preempt_nodes", "GPU nodes of the type (its GPU layout).", labels: ["node_type"])
        availableNodes = GaugeFamily(r, "topo_preempt_available_nodes", "GPU nodes of the type that can take jobs.", labels: ["node_type"])
        freeGPUs = GaugeFamily(r, "topo_preempt_free_gpus", "Free GPUs on available nodes of the type.", labels: ["node_type"])
        freeableGPUs = GaugeFamily(r, "topo_preempt_freeable_gpus", "GPUs free or held by jobs a preemptor class may preempt.",
                                   labels: ["node_type"])
        running = GaugeFamily(r, "topo_preempt_running_preemptors",
                              "Running preemptor jobs, by class, mode and whether their GPUs reach the level the class requires.",
                              labels: ["class", "mode", "aligned"])
        up = GaugeFamily(r, "topo_preempt_cluster_up", "1 when the last reading of the cluster (topo-preempt fragmentation) succeeded.")
        duration = GaugeFamily(r, "topo_preempt_cluster_read_seconds", "Seconds the last reading of the cluster took.")
        wait = HistogramFamily(r, "topo_preempt_preemptor_wait_seconds",
                               "Seconds from submission to start of preemptor jobs, each start observed once when the exporter reads the cluster.",
                               buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200])
        up.gauge([]).set(0.0)
    }

    /// Sets every gauge from `report`; series not in it are removed.
    public func update(_ report: Report, seconds: Double) {
        var next: [ObjectIdentifier: Gauge] = [:]
        func put(_ family: GaugeFamily, _ labels: [String], _ value: Int) {
            let gauge = family.gauge(labels)
            gauge.set(Double(value))
            next[ObjectIdentifier(gauge)] = gauge
        }
        for type in report.nodeTypes {
            put(nodes, [type.name], type.nodes)
            put(availableNodes, [type.name], type.available)
            put(freeGPUs, [type.name], type.freeGPUs)
            put(freeableGPUs, [type.name], type.freeableGPUs)
        }
        for group in report.groups {
            put(free, [group.nodeType, group.level, String(group.size)], group.free)
            put(freeable, [group.nodeType, group.level, String(group.size)], group.freeable)
        }
        var counts: [[String]: Int] = [:]
        for p in report.preemptors {
            counts[[p.className, p.mode, "true"], default: 0] += p.aligned ? 1 : 0
            counts[[p.className, p.mode, "false"], default: 0] += p.aligned ? 0 : 1
        }
        for (labels, count) in counts { put(running, labels, count) }
        var seen: [UInt32: Int64] = [:]
        for p in report.preemptors {
            guard let start = p.startTime else { continue }
            seen[p.job] = start
            if started[p.job] != start, let seconds = p.waitSeconds, seconds >= 0 { wait.histogram().record(Double(seconds)) }
        }
        started = seen
        for (id, gauge) in current where next[id] == nil { registry.unregisterGauge(gauge) }
        current = next
        up.gauge([]).set(1.0)
        duration.gauge([]).set(seconds)
    }

    public func failed(seconds: Double) {
        up.gauge([]).set(0.0)
        duration.gauge([]).set(seconds)
    }
}

/// Runs `topo-preempt fragmentation --format json` with a deadline.
public struct ClusterReader: Sendable {
    public var executable: String
    public var arguments: [String]
    public var timeout: Double

    public init(executable: String, arguments: [String] = ["fragmentation", "--format", "json"], timeout: Double = 30) {
        self.executable = executable
        self.arguments = arguments
        self.timeout = timeout
    }

    public enum Failure: Error, CustomStringConvertible {
        case start(String), timeout(Double), status(Int32, String), json(String)
        public var description: String {
            switch self {
            case let .start(why): "cannot run: \(why)"
            case let .timeout(seconds): "no answer within \(Int(seconds)) s (stopped)"
            case let .status(code, message): "exit status \(code)\(message.isEmpty ? "" : ": \(message)")"
            case let .json(why): "unreadable JSON: \(why)"
            }
        }
    }

    public func read() throws(Failure) -> ClusterGauges.Report {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // Output to files, not pipes: a large cluster's report must not block on a full pipe.
        let directory = FileManager.default.temporaryDirectory
        let out = directory.appendingPathComponent("topo-preempt-exporter-\(getpid())-out.json")
        let err = directory.appendingPathComponent("topo-preempt-exporter-\(getpid())-err.txt")
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
        }
        guard FileManager.default.createFile(atPath: out.path, contents: nil), FileManager.default.createFile(atPath: err.path, contents: nil),
              let outHandle = try? FileHandle(forWritingTo: out), let errHandle = try? FileHandle(forWritingTo: err)
        else { throw .start("cannot create its output files in \(directory.path)") }
        defer {
            try? outHandle.close()
            try? errHandle.close()
        }
        process.standardOutput = outHandle
        process.standardError = errHandle
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        do { try process.run() } catch { throw .start("\(executable): \(error.localizedDescription)") }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            if done.wait(timeout: .now() + 2) == .timedOut { kill(process.processIdentifier, SIGKILL) }
            throw .timeout(timeout)
        }
        let data = (try? Data(contentsOf: out)) ?? Data()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self)
            throw .status(process.terminationStatus, message.split(separator: "\n").first.map(String.init) ?? "")
        }
        do { return try JSONDecoder().decode(ClusterGauges.Report.self, from: data) } catch { throw .json("\(error)") }
    }
}
