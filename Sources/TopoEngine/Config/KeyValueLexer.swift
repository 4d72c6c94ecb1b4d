/// One `Key=Value` word of a Slurm-style configuration line.
public struct KeyValuePair: Sendable, Hashable {
    public var key: String
    public var value: String
    /// Where the key starts.
    public var location: SourceLocation
    /// Where the value starts (after `=`, inside quotes if quoted).
    public var valueLocation: SourceLocation
}

/// One logical line of a Slurm-style configuration file: its `Key=Value` words in order.
public struct KeyValueLine: Sendable, Hashable {
    /// The physical line the logical line starts on.
    public var line: Int
    public var pairs: [KeyValuePair]
}

/// Splits text in the syntax of slurm.conf, gres.conf and topo_aware.conf into `Key=Value` words.
///
/// Rules (those of Slurm's own parser that these files use): `#` starts a comment to the end of
/// the line; words are separated by spaces or tabs; a value may be written in double quotes to
/// hold spaces or `#`; a backslash at the end of a line continues the line; CRLF line ends are
/// accepted. Input size is bounded by the caller; the lexer itself is linear in the input.
public enum KeyValueLexer {
    public static func lex(_ text: String, file: String) throws(TextDiagnostic) -> [KeyValueLine] {
        var result: [KeyValueLine] = []
        var current: [KeyValuePair] = []
        var logicalStart = 1
        var continuing = false
        var lineNumber = 0

        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var bytes = Array(rawLine)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            if !continuing {
                logicalStart = lineNumber
                current = []
            }
            continuing = false
            var i = 0
            while i < bytes.count {
                let byte = bytes[i]
                if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                    i += 1
                    continue
                }
                if byte == UInt8(ascii: "#") { break }
                if byte == UInt8(ascii: "\\") && bytes[(i + 1)...].allSatisfy({ $0 == 32 || $0 == 9 }) {
                    continuing = true
                    break
                }
                // A word: Key=Value or Key="Value".
                let keyStart = i
                while i < bytes.count, bytes[i] != UInt8(ascii: "="), !isSpace(bytes[i]), bytes[i] != UInt8(ascii: "#") {
                    i += 1
                }
                let key = String(decoding: bytes[keyStart..<i], as: UTF8.self)
                let keyLocation = SourceLocation(line: lineNumber, column: keyStart + 1)
                guard i < bytes.count, bytes[i] == UInt8(ascii: "=") else {
                    throw TextDiagnostic(
                        file: file, location: keyLocation,
                        message: "expected Key=Value, found '\(printable(key))' without '='")
                }
                guard !key.isEmpty else {
                    throw TextDiagnostic(file: file, location: keyLocation, message: "missing key before '='")
                }
                i += 1  // '='
                var valueStart = i
                let value: String
                if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
                    valueStart = i + 1
                    guard let close = bytes[valueStart...].firstIndex(of: UInt8(ascii: "\"")) else {
                        throw TextDiagnostic(
                            file: file, location: SourceLocation(line: lineNumber, column: i + 1),
                            message: "unterminated quoted value for '\(printable(key))'")
                    }
                    value = String(decoding: bytes[valueStart..<close], as: UTF8.self)
                    i = close + 1
                    if i < bytes.count, !isSpace(bytes[i]), bytes[i] != UInt8(ascii: "#") {
                        throw TextDiagnostic(
                            file: file, location: SourceLocation(line: lineNumber, column: i + 1),
                            message: "unexpected character after quoted value of '\(printable(key))'")
                    }
                } else {
                    while i < bytes.count, !isSpace(bytes[i]), bytes[i] != UInt8(ascii: "#") { i += 1 }
                    value = String(decoding: bytes[valueStart..<i], as: UTF8.self)
                }
                current.append(KeyValuePair(
                    key: key, value: value, location: keyLocation,
                    valueLocation: SourceLocation(line: lineNumber, column: valueStart + 1)))
            }
            if !continuing, !current.isEmpty {
                result.append(KeyValueLine(line: logicalStart, pairs: current))
                current = []
            }
        }
        if !current.isEmpty { result.append(KeyValueLine(line: logicalStart, pairs: current)) }
        return result
    }

    private static func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 }
}

/// Renders text for an error message: control characters become `\u{..}` escapes and long text
/// is cut, so a message about hostile input stays one readable line.
public func printable(_ text: String, limit: Int = 64) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count == limit {
            out += "..."
            break
        }
        if scalar.value < 0x20 || scalar.value == 0x7F {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
        count += 1
    }
    return out
}
