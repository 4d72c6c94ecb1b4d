/// Reads `rocm-smi --showtopo` output: the "Weight", "Hops" and "Link Type between two GPUs"
/// tables and the "Numa Nodes" section (`GPU 0 : (Topology) Numa Node: 0`, also `GPU[0]`).
///
/// A pair is a direct GPU link (level nvlink, which on AMD means XGMI) when its link type is
/// `XGMI` and, if the hops table is present, it is one hop away. `PCIE` pairs are PCIe paths
/// of unknown depth: they share a NUMA group when rocm-smi puts both GPUs on one NUMA node.
public enum RocmSmiTopo {
    static let tables = ["Weight", "Hops", "Link Type"]

    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> ParsedTopology {
        try TextLines.check(size: text, file: file)
        let lines = TextLines.split(text)
        func fail(_ line: Int, _ column: Int, _ message: String) -> TextDiagnostic {
            TextDiagnostic(file: file, location: SourceLocation(line: line, column: column), message: message)
        }

        var matrices: [String: (line: Int, names: [String], cells: [[Token]])] = [:]
        var numa: [Int: Int] = [:]
        var section = ""
        var index = 0
        while index < lines.count {
            let line = lines[index]
            index += 1
            let words = line.tokens.map(\.text)
            if words.first?.hasPrefix("===") == true {
                section = words.filter { !$0.hasPrefix("=") }.joined(separator: " ")
                continue
            }
            guard let table = tables.first(where: { section.hasPrefix($0 + " between two GPUs") }),
                  words.first == "GPU0", !words.isEmpty
            else {
                if section.hasPrefix("Numa Nodes") { try parseNuma(line, into: &numa, fail: fail) }
                continue
            }
            // Header line of a table, then one row per GPU.
            let names = words
            guard names.allSatisfy({ TextLines.gpuNumber($0) != nil }), Set(names).count == names.count else {
                throw fail(line.number, 1, "\(table) table header should name GPU0, GPU1, ... once each")
            }
            guard names.count <= GPUSet.capacity else {
                throw fail(line.number, 1, "\(names.count) GPUs; at most \(GPUSet.capacity) per node are supported")
            }
            var cells: [[Token]] = []
            for name in names {
                guard index < lines.count, lines[index].tokens.first?.text == name else {
                    let at = index < lines.count ? lines[index].number : line.number
                    throw fail(at, 1, "\(table) table: expected the row of \(name)")
                }
                let row = Array(lines[index].tokens.dropFirst())
                guard row.count == names.count else {
                    throw fail(lines[index].number, lines[index].raw.unicodeScalars.count + 1,
                               "\(table) table: row \(name) has \(row.count) cells, expected \(names.count)")
                }
                cells.append(row)
                index += 1
            }
            guard matrices[table] == nil else { throw fail(line.number, 1, "\(table) table appears twice") }
            matrices[table] = (line.number, names, cells)
        }

        guard let linkTable = matrices["Link Type"] else {
            throw fail(1, 1, "no 'Link Type between two GPUs' table found (is this rocm-smi --showtopo output?)")
        }
        let count = linkTable.names.count
        for (name, table) in matrices where table.names != linkTable.names {
            throw fail(table.line, 1, "\(name) table names other GPUs than the Link Type table")
        }
        var paths = Array(repeating: Array(repeating: GPUPath.unknown, count: count), count: count)
        for i in 0..<count {
            for j in 0..<count where i != j {
                let cell = linkTable.cells[i][j]
                var hops: Int?
                if let table = matrices["Hops"] {
                    let hopCell = table.cells[i][j]
                    if let value = RangeList.digitsOnly(Substring(hopCell.text)) {
                        hops = value
                    } else if hopCell.text != "N/A" {
                        throw fail(table.line + 1 + i, hopCell.column, "Hops: '\(printable(hopCell.text))' is not a number")
                    }
                }
                switch cell.text.uppercased() {
                case "XGMI": paths[i][j] = (hops ?? 1) <= 1 ? .gpuLink(links: 1) : .system
                case "PCIE", "N/A": paths[i][j] = .unknown
                default:
                    throw fail(linkTable.line + 1 + i, cell.column,
                               "Link Type: unknown link '\(printable(cell.text))' between GPU\(i) and GPU\(j); expected XGMI, PCIE or N/A")
                }
            }
        }
        var gpus: [GPUInfo] = []
        for i in 0..<count { gpus.append(GPUInfo(index: i, numaNode: numa[i])) }
        var warnings: [TextDiagnostic] = []
        for (i, j) in NodeTopology.asymmetricPairs(paths) {
            warnings.append(fail(linkTable.line + 1 + i, 1, "GPU\(i)-GPU\(j) and GPU\(j)-GPU\(i) differ; using the farther"))
        }
        do {
            let topology = try NodeTopology(gpus: gpus, paths: paths)
            return ParsedTopology(source: .rocmSmi, topology: topology, gpuNames: linkTable.names, otherDevices: [],
                                  warnings: warnings)
        } catch {
            throw fail(linkTable.line, 1, error.description)
        }
    }

    /// `GPU 0 : (Topology) Numa Node: 0` or `GPU[0] : (Topology) Numa Node: 0`.
    static func parseNuma(_ line: TextLine, into numa: inout [Int: Int],
                          fail: (Int, Int, String) -> TextDiagnostic) throws(TextDiagnostic) {
        let text = line.tokens.map(\.text).joined(separator: " ")
        guard text.hasPrefix("GPU"), let colon = text.firstIndex(of: ":") else { return }
        let gpuPart = text[text.index(text.startIndex, offsetBy: 3)..<colon]
            .filter { $0 != "[" && $0 != "]" && $0 != " " }
        guard let gpu = RangeList.digitsOnly(Substring(gpuPart)), gpu < GPUSet.capacity else {
            throw fail(line.number, 1, "Numa Nodes: cannot read the GPU number in '\(printable(text))'")
        }
        guard text.contains("Numa Node:"), let last = line.tokens.last else { return }
        if let node = RangeList.digitsOnly(Substring(last.text)) {
            numa[gpu] = node
        } else if last.text != "N/A" && last.text != "-1" {
            throw fail(line.number, last.column, "Numa Node: '\(printable(last.text))' is not a number")
        }
    }
}
