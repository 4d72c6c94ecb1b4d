import ArgumentParser
import Foundation
import SlurmClient
import TopoEngine

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Say what preempt/topo_aware decided about a job: its plan, its victims, why it waits, or who preempted it.",
        discussion: """
            Reads the decision log (DecisionLog= in topo_aware.conf, with its rotated files FILE.1, \
            FILE.2, ...; or --records), unless --no-live the job's live record through libslurm \
            ($SLURM_CONF), and unless --no-history its runs as slurmdbd keeps them (sacct -D: the \
            provenance keys of each run's AdminComment). Works for pending, running and finished \
            jobs: once Slurm has purged a job, the log and slurmdbd still have it. Exit status: 0 \
            explained, 1 nothing names the job, or an input is wrong (a line of the log that is not a \
            record is reported with its file and line and skipped).
            """)

    @Argument(help: "The job id.") var jobID: UInt32
    @Option(name: .customLong("records"), help: ArgumentHelp("The decision log to read (default: DecisionLog= of topo_aware.conf).", valueName: "file"))
    var records: String?
    @Flag(name: .customLong("no-live"), help: "Do not ask slurmctld for the job's live record.") var noLive = false
    @Flag(name: .customLong("no-history"), help: "Do not ask slurmdbd (sacct) for the job's runs.") var noHistory = false
    @OptionGroup var config: ConfigPathOption
    @OptionGroup var output: FormatOption

    func run() throws {
        let path: String
        if let records {
            path = records
        } else {
            let parsed: ParsedConfig
            do { parsed = try config.load() } catch let error as CLIError { throw error.exit() }
            guard let log = parsed.config.decisionLog else {
                throw CLIError.input("\(config.resolved()): no DecisionLog= is set, so no decision is recorded; set it (see topo_aware.conf(5)) or give --records FILE").exit()
            }
            path = log
        }
        let (all, problems) = DecisionLogReader.read(path)
        for problem in problems { printError("warning: \(problem)") }
        var live: Explanation.LiveFacts?
        if !noLive {
            do { live = try Self.liveFacts(jobID, config: config) } catch { printError("warning: \(error); the decision log only") }
        }
        var history: [Explanation.Run] = []
        if !noHistory {
            switch SacctHistory.runs(of: jobID) {
            case let .success(runs): history = runs
            case let .failure(problem): if live == nil { printError("warning: \(problem)") }
            }
        }
        let explanation = Explanation(job: jobID, records: all, live: live, history: history)
        if explanation.role == .none && live == nil && history.isEmpty {
            if output.format == .json { try printJSON(ExplainReport(explanation)) }
            throw CLIError.input("JobId=\(jobID): no record of \(path) names it and Slurm does not know it").exit()
        }
        switch output.format {
        case .json: try printJSON(ExplainReport(explanation))
        case .text:
            for line in explanation.summary { print(line) }
            if let live, let comment = live.systemComment { print("SystemComment: \(comment)") }
            for run in history {
                print("slurmdbd run: \(run.state) \(run.start) - \(run.end)\(run.adminComment.map { " AdminComment=\($0)" } ?? "")")
            }
            if !explanation.records.isEmpty {
                print("Records (\(path)):")
                for record in explanation.records {
                    print("  \(utcTimestamp(record.time)) \(record.event.rawValue)\(record.reason.map { " [\($0)]" } ?? ""): \(record.message)")
                }
            }
        }
    }

    /// The job as Slurm reports it now; nil when Slurm does not know it.
    static func liveFacts(_ id: UInt32, config: ConfigPathOption) throws -> Explanation.LiveFacts? {
        let live = try LiveCluster.load(config: config)
        guard let job = live.state.jobs.first(where: { $0.id == id }) else { return nil }
        let tables = Dictionary(live.topology.nodes.map { ($0.name, $0.table) }, uniquingKeysWith: { first, _ in first })
        var gpus: [DecisionRecord.Target] = []
        var reached: AffinityLevel? = nil
        if job.state == .running {
            let held = Audit.held(by: job, in: live.state, tables: tables)
            gpus = held.gpus.map { .init(node: $0.node, gpus: $0.gpus) }
            reached = held.reached
        }
        return .init(state: job.stateName ?? "\(job.state)", adminComment: job.adminComment, systemComment: job.systemComment,
                     gpus: gpus, reached: reached)
    }
}

/// The job's runs as slurmdbd keeps them: `sacct -D -X -n -P` (the same client a site uses;
/// its own errors, e.g. no accounting storage, come back as the failure).
enum SacctHistory {
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    static func runs(of job: UInt32) -> Result<[Explanation.Run], Problem> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sacct", "-D", "-X", "-n", "-P", "-j", String(job), "--format=JobID,State,Start,End,AdminComment"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return .failure(Problem(description: "sacct: \(error)")) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return .failure(Problem(description: "sacct exited \(process.terminationStatus)\(text.isEmpty ? "" : ": \(text)")"))
        }
        var runs: [Explanation.Run] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: "|", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 5, fields[0] == String(job) else { continue }
            runs.append(.init(state: fields[1], start: fields[2], end: fields[3], adminComment: fields[4].isEmpty ? nil : fields[4]))
        }
        return .success(runs)
    }
}

/// Reads a decision log and its rotated files, oldest first.
enum DecisionLogReader {
    static func read(_ path: String) -> (records: [DecisionRecord], problems: [String]) {
        var files: [String] = []
        var k = 1
        while k <= 1000, FileManager.default.fileExists(atPath: "\(path).\(k)") {
            files.insert("\(path).\(k)", at: 0)
            k += 1
        }
        files.append(path)
        var records: [DecisionRecord] = []
        var problems: [String] = []
        let decoder = JSONDecoder()
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                if file == path && files.count == 1 { problems.append("\(file): cannot be read (no decision recorded yet?)") }
                continue
            }
            for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
                do {
                    records.append(try decoder.decode(DecisionRecord.self, from: Data(line)))
                } catch {
                    if problems.count < 20 { problems.append("\(file):\(n + 1): not a decision record (\(Self.describe(error))); skipped") }
                }
            }
        }
        return (records, problems)
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case let DecodingError.dataCorrupted(context): context.debugDescription
        case let DecodingError.keyNotFound(key, _): "no \(key.stringValue)"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        default: "\(error)"
        }
    }
}

/// JSON shape of `explain` (documented in docs/reference.md, "Decision records").
struct ExplainReport: Encodable {
    struct Record: Encodable {
        var time: String
        var event: String
        var job: UInt32
        var other: UInt32?
        var reason: String?
        var message: String
        var targets: [String: String]?
        var victims: [UInt32]?
        var level: String?
        var reached: String?
        /// `block b1`, `leaf switch s1`, `across blocks` (multi-node plans).
        var domain: String?
        var details: [String]?
    }

    struct Live: Encodable {
        var state: String
        var adminComment: String?
        var systemComment: String?
        var gpus: [String: String]?
        var reached: String?
    }

    var job: UInt32
    var role: String
    var summary: [String]
    var live: Live?
    var records: [Record]
    var history: [Run]?

    struct Run: Encodable {
        var state: String
        var start: String
        var end: String
        var adminComment: String?
        var provenance: [String: String]?
    }

    init(_ e: Explanation) {
        job = e.job
        role = e.role.rawValue
        summary = e.summary
        live = e.live.map { l in
            Live(state: l.state, adminComment: l.adminComment, systemComment: l.systemComment,
                 gpus: l.gpus.isEmpty ? nil : Dictionary(l.gpus.map { ($0.node, $0.gpus.description) }, uniquingKeysWith: { a, _ in a }),
                 reached: l.reached?.name)
        }
        history = e.history.isEmpty ? nil : e.history.map {
            Run(state: $0.state, start: $0.start, end: $0.end, adminComment: $0.adminComment,
                provenance: $0.provenance.isEmpty ? nil : $0.provenance)
        }
        records = e.records.map { r in
            Record(time: utcTimestamp(r.time), event: r.event.rawValue, job: r.job, other: r.other, reason: r.reason, message: r.message,
                   targets: r.targets.isEmpty ? nil : Dictionary(r.targets.map { ($0.node, $0.gpus.description) }, uniquingKeysWith: { a, _ in a }),
                   victims: r.victims.isEmpty ? nil : r.victims, level: r.level?.name, reached: r.reached?.name,
                   domain: r.domain?.description, details: r.details.isEmpty ? nil : r.details)
        }
    }
}
