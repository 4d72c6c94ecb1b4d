import Testing
@testable import TopoEngine

@Suite struct KeyValueLexerTests {
    @Test func splitsWordsCommentsAndQuotes() throws {
        let text = """
            # a comment line
            Alpha=1 Beta=two   # trailing comment
            \tGamma="three four" Delta=x#y
            """
        let lines = try KeyValueLexer.lex(text, file: "t.conf")
        #expect(lines.count == 2)
        #expect(lines[0].line == 2)
        #expect(lines[0].pairs.map(\.key) == ["Alpha", "Beta"])
        #expect(lines[0].pairs.map(\.value) == ["1", "two"])
        #expect(lines[1].pairs.map(\.value) == ["three four", "x"])
        #expect(lines[1].pairs[0].location == SourceLocation(line: 3, column: 2))
        #expect(lines[1].pairs[0].valueLocation == SourceLocation(line: 3, column: 9))
    }

    @Test func joinsContinuationLinesAndAcceptsCRLF() throws {
        let lines = try KeyValueLexer.lex("A=1 \\\r\n   B=2\r\nC=3\r\n", file: "t.conf")
        #expect(lines.count == 2)
        #expect(lines[0].line == 1)
        #expect(lines[0].pairs.map(\.key) == ["A", "B"])
        #expect(lines[0].pairs[1].location.line == 2)
        #expect(lines[1].pairs.map(\.key) == ["C"])
    }

    @Test(arguments: [
        ("A=1 Oops", "t.conf:1:5: expected Key=Value, found 'Oops' without '='"),
        ("\n  =x", "t.conf:2:3: missing key before '='"),
        ("A=\"open", "t.conf:1:3: unterminated quoted value for 'A'"),
        ("A=\"x\"y", "t.conf:1:6: unexpected character after quoted value of 'A'"),
        ("Bad\u{1}Key", "t.conf:1:1: expected Key=Value, found 'Bad\\u{1}Key' without '='"),
    ])
    func reportsFileLineAndColumn(text: String, expected: String) {
        #expect(throws: TextDiagnostic.self) { try KeyValueLexer.lex(text, file: "t.conf") }
        do {
            _ = try KeyValueLexer.lex(text, file: "t.conf")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func printableEscapesControlCharactersAndCutsLongText() {
        #expect(printable("a\tb\u{7f}") == "a\\u{9}b\\u{7f}")
        #expect(printable(String(repeating: "x", count: 100), limit: 4) == "xxxx...")
    }
}
