import ArgumentParser
import ExporterCore
import Foundation
import Prometheus
import TopoEngine

/// topo-preempt-exporter: preempt/topo_aware's decision records and the cluster's fragmentation
/// as Prometheus metrics over HTTP.
struct Exporter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topo-preempt-exporter",
        abstract: "Serve preempt/topo_aware's decisions and the cluster's GPU fragmentation as Prometheus metrics.",
        discussion: """
            Follows the decision log (DecisionLog= of topo_aware.conf, across its rotation) and reads \
            the cluster every --cluster-interval seconds with `topo-preempt fragmentation --format json` \
            (libslurm, $SLURM_CONF). Serves GET /metrics in the Prometheus text format on --listen \
            (loopback by default). Runs until stopped (SIGTERM, SIGINT). The metrics are listed in docs/reference.md ("Metrics for Prometheus").
            """,
        version: "0.1.0")

    @Option(help: ArgumentHelp("Address to listen on, HOST:PORT ([::1]:PORT for IPv6).", valueName: "host:port"))
    var listen: String = "127.0.0.1:9875"

    @Option(help: ArgumentHelp("The decision log to follow.",
                               discussion: "Default: DecisionLog= of topo_aware.conf ($TOPO_AWARE_CONF, else beside $SLURM_CONF, else /etc/slurm)."))
    var records: String?

    @Flag(help: "Count the records the log holds already (default: only those written from now on).")
    var fromStart = false

    @Option(help: ArgumentHelp("topo-preempt to read the cluster with.", discussion: "Default: the one beside this program, else $PATH's."))
    var topoPreempt: String?

    @Flag(help: "Do not read the cluster (no fragmentation or preemptor gauges).")
    var noCluster = false

    @Option(help: "Seconds between readings of the cluster (at least 1).")
    var clusterInterval: Double = 30

    @Option(help: "Seconds between reads of the decision log (0.1 to 60).")
    var pollInterval: Double = 1

    func validate() throws {
        _ = try Self.address(listen)
        guard clusterInterval >= 1, clusterInterval <= 86_400 else { throw ValidationError("--cluster-interval: \(clusterInterval) is not between 1 and 86400") }
        guard pollInterval >= 0.1, pollInterval <= 60 else { throw ValidationError("--poll-interval: \(pollInterval) is not between 0.1 and 60") }
    }

    /// `HOST:PORT` or `[V6]:PORT`.
    static func address(_ text: String) throws -> (host: String, port: Int) {
        var host = Substring(text), port = Substring("")
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ValidationError("--listen: '\(text)' is not [ADDRESS]:PORT") }
            port = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            throw ValidationError("--listen: '\(text)' is not HOST:PORT")
        }
        guard !host.isEmpty, let number = Int(port), (0...65535).contains(number) else {
            throw ValidationError("--listen: '\(text)' is not HOST:PORT with a port from 0 to 65535")
        }
        return (String(host), number)
    }

    func run() throws {
        // SIGTERM and SIGINT stop the exporter even when its parent blocked them (a blocked mask
        // is inherited): their default action ends the process, nothing is lost (no state kept).
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
        let path: String
        if let records {
            path = records
        } else {
            let environment = ProcessInfo.processInfo.environment
            let paths = ConfigPaths(slurmConf: environment["SLURM_CONF"], topoAwareOverride: environment[ConfigPaths.topoAwareVariable])
            let file = paths.topoAwareConf
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("no --records and \(file) cannot be read (its DecisionLog= names the log)")
            }
            let config: TopoAwareConfig
            do { config = try TopoAwareConfig.parse(String(decoding: data, as: UTF8.self), file: file).config } catch {
                throw ValidationError("\(error)")
            }
            guard let log = config.decisionLog else { throw ValidationError("no --records and \(file) sets no DecisionLog=") }
            path = log
        }
        var reader: ClusterReader?
        if !noCluster {
            guard let executable = topoPreempt ?? Self.findTopoPreempt() else {
                throw ValidationError("topo-preempt is neither beside this program nor on $PATH (give --topo-preempt, or --no-cluster)")
            }
            reader = ClusterReader(executable: executable)
        }
        let registry = PrometheusCollectorRegistry()
        let loop = ExporterLoop(settings: .init(records: path, fromStart: fromStart, cluster: reader, pollInterval: pollInterval,
                                                clusterInterval: clusterInterval), registry: registry)
        let (host, port) = try Self.address(listen)
        let server: MetricsServer
        do { server = try MetricsServer(host: host, port: port, registry: registry) } catch {
            FileHandle.standardError.write(Data("topo-preempt-exporter: cannot listen on \(listen): \(error)\n".utf8))
            throw ExitCode(1)
        }
        loop.start()
        FileHandle.standardError.write(Data("topo-preempt-exporter: serving http://\(host.contains(":") ? "[\(host)]" : host):\(server.port)/metrics, following \(path)\(reader.map { ", reading the cluster with \($0.executable) every \(Int(clusterInterval)) s" } ?? "")\n".utf8))
        try server.wait()
    }

    static func findTopoPreempt() -> String? {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let beside = me.deletingLastPathComponent().appendingPathComponent("topo-preempt").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/topo-preempt"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

Exporter.main()
