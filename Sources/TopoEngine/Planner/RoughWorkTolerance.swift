/// How much more work than the least a plan may lose and still tie with it under `rough-work`
/// (`RoughWorkTolerance=` of topo_aware.conf, `--rough-work-tolerance`): a percentage with at
/// most one decimal, from 0 (rough-work is work) to 100 (plans losing up to twice the least
/// work tie).
public struct RoughWorkTolerance: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Tenths of a percent, 0...1000.
    public let perMille: Int

    /// The default: 2%. Measured over six rounds of 600 preemptors on the real controller
    /// against 5% (docs/measurements.md, "Cost orders").
    public static let `default` = RoughWorkTolerance(clamping: 20)

    /// `perMille` clamped to 0...1000.
    public init(clamping perMille: Int) { self.perMille = min(max(perMille, 0), 1000) }

    /// Parses `2`, `2.5`, `2%` or `2.5%`; nil for anything else or beyond 0-100%.
    public init?(_ text: String) {
        var digits = Substring(text)
        if digits.hasSuffix("%") { digits = digits.dropLast() }
        let parts = digits.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, (1...3).contains(whole.utf8.count), whole.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let percent = Int(whole)
        else { return nil }
        var tenths = 0
        if parts.count == 2 {
            let fraction = parts[1]
            guard fraction.utf8.count == 1, let digit = fraction.utf8.first, digit >= 48 && digit <= 57 else { return nil }
            tenths = Int(digit - 48)
        }
        let perMille = percent * 10 + tenths
        guard perMille <= 1000 else { return nil }
        self.perMille = perMille
    }

    /// As written in a file: `2%`, `2.5%`.
    public var description: String { perMille % 10 == 0 ? "\(perMille / 10)%" : "\(perMille / 10).\(perMille % 10)%" }

    /// The most work a plan may lose and still tie with one losing `least`: the tolerance more,
    /// rounded down, without overflow (at most `Int64.max`).
    public func ceiling(_ least: Int64) -> Int64 {
        let least = max(least, 0)
        let margin = (least / 1000) * Int64(perMille) + (least % 1000) * Int64(perMille) / 1000
        return least > Int64.max - margin ? Int64.max : least + margin
    }

    /// What a file or option gets wrong about it.
    public static let expected = "a percentage from 0 to 100 with at most one decimal, such as 2 or 2.5%"
}
