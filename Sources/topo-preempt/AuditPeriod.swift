import Foundation
import TopoEngine

/// `audit --since`: the period's report from the decision log (and its rotated files, read as a
/// stream) and, unless --no-history, the preemptors' waits from slurmdbd (`sacct`).
struct AuditPeriodReport: Encodable {
    struct Bucket: Encodable {
        var start: String
        var preemptions: Int
        var hits: Int
        var misses: Int
        var hitRate: Double?
        var victims: Int
        var lostGPUHours: Double
        var waits: Int
        var fallbacks: Int
        enum CodingKeys: String, CodingKey {
            case start, preemptions, hits, misses, hitRate = "hit_rate", victims, lostGPUHours = "lost_gpu_hours", waits, fallbacks
        }
    }

    /// Preemptor jobs that started in the period, from slurmdbd: seconds from submission to start.
    struct PreemptorWaits: Encodable {
        var started: Int
        var p50Seconds: Int64?
        var p90Seconds: Int64?
        var maxSeconds: Int64?
        enum CodingKeys: String, CodingKey { case started, p50Seconds = "p50_seconds", p90Seconds = "p90_seconds", maxSeconds = "max_seconds" }
    }

    var since: String
    var until: String
    var bucketSeconds: Int64
    var records: String
    var preemptions: Int
    var byChosen: [String: Int]
    var byMode: [String: Int]
    var hits: Int
    var misses: Int
    var hitRate: Double?
    var victims: Int
    var victimsPerPreemption: Double?
    var lostGPUHours: Double
    var lostGPUHoursPerPreemption: Double?
    var plans: Int
    var waits: [String: Int]
    var waitingJobs: Int
    var fallbacks: [String: Int]
    var dropped: [String: Int]
    var recordsLost: UInt64
    var firstRecord: String?
    var lastRecord: String?
    var preemptorWaits: PreemptorWaits?
    var replay: Replay?
    var buckets: [Bucket]
    var warnings: [String]

    /// `--replay`: the period's jobs through the simulator, per policy (modelled).
    struct Replay: Encodable {
        struct Row: Encodable {
            var policy: String
            var preemptions: Int
            var hitRate: Double?
            var victims: Int
            var lostGPUHours: Double
            var inferenceStarted: Int
            var inferenceAligned: Int
            var inferenceWaitP50Seconds: Int64
            var inferenceWaitP99Seconds: Int64
            enum CodingKeys: String, CodingKey {
                case policy, preemptions, hitRate = "hit_rate", victims, lostGPUHours = "lost_gpu_hours"
                case inferenceStarted = "inference_started", inferenceAligned = "inference_aligned"
                case inferenceWaitP50Seconds = "inference_wait_p50_seconds", inferenceWaitP99Seconds = "inference_wait_p99_seconds"
            }
        }

        var jobs: Int
        var leftOut: Int
        /// Jobs of the period without `gres/gpu` in their TRES (AccountingStorageTRES lacks it).
        var withoutGPUs: Int
        var level: String
        /// The cost order the topology-aware policy compared plans by (the first preemptor class's).
        var costOrder: String
        /// With `rough-work` in that order: its tolerance (`2%`).
        var roughWorkTolerance: String?
        var rows: [Row]
        enum CodingKeys: String, CodingKey {
            case jobs, leftOut = "left_out", withoutGPUs = "without_gpus", level, costOrder = "cost_order"
            case roughWorkTolerance = "rough_work_tolerance", rows
        }
    }

    enum CodingKeys: String, CodingKey {
        case since, until, bucketSeconds = "bucket_seconds", records, preemptions, byChosen = "by_chosen", byMode = "by_mode", hits, misses
        case hitRate = "hit_rate", victims, victimsPerPreemption = "victims_per_preemption", lostGPUHours = "lost_gpu_hours"
        case lostGPUHoursPerPreemption = "lost_gpu_hours_per_preemption", plans, waits, waitingJobs = "waiting_jobs", fallbacks, dropped
        case recordsLost = "records_lost", firstRecord = "first_record", lastRecord = "last_record", preemptorWaits = "preemptor_waits"
        case replay, buckets, warnings
    }

    init(_ a: PeriodAudit, records: String, waits: PreemptorWaits?, replay: Replay? = nil, warnings: [String]) {
        since = utcTimestamp(a.from)
        until = utcTimestamp(a.to)
        bucketSeconds = a.bucketSeconds
        self.records = records
        preemptions = a.preemptions
        byChosen = a.byChosen
        byMode = a.byMode
        hits = a.hits
        misses = a.misses
        hitRate = a.hitRate
        victims = a.victims
        victimsPerPreemption = a.preemptions == 0 ? nil : Double(a.victims) / Double(a.preemptions)
        lostGPUHours = Double(a.lostGPUSeconds) / 3600
        lostGPUHoursPerPreemption = a.preemptions == 0 ? nil : lostGPUHours / Double(a.preemptions)
        plans = a.plans
        self.waits = a.waits
        waitingJobs = a.waitingJobs
        fallbacks = a.fallbacks
        dropped = a.dropped
        recordsLost = a.recordsLost
        firstRecord = a.firstRecord.map(utcTimestamp)
        lastRecord = a.lastRecord.map(utcTimestamp)
        preemptorWaits = waits
        self.replay = replay
        buckets = a.buckets.map { b in
            Bucket(start: utcTimestamp(b.start), preemptions: b.preemptions, hits: b.hits, misses: b.misses,
                   hitRate: b.hits + b.misses == 0 ? nil : Double(b.hits) / Double(b.hits + b.misses), victims: b.victims,
                   lostGPUHours: Double(b.lostGPUSeconds) / 3600, waits: b.waits, fallbacks: b.fallbacks)
        }
        self.warnings = warnings
    }

    func text() -> String {
        func list(_ counts: [String: Int]) -> String {
            counts.isEmpty ? "none" : counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        func fixed(_ v: Double?, _ digits: Int = 2) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        var out = "preempt/topo_aware from \(since) to \(until) (records: \(records)"
        out += firstRecord.map { ", first \($0), last \(lastRecord ?? $0))\n" } ?? ", none in the period)\n"
        out += "  preemptions            \(preemptions) (\(list(byChosen)); by mode: \(list(byMode)))\n"
        out += "  affinity hit rate      \(hitRate.map { String(format: "%.1f%%", $0 * 100) } ?? "-") (\(hits) hit, \(misses) miss, planned preemptions)\n"
        out += "  victims                \(victims) (\(fixed(victimsPerPreemption)) per preemption)\n"
        out += "  GPU-hours lost         \(fixed(lostGPUHours)) (\(fixed(lostGPUHoursPerPreemption)) per preemption)\n"
        out += "  plans made             \(plans); dropped: \(list(dropped))\n"
        out += "  guaranteed waits       \(waits.values.reduce(0, +)) for \(waitingJobs) job(s) (\(list(waits)))\n"
        out += "  base policy answered   \(fallbacks.values.reduce(0, +)) (\(list(fallbacks)))\n"
        if let w = preemptorWaits {
            out += "  preemptor waits        \(w.started) started; submit to start p50 \(w.p50Seconds.map { "\($0) s" } ?? "-"), "
                + "p90 \(w.p90Seconds.map { "\($0) s" } ?? "-"), max \(w.maxSeconds.map { "\($0) s" } ?? "-") (sacct)\n"
        }
        if recordsLost > 0 { out += "  records lost           \(recordsLost) (the plugin could not write them)\n" }
        if let replay {
            out += "\n  the same period's \(replay.jobs) job(s) replayed (simulator, level \(replay.level), plans compared by \(replay.costOrder)\(replay.roughWorkTolerance.map { " (rough-work within \($0))" } ?? ""); \(replay.leftOut) left out"
            if replay.withoutGPUs > 0 {
                out += ", \(replay.withoutGPUs) of them without gres/gpu in their TRES: slurm.conf needs AccountingStorageTRES=gres/gpu"
            }
            out += "):\n"
            out += "  " + pad("policy", 24) + pad("preempt", 9) + pad("hit rate", 10) + pad("victims", 9) + pad("GPU-h lost", 12)
                + pad("aligned starts", 16) + "inference wait p50/p99\n"
            for row in replay.rows {
                out += "  " + pad(row.policy, 24) + pad(String(row.preemptions), 9)
                    + pad(row.hitRate.map { String(format: "%.1f%%", $0 * 100) } ?? "-", 10) + pad(String(row.victims), 9)
                    + pad(fixed(row.lostGPUHours), 12) + pad("\(row.inferenceAligned)/\(row.inferenceStarted)", 16)
                    + "\(row.inferenceWaitP50Seconds) s / \(row.inferenceWaitP99Seconds) s\n"
            }
        }
        out += "\n  " + pad("bucket start (UTC)", 22) + pad("preempt", 9) + pad("hit", 5) + pad("miss", 6) + pad("victims", 9)
            + pad("GPU-h lost", 12) + pad("waits", 7) + "fallbacks\n"
        for b in buckets where b.preemptions + b.victims + b.waits + b.fallbacks > 0 {
            out += "  " + pad(b.start, 22) + pad(String(b.preemptions), 9) + pad(String(b.hits), 5) + pad(String(b.misses), 6)
                + pad(String(b.victims), 9) + pad(fixed(b.lostGPUHours), 12) + pad(String(b.waits), 7) + String(b.fallbacks) + "\n"
        }
        return out
    }

    /// Two panels over the period: preemptions per bucket (hits, misses, base policy stacked)
    /// and GPU-hours lost per bucket.
    func svg() -> String {
        let width = 900.0, panel = 200.0, left = 70.0, right = 150.0, top = 50.0, gap = 70.0
        let plotWidth = width - left - right
        let height = top + 2 * panel + gap + 50
        let n = max(1, buckets.count)
        let barWidth = plotWidth / Double(n)
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"22\" font-size=\"15\">topo-preempt audit: \(since) to \(until), buckets of \(bucketSeconds) s</text>\n"
        out += "<text x=\"\(left)\" y=\"40\">\(preemptions) preemptions, hit rate \(hitRate.map { String(format: "%.1f%%", $0 * 100) } ?? "-"), \(String(format: "%.2f", lostGPUHours)) GPU-hours lost</text>\n"
        let series: [(String, String, (Bucket) -> Double)] = [
            ("hit", "#2ca02c", { Double($0.hits) }), ("miss", "#d62728", { Double($0.misses) }),
            ("base policy", "#7f7f7f", { Double(max(0, $0.preemptions - $0.hits - $0.misses)) }),
        ]
        let panels: [(String, Double, [(String, String, (Bucket) -> Double)])] = [
            ("preemptions per bucket", Double(max(1, buckets.map(\.preemptions).max() ?? 1)), series),
            ("GPU-hours lost per bucket", max(0.001, buckets.map(\.lostGPUHours).max() ?? 0.001), [("GPU-hours", "#1f77b4", { $0.lostGPUHours })]),
        ]
        for (p, (title, maximum, parts)) in panels.enumerated() {
            let y0 = top + 20 + Double(p) * (panel + gap)
            out += "<text x=\"\(left)\" y=\"\(y0 - 6)\" font-weight=\"bold\">\(title)</text>\n"
            out += "<rect x=\"\(left)\" y=\"\(y0)\" width=\"\(plotWidth)\" height=\"\(panel)\" fill=\"none\" stroke=\"#888\"/>\n"
            for tick in [0.0, 0.5, 1.0] {
                let y = y0 + panel * (1 - tick)
                out += "<line x1=\"\(left)\" x2=\"\(left + plotWidth)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#eee\"/>"
                out += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: maximum >= 10 ? "%.0f" : "%.2g", maximum * tick))</text>\n"
            }
            for (i, bucket) in buckets.enumerated() {
                var base = 0.0
                for (_, color, value) in parts {
                    let v = value(bucket)
                    guard v > 0 else { continue }
                    let h = panel * v / maximum
                    out += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" ", left + Double(i) * barWidth,
                                  y0 + panel - base - h, max(0.5, barWidth * 0.8), h) + "fill=\"\(color)\"/>"
                    base += h
                }
            }
            out += "\n"
            for (k, (name, color, _)) in parts.enumerated() {
                let ly = y0 + 10 + Double(k) * 20
                out += "<rect x=\"\(left + plotWidth + 15)\" y=\"\(ly - 8)\" width=\"12\" height=\"12\" fill=\"\(color)\"/>"
                out += "<text x=\"\(left + plotWidth + 32)\" y=\"\(ly + 2)\">\(name)</text>\n"
            }
            // First and last bucket start under the panel.
            if let first = buckets.first, let last = buckets.last {
                out += "<text x=\"\(left)\" y=\"\(y0 + panel + 16)\">\(first.start)</text>"
                out += "<text x=\"\(left + plotWidth)\" y=\"\(y0 + panel + 16)\" text-anchor=\"end\">\(last.start)</text>\n"
            }
        }
        out += "</svg>\n"
        return out
    }
}

extension DecisionLogReader {
    /// Calls `body` with every record of the log and its rotated files, oldest file first, one
    /// line at a time (the files are not held in memory whole); returns the problems (at most 20).
    static func forEach(_ path: String, _ body: (DecisionRecord) -> Void) -> [String] {
        var files: [String] = []
        var k = 1
        while k <= 1000, FileManager.default.fileExists(atPath: "\(path).\(k)") {
            files.insert("\(path).\(k)", at: 0)
            k += 1
        }
        files.append(path)
        var problems: [String] = []
        let decoder = JSONDecoder()
        for file in files {
            guard let handle = FileHandle(forReadingAtPath: file) else {
                if file == path && files.count == 1 { problems.append("\(file): cannot be read (no decision recorded yet?)") }
                continue
            }
            defer { try? handle.close() }
            var pending = Data()
            var line = 0
            func take(_ bytes: Data) {
                line += 1
                guard !bytes.isEmpty else { return }
                do { body(try decoder.decode(DecisionRecord.self, from: bytes)) } catch {
                    if problems.count < 20 { problems.append("\(file):\(line): not a decision record (\(describe(error))); skipped") }
                }
            }
            while let chunk = try? handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    take(pending[pending.startIndex..<newline])
                    pending = pending[(newline + 1)...]
                }
                pending = Data(pending)
            }
            if !pending.isEmpty { take(pending) }
        }
        return problems
    }
}

/// The period's jobs from slurmdbd (`sacct -a -X`, times in UTC): each job's last run. A job is
/// a preemptor when its AdminComment carries job_submit's preemptor tag, or, without a tag
/// (slurmctld sends the AdminComment to slurmdbd when a run ends, so a running job has none
/// there yet), when a preemptor class of topo_aware.conf names its partition or QOS.
enum SacctPeriod {
    static func read(from: Int64, to: Int64, config: TopoAwareConfig?) -> Result<[PeriodReplay.Job], SacctHistory.Problem> {
        func time(_ t: Int64) -> String { String(utcTimestamp(t).dropLast()) }  // sacct takes no zone
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sacct", "-a", "-X", "-n", "-P", "-S", time(from), "-E", time(to),
                             "--format=JobID,Submit,Start,End,NNodes,AllocTRES,ReqTRES,Partition,QOS,AdminComment"]
        var environment = ProcessInfo.processInfo.environment
        environment["TZ"] = "UTC"
        environment["SLURM_TIME_FORMAT"] = "%Y-%m-%dT%H:%M:%S"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { return .failure(.init(description: "sacct: \(error)")) }
        // Errors are short; the output is read to its end first so that it cannot block sacct.
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return .failure(.init(description: "sacct exited \(process.terminationStatus)\(text.isEmpty ? "" : ": \(text)")"))
        }
        var jobs: [PeriodReplay.Job] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: "|", maxSplits: 9, omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 10, let id = UInt32(fields[0].prefix { $0.isASCII && $0.isNumber }),
                  let submit = PeriodAudit.parseTime(fields[1], now: 0) else { continue }
            let isPreemptor: Bool
            if let tag = AdminCommentTag.parse(adminComment: fields[9]) {
                if case .preemptor = tag { isPreemptor = true } else { isPreemptor = false }
            } else if let (rule, _) = config?.rule(for: SubmittedJob(partitions: SubmittedJob.partitionList(fields[7]),
                                                                     qos: fields[8].isEmpty ? nil : fields[8])),
                      case .preemptor = rule.kind {
                isPreemptor = true
            } else {
                isPreemptor = false
            }
            let gpus = gpuCount(fields[5]) ?? gpuCount(fields[6]) ?? 0
            jobs.append(.init(id: id, submit: submit, start: PeriodAudit.parseTime(fields[2], now: 0),
                              end: PeriodAudit.parseTime(fields[3], now: 0), gpus: gpus, nodes: Int(fields[4]) ?? 1,
                              preemptor: isPreemptor))
        }
        return .success(jobs)
    }

    /// The untyped GPU count of a TRES list (`cpu=1,gres/gpu=4,node=1`; 22.05 spells it the same).
    static func gpuCount(_ tres: String) -> Int? {
        for item in tres.split(separator: ",") where item.hasPrefix("gres/gpu=") {
            return Int(item.dropFirst("gres/gpu=".count))
        }
        return nil
    }

    /// Preemptor jobs that started in the period: seconds from submission to start.
    static func waits(_ jobs: [PeriodReplay.Job], from: Int64, to: Int64) -> AuditPeriodReport.PreemptorWaits {
        var waits: [Int64] = []
        for job in jobs where job.preemptor {
            guard let start = job.start, start >= from, start < to, start >= job.submit else { continue }
            waits.append(start - job.submit)
        }
        waits.sort()
        func quantile(_ q: Double) -> Int64? {
            waits.isEmpty ? nil : waits[min(waits.count - 1, Int((q * Double(waits.count - 1)).rounded(.up)))]
        }
        return .init(started: waits.count, p50Seconds: quantile(0.5), p90Seconds: quantile(0.9), maxSeconds: waits.last)
    }
}
