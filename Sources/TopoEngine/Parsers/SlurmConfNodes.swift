/// The parts of slurm.conf's `NodeName=` lines that matter for GPU topology.
public struct SlurmNodeSpec: Sendable, Hashable {
    public var line: Int
    public var names: [String]
    /// `Gres=` entries, e.g. `gpu:8`, `gpu:a100:4`.
    public var gres: [GresString.Entry]
    public var sockets: Int?
    public var coresPerSocket: Int?
    public var threadsPerCore: Int?
    public var cpus: Int?

    /// GPUs the node declares (all types).
    public var gpuCount: Int { saturatingSum(gres.filter { asciiLowercased($0.name) == "gpu" }.map(\.count)) }
}

public enum SlurmConfNodes {
    /// The value of a one-line slurm.conf parameter (`TopologyPlugin=topology/block`), the last
    /// one when given twice (as Slurm reads it); nil when absent. Only lines starting with the
    /// key are read, so words of other lines cannot disturb it.
    public static func parameter(_ key: String, in text: String) -> String? {
        let wanted = asciiLowercased(key) + "="
        var value: String?
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            guard asciiLowercased(String(line.prefix(wanted.count))) == wanted else { continue }
            var rest = line.dropFirst(wanted.count)
            if rest.first == "\"" {
                rest = rest.dropFirst()
                value = String(rest.prefix { $0 != "\"" })
            } else {
                value = String(rest.prefix { $0 != " " && $0 != "\t" && $0 != "#" && $0 != "\r" })
            }
        }
        return value
    }

    /// Reads the `NodeName=` lines of slurm.conf (other lines are left to Slurm), applying
    /// `NodeName=DEFAULT` values to the lines after them.
    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> [SlurmNodeSpec] {
        try TextLines.check(size: text, file: file)
        // Keep only NodeName lines (with their continuations), blanking the rest so that line
        // numbers stay right and words the lexer does not know (Include ...) are not read.
        var kept: [Substring] = []
        var inNode = false
        for rawScalars in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            let raw = Substring(rawScalars)
            let trimmed = raw.drop { $0 == " " || $0 == "\t" }
            let starts = asciiLowercased(String(trimmed.prefix(9))) == "nodename="
            let keep = starts || inNode
            kept.append(keep ? raw : "")
            var body = rawScalars
            while let last = body.last, last == "\r" || last == " " || last == "\t" { body = body.dropLast() }
            inNode = keep && body.last == "\\"
        }
        let lines = try KeyValueLexer.lex(kept.joined(separator: "\n"), file: file)
        var defaults = SlurmNodeSpec(line: 0, names: [], gres: [])
        var nodes: [SlurmNodeSpec] = []
        for line in lines {
            var spec = defaults
            spec.line = line.line
            var isDefault = false
            for pair in line.pairs {
                func fail(_ message: String) -> TextDiagnostic {
                    TextDiagnostic(file: file, location: pair.valueLocation, message: message)
                }
                func number() throws(TextDiagnostic) -> Int {
                    guard let n = RangeList.digitsOnly(Substring(pair.value)), n > 0 else {
                        throw fail("\(pair.key): '\(printable(pair.value))' is not a positive number")
                    }
                    return n
                }
                switch asciiLowercased(pair.key) {
                case "nodename":
                    if asciiLowercased(pair.value) == "default" {
                        isDefault = true
                    } else {
                        do { spec.names = try BracketList.expandList(pair.value, limit: BracketList.hostLimit) } catch {
                            throw fail("NodeName: \(error)")
                        }
                    }
                case "gres":
                    do { spec.gres = try GresString.parse(pair.value) } catch {
                        throw fail("Gres: \(error)")
                    }
                case "sockets": spec.sockets = try number()
                case "corespersocket": spec.coresPerSocket = try number()
                case "threadspercore": spec.threadsPerCore = try number()
                case "cpus", "procs": spec.cpus = try number()
                default: break
                }
            }
            if isDefault { defaults = spec; defaults.names = [] } else { nodes.append(spec) }
        }
        return nodes
    }
}
