/// A user's per-job choice of GPU affinity, given as `sbatch --gpu-affinity=LEVEL[:MODE]`.
///
/// Accepted forms: `LEVEL`, `LEVEL:MODE` or `MODE`, where LEVEL is one of `AffinityLevel`'s names
/// and MODE one of `PlacementMode`'s (ASCII case ignored). The part left out keeps the class's
/// setting. The SPANK plugin passes the text through unchanged; this parser is the one place it
/// is checked, so sbatch users see the same message whichever client submitted the job.
public struct AffinityOverride: Sendable, Equatable {
    public var level: AffinityLevel?
    public var mode: PlacementMode?

    public init(level: AffinityLevel? = nil, mode: PlacementMode? = nil) {
        self.level = level
        self.mode = mode
    }

    /// The name of the job's SPANK environment variable that carries the option.
    public static let spankVariable = "TOPO_AWARE_GPU_AFFINITY"
    /// The sbatch option, for messages.
    public static let optionName = "--gpu-affinity"
    /// Longest accepted value.
    public static let maxLength = 64

    /// Why an override was refused, as a sentence for the sbatch user.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static func parse(_ text: String) throws(ParseError) -> AffinityOverride {
        func fail(_ why: String) -> ParseError {
            ParseError(message: "invalid \(optionName)=\(printable(text, limit: maxLength)): \(why); expected LEVEL[:MODE] with LEVEL one of \(AffinityLevel.allNames) and MODE one of \(PlacementMode.allNames)")
        }
        guard !text.isEmpty else { throw fail("empty value") }
        guard text.utf8.count <= maxLength else { throw fail("longer than \(maxLength) characters") }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 1:
            if let level = AffinityLevel(name: parts[0]) { return AffinityOverride(level: level) }
            if let mode = PlacementMode(name: parts[0]) { return AffinityOverride(mode: mode) }
            throw fail("'\(printable(parts[0]))' is neither a level nor a mode")
        case 2:
            guard let level = AffinityLevel(name: parts[0]) else {
                throw fail("unknown level '\(printable(parts[0]))'")
            }
            guard let mode = PlacementMode(name: parts[1]) else {
                throw fail("unknown mode '\(printable(parts[1]))'")
            }
            return AffinityOverride(level: level, mode: mode)
        default:
            throw fail("too many ':'")
        }
    }

    /// `LEVEL:MODE`, `LEVEL` or `MODE`.
    public var text: String {
        switch (level, mode) {
        case let (level?, mode?): "\(level.name):\(mode.name)"
        case let (level?, nil): level.name
        case let (nil, mode?): mode.name
        case (nil, nil): ""
        }
    }
}
