import Foundation
import Prometheus
import TopoEngine

/// The exporter's work apart from HTTP: the decision log followed every `pollInterval`, the
/// cluster read every `clusterInterval`, on a thread of its own; problems said once on stderr
/// (again only when they change).
public final class ExporterLoop: @unchecked Sendable {
    public struct Settings: Sendable {
        public var records: String
        public var fromStart: Bool
        public var cluster: ClusterReader?
        public var pollInterval: Double
        public var clusterInterval: Double

        public init(records: String, fromStart: Bool, cluster: ClusterReader?, pollInterval: Double, clusterInterval: Double) {
            self.records = records
            self.fromStart = fromStart
            self.cluster = cluster
            self.pollInterval = pollInterval
            self.clusterInterval = clusterInterval
        }
    }

    public let metrics: RecordMetrics
    public let gauges: ClusterGauges?
    let settings: Settings
    private var follower: RecordFollower
    private var said: [String: String] = [:]
    private let lock = NSCondition()
    private var stopping = false

    public init(settings: Settings, registry: PrometheusCollectorRegistry) {
        self.settings = settings
        metrics = RecordMetrics(registry: registry)
        gauges = settings.cluster == nil ? nil : ClusterGauges(registry: registry)
        follower = RecordFollower(path: settings.records, fromStart: settings.fromStart)
    }

    /// One round: new records, then the cluster when `readCluster`.
    public func step(readCluster: Bool) {
        follower.poll { metrics.apply(line: $0) }
        metrics.flush(now: Int64(Date().timeIntervalSince1970))
        say("records", follower.openError.map { "cannot read the decision log: \($0) (waiting for it)" })
        if readCluster, let reader = settings.cluster, let gauges {
            let start = Date()
            do {
                gauges.update(try reader.read(), seconds: Date().timeIntervalSince(start))
                say("cluster", nil)
            } catch {
                gauges.failed(seconds: Date().timeIntervalSince(start))
                say("cluster", "cannot read the cluster with \(reader.executable) \(reader.arguments.joined(separator: " ")): \(error)")
            }
        }
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "topo-preempt-exporter follower"
        thread.start()
    }

    public func stop() {
        lock.lock()
        stopping = true
        lock.signal()
        lock.unlock()
    }

    private func run() {
        var nextCluster = Date()
        while true {
            let now = Date()
            let readCluster = now >= nextCluster
            if readCluster { nextCluster = now.addingTimeInterval(settings.clusterInterval) }
            step(readCluster: readCluster)
            lock.lock()
            if !stopping { _ = lock.wait(until: Date().addingTimeInterval(settings.pollInterval)) }
            let done = stopping
            lock.unlock()
            if done { return }
        }
    }

    /// Says `message` on stderr when it differs from the last said under `key`; nil: all well.
    private func say(_ key: String, _ message: String?) {
        guard said[key] != message else { return }
        if let message {
            FileHandle.standardError.write(Data("topo-preempt-exporter: \(message)\n".utf8))
        } else if said[key] != nil {
            FileHandle.standardError.write(Data("topo-preempt-exporter: \(key): working again\n".utf8))
        }
        said[key] = message
    }
}
