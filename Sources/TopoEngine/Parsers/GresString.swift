/// GRES strings as libslurm and slurm.conf print them:
/// `gpu:4(IDX:0-1,4-5)`, `gpu:a100:2(IDX:0,2)`, `gpu:(null):8(IDX:0-7)`, `gpu:8(S:0-1)`,
/// `gpu:a100:4,gpu:v100:2`, and the TRES form of job requests, `gres:gpu:4`.
public enum GresString {
    public struct Entry: Sendable, Hashable, CustomStringConvertible {
        public var name: String
        /// `a100`; nil when absent or printed as `(null)`.
        public var type: String?
        public var count: Int
        /// `IDX:` GPU indices on the node (`IDX:N/A` gives an empty set).
        public var indices: GPUSet?
        /// `S:` sockets the GRES is bound to (node `Gres=` with `Cores=`).
        public var sockets: [Int]?

        public init(name: String, type: String? = nil, count: Int, indices: GPUSet? = nil, sockets: [Int]? = nil) {
            self.name = name
            self.type = type
            self.count = count
            self.indices = indices
            self.sockets = sockets
        }

        public var description: String {
            var text = name + (type.map { ":\($0)" } ?? "") + ":\(count)"
            if let indices { text += "(IDX:\(indices.isEmpty ? "N/A" : indices.description))" }
            else if let sockets { text += "(S:\(RangeList.format(sockets)))" }
            return text
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed(String, String)

        public var description: String {
            switch self {
            case let .malformed(entry, why): "'\(printable(entry))': \(why)"
            }
        }
    }

    /// Parses a comma-separated list of GRES entries (commas inside parentheses belong to the
    /// entry). An empty string or `(null)` gives no entries.
    public static func parse(_ text: String) throws(Failure) -> [Entry] {
        guard text.utf8.count <= 65_536 else { throw .malformed(String(text.prefix(32)), "longer than 65536 bytes") }
        if text.isEmpty || text == "(null)" { return [] }
        var entries: [Entry] = []
        var current = ""
        var depth = 0
        for character in text {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if depth < 0 { throw .malformed(text, "unbalanced ')'") }
            if character == ",", depth == 0 {
                entries.append(try entry(current))
                current = ""
            } else {
                current.append(character)
            }
        }
        guard depth == 0 else { throw .malformed(text, "unbalanced '('") }
        entries.append(try entry(current))
        return entries
    }

    /// The GPU count of a job's TRES request (`tres_per_node`, `tres_per_socket`, ...):
    /// `gres:gpu:4`, `gres:gpu:a100:2`, `gres/gpu:4`, several entries summed; 0 when none.
    public static func gpuCount(inTRES text: String?) throws(Failure) -> Int {
        guard let text, !text.isEmpty else { return 0 }
        var total = 0
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            var item = Substring(raw)
            if item.hasPrefix("gres:") || item.hasPrefix("gres/") { item = item.dropFirst(5) }
            guard asciiLowercased(String(item.prefix(3))) == "gpu" else { continue }
            // gpu, gpu:N, gpu:TYPE:N (a missing count means 1, as in sbatch --gres=gpu).
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard asciiLowercased(String(parts[0])) == "gpu" else { continue }
            var count = 1
            if parts.count >= 2, let last = parts.last {
                if let n = GresConf.parseCount(String(last)) {
                    count = n
                } else if parts.count > 2 {
                    throw .malformed(String(item), "the count is not a number")
                }
            }
            let (sum, overflow) = total.addingReportingOverflow(count)
            guard !overflow else { throw .malformed(String(item), "count too large") }
            total = sum
        }
        return total
    }

    static func entry(_ text: String) throws(Failure) -> Entry {
        var body = Substring(text)
        var detail: Substring?
        // The detail is the last parenthesised group, unless that is the type "(null)".
        if body.last == ")", let open = body.lastIndex(of: "("), body[open...] != "(null)" {
            detail = body[body.index(after: open)..<body.index(before: body.endIndex)]
            body = body[..<open]
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false)
        guard let name = parts.first, !name.isEmpty, parts.count <= 3 else {
            throw .malformed(text, "expected NAME[:TYPE]:COUNT")
        }
        var entry = Entry(name: String(name), type: nil, count: 1, indices: nil, sockets: nil)
        if parts.count >= 2 {
            guard let count = GresConf.parseCount(String(parts[parts.count - 1])) else {
                if parts.count == 2 {  // NAME:TYPE without count
                    entry.type = parts[1] == "(null)" ? nil : String(parts[1])
                    return entry
                }
                throw .malformed(text, "'\(parts[parts.count - 1])' is not a count")
            }
            entry.count = count
        }
        if parts.count == 3 {
            let type = parts[1]
            guard !type.isEmpty else { throw .malformed(text, "empty type") }
            entry.type = type == "(null)" ? nil : String(type)
        }
        if let detail {
            if detail.hasPrefix("IDX:") {
                let list = detail.dropFirst(4)
                if list == "N/A" || list.isEmpty {
                    entry.indices = GPUSet()
                } else {
                    do {
                        entry.indices = GPUSet(try RangeList.parse(String(list), maxValue: GPUSet.capacity - 1))
                    } catch {
                        throw .malformed(text, "IDX: \(error)")
                    }
                }
            } else if detail.hasPrefix("S:") {
                do { entry.sockets = try RangeList.parse(String(detail.dropFirst(2)), maxValue: 65_535) } catch {
                    throw .malformed(text, "S: \(error)")
                }
            } else {
                throw .malformed(text, "unknown detail '(\(detail))', expected (IDX:...) or (S:...)")
            }
        }
        return entry
    }
}
