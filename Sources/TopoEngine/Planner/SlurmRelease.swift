/// A Slurm release, and which of stock Slurm's behaviours that differ between releases it has.
/// The planner and the stock model follow the release of the cluster they plan for: the plugin
/// knows it from the release it was built for, the command-line tool from the controller.
public struct SlurmRelease: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let micro: Int

    public init(_ major: Int, _ minor: Int, _ micro: Int = 0) {
        self.major = major
        self.minor = minor
        self.micro = micro
    }

    /// Debian bookworm's packaged release, the default release of the project's tools.
    public static let debianBookworm = SlurmRelease(22, 5, 8)

    /// `24.11.5`, `24.11` (micro 0) or `slurm 24.11.5` (scontrol's form); nil for anything else.
    public init?(_ text: String) {
        var body = Substring(text)
        if body.hasPrefix("slurm ") { body = body.dropFirst(6) }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return nil }
        var numbers: [Int] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(part) else { return nil }
            numbers.append(n)
        }
        self.init(numbers[0], numbers[1], numbers.count == 3 ? numbers[2] : 0)
    }

    /// From `SLURM_VERSION_NUMBER` (major << 16 | minor << 8 | micro).
    public init(versionNumber: UInt32) {
        self.init(Int(versionNumber >> 16), Int((versionNumber >> 8) & 0xff), Int(versionNumber & 0xff))
    }

    /// `24.11.5`: two digits for the minor, as Slurm names its releases.
    public var description: String {
        "\(major).\(minor < 10 ? "0" : "")\(minor).\(micro)"
    }

    public static func < (a: SlurmRelease, b: SlurmRelease) -> Bool {
        (a.major, a.minor, a.micro) < (b.major, b.minor, b.micro)
    }

    /// How this release's select/cons_tres picks a starting job's GPUs on a node.
    public var gpuPick: GPUPickModel {
        self >= SlurmRelease(24, 5) ? .leastLinkedFirst : .linkLevels
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let release = SlurmRelease(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "'\(text)' is not a Slurm release such as 24.11.5"))
        }
        self = release
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The GPU pick of select/cons_tres (`gres_select_filter.c`, `_set_node_bits` and
/// `_set_sock_bits`), which changed between releases (read in the sources; the fidelity test
/// checks each model against a real controller of the release).
public enum GPUPickModel: String, Sendable, Codable, CaseIterable {
    /// 22.05 and 23.11: one anchor GPU per socket the job's cores use, then GPUs by summed link
    /// count from the best level down (best-linked first).
    case linkLevels = "link-levels"
    /// 24.05 (read in 24.11; 24.05 itself not checked) and later: after each GPU picked, the
    /// node's GPUs are re-sorted by their summed links to the GPUs picked so far in *ascending*
    /// order and the scan resumes at the second entry, so the next GPU is the least linked one
    /// (on NVLink pairs, `--gres=gpu:2` gets GPUs 0 and 2).
    case leastLinkedFirst = "least-linked-first"

    /// The releases each model covers, for messages.
    public var releases: String {
        switch self {
        case .linkLevels: "22.05-23.11"
        case .leastLinkedFirst: "24.05 and later"
        }
    }
}
