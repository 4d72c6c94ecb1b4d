/// One device line of Slurm's gres.conf, with bracket ranges expanded.
public struct GresConfEntry: Sendable, Hashable {
    public var line: Int
    /// Host names the line is for; nil when it has no `NodeName=` (every node reading the file).
    public var nodes: [String]?
    public var name: String
    public var type: String?
    /// Device files, one per device (`File=/dev/nvidia[0-3]` gives four).
    public var files: [String]
    public var cores: [Int]?
    /// `Links=` of the line's single device: -1 self, 0 none, N links.
    public var links: [Int]?
    public var count: Int?
    public var flags: String?

    /// Devices this line declares: one per file, else `Count=` (1 when neither).
    public var deviceCount: Int { files.isEmpty ? (count ?? 1) : files.count }

    public func applies(to node: String) -> Bool { nodes.map { $0.contains(node) } ?? true }
}

/// Slurm's gres.conf: device lines and the `AutoDetect=` setting.
public struct GresConf: Sendable {
    public var file: String
    public var entries: [GresConfEntry]
    /// Global `AutoDetect=` (nvml, rsmi, off, ...), if any line sets one without a device.
    public var autoDetect: String?

    static let keys: Set<String> = ["nodename", "name", "type", "file", "files", "multiplefiles", "cores", "cpus",
                                    "links", "link", "count", "flags", "autodetect"]

    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> GresConf {
        try TextLines.check(size: text, file: file)
        let lines = try KeyValueLexer.lex(text, file: file)
        var conf = GresConf(file: file, entries: [], autoDetect: nil)
        for line in lines {
            func fail(_ pair: KeyValuePair, _ message: String, atValue: Bool = true) -> TextDiagnostic {
                TextDiagnostic(file: file, location: atValue ? pair.valueLocation : pair.location, message: message)
            }
            var seen: [String: KeyValuePair] = [:]
            for pair in line.pairs {
                let key = asciiLowercased(pair.key)
                guard keys.contains(key) else {
                    throw fail(pair, "unknown gres.conf key '\(printable(pair.key))'", atValue: false)
                }
                let canonical = ["files": "file", "multiplefiles": "file", "cpus": "cores", "link": "links"][key] ?? key
                guard seen[canonical] == nil else {
                    throw fail(pair, "\(pair.key) given twice on one line", atValue: false)
                }
                seen[canonical] = pair
            }
            if seen["name"] == nil {
                if let auto = seen["autodetect"], seen.count == 1 || (seen.count == 2 && seen["nodename"] != nil) {
                    conf.autoDetect = auto.value
                    continue
                }
                let first = line.pairs[0]
                throw fail(first, "a device line needs Name= (e.g. Name=gpu)", atValue: false)
            }
            var entry = GresConfEntry(line: line.line, nodes: nil, name: seen["name"]?.value ?? "", type: nil,
                                      files: [], cores: nil, links: nil, count: nil, flags: nil)
            if let pair = seen["nodename"] {
                do { entry.nodes = try BracketList.expandList(pair.value, limit: BracketList.hostLimit) } catch {
                    throw fail(pair, "NodeName: \(error)")
                }
            }
            entry.type = seen["type"]?.value
            entry.flags = seen["flags"]?.value
            if let pair = seen["file"] {
                do {
                    for part in splitOutsideBrackets(pair.value) {
                        entry.files += try BracketList.expand(part, limit: 1024)
                        guard entry.files.count <= 1024 else { throw RangeList.Failure.tooMany(1024) }
                    }
                } catch {
                    throw fail(pair, "File: \(error)")
                }
            }
            if let pair = seen["cores"] {
                do { entry.cores = try RangeList.parse(pair.value, maxValue: 1_048_575, maxCount: 65_536) } catch {
                    throw fail(pair, "Cores: \(error)")
                }
            }
            if let pair = seen["count"] {
                guard let count = parseCount(pair.value) else {
                    throw fail(pair, "Count: '\(printable(pair.value))' is not a count (a number, optionally with K, M or G)")
                }
                entry.count = count
            }
            if let pair = seen["links"] {
                entry.links = try parseLinks(pair, fail: fail)
                if entry.files.count > 1 {
                    throw fail(pair, "Links= needs a line with a single device, this one has \(entry.files.count) files",
                               atValue: false)
                }
            }
            if !entry.files.isEmpty, let count = entry.count, count != entry.files.count,
               let pair = seen["count"] {
                throw fail(pair, "Count=\(count) but File= names \(entry.files.count) device(s)")
            }
            conf.entries.append(entry)
        }
        return conf
    }

    /// The GPU lines for one node, in file order (the order Slurm numbers devices in `Links=`).
    public func gpuEntries(for node: String) -> [GresConfEntry] {
        entries.filter { asciiLowercased($0.name) == "gpu" && $0.applies(to: node) }
    }

    /// GPU lines per named node and for nodes the file never names, each in file order, built
    /// in one pass (so a cluster of thousands of nodes is indexed in linear time).
    public func gpuEntryIndex() -> (byNode: [String: [GresConfEntry]], global: [GresConfEntry]) {
        var byNode: [String: [GresConfEntry]] = [:]
        var global: [GresConfEntry] = []
        for entry in entries where asciiLowercased(entry.name) == "gpu" {
            if let nodes = entry.nodes {
                for node in nodes {
                    if byNode[node] == nil { byNode[node] = global }
                    byNode[node]?.append(entry)
                }
            } else {
                global.append(entry)
                for key in byNode.keys { byNode[key]?.append(entry) }
            }
        }
        return (byNode, global)
    }

    /// Every node name the file mentions, in first-seen order.
    public var nodeNames: [String] {
        var seen = Set<String>()
        var names: [String] = []
        for entry in entries {
            for node in entry.nodes ?? [] where seen.insert(node).inserted { names.append(node) }
        }
        return names
    }

    static func parseLinks(_ pair: KeyValuePair,
                           fail: (KeyValuePair, String, Bool) -> TextDiagnostic) throws(TextDiagnostic) -> [Int] {
        var links: [Int] = []
        for part in pair.value.split(separator: ",", omittingEmptySubsequences: false) {
            let negative = part.hasPrefix("-")
            guard let magnitude = RangeList.digitsOnly(negative ? part.dropFirst() : part) else {
                throw fail(pair, "Links: '\(printable(String(part)))' is not a number", true)
            }
            let value = negative ? -magnitude : magnitude
            guard value >= -2, value <= 1023 else {
                throw fail(pair, "Links: \(value) is out of Slurm's range -2..1023", true)
            }
            links.append(value)
            guard links.count <= GPUSet.capacity else {
                throw fail(pair, "Links: more than \(GPUSet.capacity) values", true)
            }
        }
        guard links.filter({ $0 == -1 }).count == 1 else {
            throw fail(pair, "Links: needs exactly one -1 (the device itself), as Slurm requires", true)
        }
        return links
    }

    /// `2`, `4K`, `1M`, `1G` (Slurm's suffixes, powers of 1024).
    static func parseCount(_ text: String) -> Int? {
        var digits = Substring(text)
        var scale = 1
        switch digits.last {
        case "k", "K": scale = 1 << 10
        case "m", "M": scale = 1 << 20
        case "g", "G": scale = 1 << 30
        default: break
        }
        if scale != 1 { digits = digits.dropLast() }
        guard let n = RangeList.digitsOnly(digits) else { return nil }
        let (value, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : value
    }

    /// Splits `a[0-1],b` at commas outside brackets.
    static func splitOutsideBrackets(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            if character == "[" { depth += 1 }
            if character == "]" { depth = max(0, depth - 1) }
            if character == ",", depth == 0 {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        parts.append(current)
        return parts
    }
}

/// Sum that stops at Int.max instead of trapping (counts come from configuration text).
func saturatingSum<S: Sequence>(_ values: S) -> Int where S.Element == Int {
    var total = 0
    for value in values {
        let (sum, overflow) = total.addingReportingOverflow(value)
        if overflow { return Int.max }
        total = sum
    }
    return total
}
