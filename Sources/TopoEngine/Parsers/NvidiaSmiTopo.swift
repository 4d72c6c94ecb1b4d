/// Reads `nvidia-smi topo -m` (also `--matrix`) output as real drivers print it.
///
/// Accepted: tab- or space-aligned columns (old drivers), text indented or preceded by other
/// lines (a shell prompt, the command), NIC rows and columns of any name (`mlx5_0`, `NIC3`,
/// `rocep49s0`), the `CPU Affinity`, `NUMA Affinity` and `GPU NUMA ID` columns in any subset,
/// `N/A` and empty affinity cells, `NV1`..`NV99`, `PIX`, `PXB`, `PHB`, `NODE`, `SYS`, the old
/// `SOC`, trailing tabs and spaces, CRLF, with or without the Legend (and `NIC Legend`).
public enum NvidiaSmiTopo {
    static let affinityColumns: [[String]] = [["CPU", "Affinity"], ["NUMA", "Affinity"], ["GPU", "NUMA", "ID"]]
    static let maxCPU = 65_535

    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> ParsedTopology {
        try TextLines.check(size: text, file: file)
        let lines = TextLines.split(text)
        func fail(_ line: Int, _ column: Int, _ message: String) -> TextDiagnostic {
            TextDiagnostic(file: file, location: SourceLocation(line: line, column: column), message: message)
        }

        // The header: the first line that starts with GPU0 and has no self ("X") cell.
        guard let headerIndex = lines.firstIndex(where: { line in
            line.tokens.first?.text == "GPU0" && !line.tokens.contains { $0.text == "X" }
        }) else {
            let line = lines.firstIndex { !$0.isBlank && !$0.raw.hasPrefix("#") }.map { lines[$0].number } ?? 1
            throw fail(line, 1, "no nvidia-smi topology matrix found: expected a header line whose first column is GPU0")
        }
        let header = lines[headerIndex]

        // Device columns, then the affinity columns (multi-word names).
        var devices: [Token] = []
        var affinity: [String] = []
        var t = 0
        let tokens = header.tokens
        while t < tokens.count {
            if let words = affinityColumns.first(where: { words in
                t + words.count <= tokens.count && zip(words, tokens[t...]).allSatisfy { $0 == $1.text }
            }) {
                affinity.append(words.joined(separator: " "))
                t += words.count
                continue
            }
            guard affinity.isEmpty else {
                throw fail(header.number, tokens[t].column,
                           "unexpected column '\(printable(tokens[t].text))' after the affinity columns")
            }
            if devices.contains(where: { $0.text == tokens[t].text }) {
                throw fail(header.number, tokens[t].column, "device \(printable(tokens[t].text)) appears twice in the header")
            }
            devices.append(tokens[t])
            t += 1
        }
        let gpuColumns = devices.indices.filter { TextLines.gpuNumber(devices[$0].text) != nil }
        guard gpuColumns.count <= GPUSet.capacity else {
            throw fail(header.number, 1, "\(gpuColumns.count) GPUs; at most \(GPUSet.capacity) per node are supported")
        }

        // Matrix rows until a blank line, the Legend, or the end.
        var rows: [String: (line: TextLine, cells: [Token], extra: [Token])] = [:]
        var rowIndex = headerIndex + 1
        while rowIndex < lines.count {
            let line = lines[rowIndex]
            rowIndex += 1
            if line.isBlank {
                if rows.isEmpty { continue }
                break
            }
            guard let label = line.tokens.first else { continue }
            if label.text.hasPrefix("Legend") || label.text == "NIC" { break }
            guard let column = devices.firstIndex(where: { $0.text == label.text }) else {
                throw fail(line.number, label.column,
                           "row '\(printable(label.text))' is not a device of the header (\(devices.map(\.text).joined(separator: " ")))")
            }
            guard rows[label.text] == nil else {
                throw fail(line.number, label.column, "row \(printable(label.text)) appears twice")
            }
            let cells = Array(line.tokens.dropFirst().prefix(devices.count))
            guard cells.count == devices.count else {
                let end = line.raw.unicodeScalars.count + 1
                throw fail(line.number, end,
                           "row \(label.text) has \(cells.count) cells, the header names \(devices.count) devices")
            }
            if cells[column].text != "X" {
                throw fail(line.number, cells[column].column,
                           "row \(label.text) should have X (self) in its own column, found '\(printable(cells[column].text))'")
            }
            rows[label.text] = (line, cells, Array(line.tokens.dropFirst(1 + devices.count)))
        }

        var gpus: [GPUInfo] = []
        var names: [String] = []
        var paths: [[GPUPath]] = []
        for (position, column) in gpuColumns.enumerated() {
            let name = devices[column].text
            guard let row = rows[name] else {
                throw fail(header.number, devices[column].column, "\(name) is in the header but has no row")
            }
            var pathRow: [GPUPath] = []
            for other in gpuColumns {
                let cell = row.cells[other]
                if other == column {
                    pathRow.append(.unknown)
                    continue
                }
                guard let path = parseCell(cell.text) else {
                    throw fail(row.line.number, cell.column,
                               "unknown link '\(printable(cell.text))' between \(name) and \(devices[other].text); "
                                   + "expected NV#, PIX, PXB, PHB, NODE, SYS, SOC or N/A")
                }
                pathRow.append(path)
            }
            var info = GPUInfo(index: position)
            // Affinity cells: empty cells vanish in whitespace splitting; values map in order.
            guard row.extra.count <= affinity.count else {
                let cell = row.extra[affinity.count]
                throw fail(row.line.number, cell.column,
                           "unexpected cell '\(printable(cell.text))' after the \(affinity.count) affinity column(s)")
            }
            for (name, cell) in zip(affinity, row.extra) where cell.text != "N/A" {
                switch name {
                case "CPU Affinity":
                    do {
                        info.cpus = try RangeList.parse(cell.text, maxValue: maxCPU)
                    } catch {
                        throw fail(row.line.number, cell.column, "CPU Affinity: \(error)")
                    }
                case "NUMA Affinity":
                    // A single NUMA node; a range (GPU close to several) leaves it unknown.
                    if let node = RangeList.digitsOnly(Substring(cell.text)) {
                        info.numaNode = node
                    } else if (try? RangeList.parse(cell.text, maxValue: 4095)) == nil {
                        throw fail(row.line.number, cell.column,
                                   "NUMA Affinity: '\(printable(cell.text))' is not a NUMA node list")
                    }
                default:
                    break  // GPU NUMA ID: the GPU's own memory node (C2C systems), not placement.
                }
            }
            gpus.append(info)
            names.append(name)
            paths.append(pathRow)
        }
        guard !gpus.isEmpty else { throw fail(header.number, 1, "the header names no GPU columns (GPU0, GPU1, ...)") }

        // Without a NUMA Affinity column (older drivers), GPUs local to the same CPUs are local
        // to the same NUMA node: number the distinct CPU Affinity lists.
        if !affinity.contains("NUMA Affinity") {
            var nodes: [[Int]: Int] = [:]
            for i in gpus.indices {
                guard let cpus = gpus[i].cpus else { continue }
                let node = nodes[cpus] ?? nodes.count
                nodes[cpus] = node
                gpus[i].numaNode = node
            }
        }
        var warnings: [TextDiagnostic] = []
        for (i, j) in NodeTopology.asymmetricPairs(paths) {
            let row = rows[names[i]]?.line.number ?? header.number
            warnings.append(fail(row, 1, "\(names[i])-\(names[j]) is \(paths[i][j]) but \(names[j])-\(names[i]) is \(paths[j][i]); using \(max(paths[i][j], paths[j][i]))"))
        }
        let topology: NodeTopology
        do {
            topology = try NodeTopology(gpus: gpus, paths: paths)
        } catch {
            throw fail(header.number, 1, error.description)
        }
        let others = devices.map(\.text).filter { TextLines.gpuNumber($0) == nil }
        return ParsedTopology(source: .nvidiaSmi, topology: topology, gpuNames: names, otherDevices: others, warnings: warnings)
    }

    /// One matrix cell; nil when unknown.
    static func parseCell(_ text: String) -> GPUPath? {
        switch text {
        case "PIX": return .pcieSwitch
        case "PXB": return .pcieSwitches
        case "PHB": return .hostBridge
        case "NODE": return .numaNode
        case "SYS", "SOC": return .system
        case "N/A": return .unknown
        default:
            guard text.hasPrefix("NV"), let links = RangeList.digitsOnly(text.dropFirst(2)), links >= 1, links <= 99 else {
                return nil
            }
            return .gpuLink(links: links)
        }
    }
}
