/// A whitespace-separated word of a text line and its 1-based column.
struct Token: Sendable, Hashable {
    var text: String
    var column: Int
}

/// One line of input text: its number and its tokens.
struct TextLine: Sendable {
    var number: Int
    var raw: Substring
    var tokens: [Token]

    var isBlank: Bool { tokens.isEmpty }
}

enum TextLines {
    /// At most this many bytes of topology text are read (the largest real output is ~10 KB).
    static let maxInputSize = 1 << 20

    /// Splits text into lines (LF or CRLF) and each line into tokens separated by spaces, tabs
    /// and other ASCII blanks. Columns count bytes (topology text is ASCII).
    static func split(_ text: String) -> [TextLine] {
        var lines: [TextLine] = []
        let bytes = Array(text.utf8)
        var number = 0
        var lineStart = 0
        while lineStart <= bytes.count {
            number += 1
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != 10 { lineEnd += 1 }
            var contentEnd = lineEnd
            if contentEnd > lineStart, bytes[contentEnd - 1] == 13 { contentEnd -= 1 }
            var tokens: [Token] = []
            var i = lineStart
            while i < contentEnd {
                if isBlank(bytes[i]) {
                    i += 1
                    continue
                }
                let start = i
                while i < contentEnd, !isBlank(bytes[i]) { i += 1 }
                tokens.append(Token(text: String(decoding: bytes[start..<i], as: UTF8.self), column: start - lineStart + 1))
            }
            let raw = Substring(String(decoding: bytes[lineStart..<contentEnd], as: UTF8.self))
            lines.append(TextLine(number: number, raw: raw, tokens: tokens))
            lineStart = lineEnd + 1
        }
        return lines
    }

    static func isBlank(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 13 || byte == 11 || byte == 12 }

    static func check(size text: String, file: String) throws(TextDiagnostic) {
        if text.utf8.count > maxInputSize {
            throw TextDiagnostic(file: file, location: SourceLocation(line: 1, column: 1),
                                 message: "input is larger than \(maxInputSize) bytes")
        }
    }

    /// `GPU12` → 12 (at most 4 digits), else nil.
    static func gpuNumber(_ name: String) -> Int? {
        guard name.hasPrefix("GPU") else { return nil }
        let digits = name.dropFirst(3)
        return RangeList.digitsOnly(digits).flatMap { digits.count <= 4 ? $0 : nil }
    }
}

/// A topology read from text, with what the reader noticed along the way.
public struct ParsedTopology: Sendable {
    public enum Source: String, Sendable {
        case nvidiaSmi = "nvidia-smi topo -m"
        case rocmSmi = "rocm-smi --showtopo"
        case gresConf = "gres.conf"
    }

    public var source: Source
    public var topology: NodeTopology
    /// GPU names as the source prints them (`GPU0`, ...), by index.
    public var gpuNames: [String]
    /// Other devices in the matrix (NICs), ignored for placement.
    public var otherDevices: [String]
    /// Problems that did not stop parsing (e.g. an asymmetric matrix).
    public var warnings: [TextDiagnostic]
}
