import CSlurmMock
import CSlurmShim
import Foundation
@testable import SlurmBridge
import Synchronization
import Testing
import TopoEngine

/// The decision log's writer on its own: numbered lines, rotation that keeps every line, and a
/// missing directory or unwritable file reported once, counted, and written as lost.
@Suite struct DecisionLogTests {
    final class Reports: @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    func writer(_ reports: Reports) -> DecisionLog {
        let log = DecisionLog()
        log.report = { error, line in reports.lines.withLock { $0.append((error ? "error: " : "info: ") + line) } }
        return log
    }

    func records(_ count: Int, from first: UInt32 = 1) -> [DecisionRecord] {
        (0..<count).map { DecisionRecord(.fallback, time: 1000 + Int64($0), job: first + UInt32($0), message: String(repeating: "x", count: 100), reason: "no-topology") }
    }

    func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("decision-log-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func rotationKeepsEveryLine() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reports = Reports()
        let log = writer(reports)
        let path = dir + "/decisions.jsonl"
        log.configure(.init(path: path, maxBytes: 1000, keep: 3))
        for batch in 0..<10 {
            log.append(records(3, from: UInt32(batch * 3 + 1)))
            #expect(log.flush())
        }
        // 30 lines of about 150 bytes, rotated at 1000 bytes: FILE and three rotated files
        // hold the newest; the oldest rotated away. Sequence numbers run without a gap.
        let files = [path + ".3", path + ".2", path + ".1", path]
        let all = files.flatMap(lines)
        let seqs = all.compactMap { line -> Int? in
            guard let data = line.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return object["seq"] as? Int
        }
        #expect(seqs.count == all.count, "every line is JSON with seq")
        #expect(seqs == Array((seqs.first ?? 0)...(seqs.last ?? 0)), "no gap across rotations: \(seqs)")
        #expect(seqs.last == 30)
        #expect(!FileManager.default.fileExists(atPath: path + ".4"))
        #expect(reports.all.isEmpty)
    }

    @Test func missingDirectoryIsReportedOnceAndCountedAsLost() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reports = Reports()
        let log = writer(reports)
        let path = dir + "/not-yet/decisions.jsonl"
        log.configure(.init(path: path, maxBytes: 1 << 20, keep: 2))
        for _ in 0..<3 {
            log.append(records(2))
            #expect(log.flush())
        }
        #expect(reports.all.count == 1)
        #expect(reports.all.first?.hasPrefix("error: preempt/topo_aware: decision log: cannot open \(path): No such file or directory;") == true,
                "\(reports.all)")
        // The directory appears: the next records are written after a records-lost line.
        try FileManager.default.createDirectory(atPath: dir + "/not-yet", withIntermediateDirectories: false)
        log.append(records(1, from: 50))
        #expect(log.flush())
        let written = lines(path)
        #expect(written.count == 2)
        #expect(written.first?.contains(#""event":"records-lost""#) == true && written.first?.contains(#""count":6"#) == true,
                "\(written)")
        #expect(written.last?.contains(#""job":50"#) == true)
        #expect(reports.all.last == "info: preempt/topo_aware: decision log: writing \(path) again")
    }

    /// A full disk: /dev/full takes the open and fails every write with ENOSPC.
    @Test func fullDiskNeverBlocks() throws {
        let reports = Reports()
        let log = writer(reports)
        log.configure(.init(path: "/dev/full", maxBytes: Int64.max, keep: 1))
        for _ in 0..<5 {
            log.append(records(10))
            #expect(log.flush())
        }
        #expect(reports.all.count == 1)
        #expect(reports.all.first?.contains("cannot write /dev/full: No space left on device") == true, "\(reports.all)")
    }

    /// A new DecisionLog= (or none) makes the writer let go of the old file at once, not at the
    /// next record: the old directory can be unmounted or removed.
    @Test func reconfigurationLetsGoOfTheOldFile() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reports = Reports()
        let log = writer(reports)
        let old = dir + "/old.jsonl"
        log.configure(.init(path: old, maxBytes: 1 << 20, keep: 2))
        log.append(records(1))
        #expect(log.flush())
        func holds(_ path: String) -> Bool {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == path }
        }
        #expect(holds(old))
        log.configure(.init(path: dir + "/new.jsonl", maxBytes: 1 << 20, keep: 2))
        #expect(log.flush())
        #expect(!holds(old), "the old file is still open")
        log.configure(nil)
        #expect(log.flush())
        #expect(reports.all.isEmpty)
    }

    /// A log moved away by logrotate (or removed): the next records start a new file at the path.
    @Test func fileMovedAwayIsReopened() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reports = Reports()
        let log = writer(reports)
        let path = dir + "/decisions.jsonl"
        log.configure(.init(path: path, maxBytes: 1 << 20, keep: 2))
        log.append(records(2))
        #expect(log.flush())
        try FileManager.default.moveItem(atPath: path, toPath: path + ".rotated")
        log.append(records(1, from: 9))
        #expect(log.flush())
        #expect(lines(path + ".rotated").count == 2)
        #expect(lines(path).count == 1 && lines(path).first?.contains(#""job":9"#) == true)
        #expect(reports.all.isEmpty)
    }

    @Test func noPathWritesNothing() {
        let reports = Reports()
        let log = writer(reports)
        log.configure(nil)
        log.append(records(3))
        #expect(log.flush())
        #expect(reports.all.isEmpty)
    }
}
