/// A position in a text file, 1-based, for error messages (`file:line:column`).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A problem found in a text input, with the place it was found.
public struct TextDiagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var location: SourceLocation
    public var message: String

    public init(file: String, location: SourceLocation, message: String) {
        self.file = file
        self.location = location
        self.message = message
    }

    /// `file:line:column: message`, the form compilers and Slurm's own config errors use.
    public var description: String { "\(file):\(location.line):\(location.column): \(message)" }
}
