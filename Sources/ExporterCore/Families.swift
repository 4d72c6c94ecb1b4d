import NIOConcurrencyHelpers
import Prometheus

/// A metric family of the exporter: one name, one help text, fixed label names, so that
/// swift-prometheus (which stops the process on a help or type mismatch) is always called the
/// same way; and a bound on the label values taken from records (reasons, classes), beyond which
/// new values are counted under "other".
struct CounterFamily {
    let registry: PrometheusCollectorRegistry
    let descriptor: MetricNameDescriptor
    let labels: [String]
    let values: LabelValues

    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String, labels: [String] = []) {
        self.registry = registry
        descriptor = metricName(name, help)
        self.labels = labels
        values = LabelValues()
    }

    func counter(_ values: String...) -> Counter {
        if labels.isEmpty { return registry.makeCounter(descriptor: descriptor) }
        return registry.makeCounter(descriptor: descriptor, labels: self.values.pairs(labels, values))
    }

    /// Registers the series now, at 0, so that a scrape shows it before the first event.
    func touch(_ values: String...) {
        if labels.isEmpty { _ = registry.makeCounter(descriptor: descriptor) } else {
            _ = registry.makeCounter(descriptor: descriptor, labels: self.values.pairs(labels, values))
        }
    }
}

struct HistogramFamily {
    let registry: PrometheusCollectorRegistry
    let descriptor: MetricNameDescriptor
    let buckets: [Double]

    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String, buckets: [Double]) {
        self.registry = registry
        descriptor = metricName(name, help)
        self.buckets = buckets
        _ = histogram()
    }

    func histogram() -> ValueHistogram { registry.makeValueHistogram(descriptor: descriptor, buckets: buckets) }
}

struct GaugeFamily {
    let registry: PrometheusCollectorRegistry
    let descriptor: MetricNameDescriptor
    let labels: [String]
    let values: LabelValues

    init(_ registry: PrometheusCollectorRegistry, _ name: String, _ help: String, labels: [String] = []) {
        self.registry = registry
        descriptor = metricName(name, help)
        self.labels = labels
        values = LabelValues()
    }

    func gauge(_ values: [String]) -> Gauge {
        if labels.isEmpty { return registry.makeGauge(descriptor: descriptor) }
        return registry.makeGauge(descriptor: descriptor, labels: self.values.pairs(labels, values))
    }
}

/// `topo_preempt_NAME_UNIT` as swift-prometheus describes it: the namespace, the name, and the
/// unit suffix (`total`, `seconds`) when the name ends with one.
func metricName(_ full: String, _ help: String) -> MetricNameDescriptor {
    var name = full.hasPrefix("topo_preempt_") ? String(full.dropFirst("topo_preempt_".count)) : full
    var unit = ""
    if let suffix = ["_total", "_seconds"].first(where: { name.hasSuffix($0) }) {
        name.removeLast(suffix.count)
        unit = String(suffix.dropFirst())
    }
    return MetricNameDescriptor(namespace: "topo_preempt", metricName: name, unitName: unit, helpText: help)
}

/// Distinct label values seen per label name, at most `limit` each.
final class LabelValues: Sendable {
    static let limit = 256
    private let seen = NIOLockedSet()

    func pairs(_ names: [String], _ values: [String]) -> [(String, String)] {
        zip(names, values).map { name, value in (name, seen.admit(name, value, limit: Self.limit) ? value : "other") }
    }
}

/// A lock-protected set of (label, value) pairs with a per-label bound.
final class NIOLockedSet: Sendable {
    private let box = NIOLockedValueBox([String: Set<String>]())

    func admit(_ name: String, _ value: String, limit: Int) -> Bool {
        box.withLockedValue { seen in
            if seen[name]?.contains(value) == true { return true }
            guard (seen[name]?.count ?? 0) < limit else { return false }
            seen[name, default: []].insert(value)
            return true
        }
    }
}
