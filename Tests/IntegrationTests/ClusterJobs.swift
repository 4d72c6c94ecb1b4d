import Foundation
import Testing
import TopoEngine

/// Running real jobs on node1 of the local cluster (for the suites that submit and preempt).
extension Cluster {
    /// A running job's GPU indices on its node, from `scontrol show job -d`.
    func gpuIndices(_ id: String) throws -> GPUSet? {
        let detail = try run(["scontrol", "show", "job", "-d", id]).stdout
        guard let range = detail.range(of: #"GRES=[^ ]*\(IDX:[^)]*\)"#, options: .regularExpression) else { return nil }
        let text = String(detail[range].dropFirst("GRES=".count))
        return try GresString.parse(text).first?.indices
    }

    func state(_ id: String) throws -> String {
        try run(["squeue", "-h", "-j", id, "-o", "%T"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func restarts(_ id: String) throws -> Int { Int(try job(id)["Restarts"] ?? "") ?? -1 }

    /// A started job's StartTime, seconds since 1970 (slurmctld's local time, whole seconds).
    func startSeconds(_ id: String) throws -> Int64 {
        let text = try job(id)["StartTime"] ?? ""
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone.current
        format.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return Int64(try #require(format.date(from: text), "job \(id) has no StartTime: '\(text)'").timeIntervalSince1970)
    }

    /// The socket of a running job's first CPU on its node (`scontrol show job -d` CPU_IDs;
    /// 16 cores, `sockets` sockets per node); nil when not shown.
    func coreSocket(_ id: String) throws -> Int? {
        let detail = try run(["scontrol", "show", "job", "-d", id]).stdout
        guard let range = detail.range(of: #"CPU_IDs=[0-9]+"#, options: .regularExpression),
              let cpu = Int(detail[range].dropFirst("CPU_IDs=".count)) else { return nil }
        return cpu / (16 / max(1, sockets))
    }

    /// Submits a running job on node1 and waits until it runs.
    func start(_ partition: String, gpus: Int, options extra: [String] = [], waitForRunning: Bool = true) throws -> String {
        let result = try run(["sbatch", "--parsable"] + options(for: partition) + extra + ["-w", "node1", "-c", "1",
                              "--gres=gpu:\(gpus)", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(result.status == 0, "\(result.stderr)")
        let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if waitForRunning {
            let running = try waitUntil(seconds: 30) { try state(id) == "RUNNING" }
            if !running {
                let reason = try job(id)["Reason"] ?? "?"
                cancel([id])
                try #require(running, "job \(id) did not start (\(reason)); cancelled")
            }
        }
        return id
    }

    /// Cancels and waits until the jobs have left node1's GPUs.
    func finish(_ ids: [String]) throws {
        cancel(ids)
        let active: Set<String> = ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED", "RESIZING"]
        let gone = try waitUntil(seconds: 30) { try ids.allSatisfy { !active.contains(try state($0)) } }
        try #require(gone, "jobs \(ids) did not end")
    }

    /// Fills node1 with batch jobs of 2 2 2 1 1 GPUs: IDX 0-1 | 4-5 | 2-3 | 6 | 7.
    func fillNode() throws -> [String] {
        var ids: [String] = []
        try finishingOnError(&ids) { ids in
            for size in [2, 2, 2, 1, 1] { ids.append(try start("batch", gpus: size)) }
            let layout = try ids.map { try gpuIndices($0)?.description ?? "?" }
            try #require(layout == ["0-1", "4-5", "2-3", "6", "7"], "Slurm placed the batch jobs differently: \(layout)")
        }
        return ids
    }

    /// Runs `body`, which starts jobs into `ids`; if it fails, the jobs it started are ended
    /// before the error goes on, so one failed test leaves node1 free for the next.
    func finishingOnError(_ ids: inout [String], _ body: (inout [String]) throws -> Void) throws {
        do { try body(&ids) } catch {
            try? finish(ids)
            throw error
        }
    }

    func withShaping<T>(_ on: Bool, _ body: () throws -> T) throws -> T {
        let path = topoAwareConf
        let original = try String(contentsOfFile: path, encoding: .utf8)
        defer { try? original.write(toFile: path, atomically: true, encoding: .utf8) }
        let others = original.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.lowercased().hasPrefix("shaperequests=") }
        try (others + ["ShapeRequests=\(on ? "yes" : "no")"]).joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return try body()
    }

    /// The lab's full node: node1 filled (2 2 2 1 1 GPUs), then a 4-GPU infer job with
    /// job_submit's shaping on or off, run until it starts. Returns the batch job ids, the infer
    /// job id, the infer job's GPUs and the batch jobs that were preempted; the caller finishes
    /// the jobs.
    func fullNodeScenario(shaping: Bool) throws -> (batch: [String], infer: String, placed: GPUSet, victims: [String]) {
        let batch = try fillNode()
        let infer = try withShaping(shaping) { try start("infer", gpus: 4) }
        let placed = try #require(try gpuIndices(infer))
        let victims = try batch.filter { try restarts($0) > 0 || state($0) != "RUNNING" }
        return (batch, infer, placed, victims)
    }

    /// Submits a held job on node1 (it waits until released).
    func submitHeldOnNode1(_ partition: String, gpus: Int) throws -> String {
        let result = try run(["sbatch", "--parsable", "--hold", "-p", partition, "-w", "node1", "-c", "1",
                              "--gres=gpu:\(gpus)", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One preemption scenario on node1: batch jobs fill it, some may be cancelled to leave free
/// GPUs, then an infer job arrives and runs (or waits).
struct ScenarioOutcome {
    var batch: [String]
    /// GPUs of each batch job when it started.
    var layout: [GPUSet]
    var infer: String
    /// The infer job's GPUs; nil when it did not start.
    var placed: GPUSet?
    /// Batch jobs (not cancelled by the scenario) that were preempted.
    var victims: [String]
    /// Their GPUs before preemption, in job order.
    var victimGPUs: [GPUSet]
    var cancelled: [String]
    /// Log lines slurmctld wrote during the scenario.
    var log: [String]

    var running: [String] { batch.filter { !victims.contains($0) && !cancelled.contains($0) } }
}

extension Cluster {
    /// NVLink groups of this cluster's topology: islands of 4 or pairs.
    func group(of gpu: Int) -> Int { topology == "pairs" ? gpu / 2 : gpu / 4 }

    func isAligned(_ gpus: GPUSet) -> Bool { Set(gpus.map(group(of:))).count == 1 }

    /// Fills node1 with batch jobs of `sizes` GPUs (each started before the next is
    /// submitted; those at positions `inference` are jobs of the infer partition or QOS that
    /// need no alignment, which the new infer job may not preempt), cancels the jobs at positions
    /// `free`, submits the infer job with `request` (default `--gres=gpu:GPUS`) and waits up to
    /// `seconds` for it to run. `until`, when given, also ends the wait when a log line since the
    /// submission satisfies it. `beforeRelease`, when given, is called with the infer job's id
    /// while it is held, before Slurm may schedule it.
    func scenario(_ sizes: [Int], inference: [Int] = [], free: [Int] = [], gpus: Int, request: [String]? = nil,
                  seconds: Double = 60, until: ((String, String) -> Bool)? = nil,
                  beforeRelease: ((String) throws -> Void)? = nil) throws -> ScenarioOutcome {
        var batch: [String] = []
        var layout: [GPUSet] = []
        try finishingOnError(&batch) { batch in
            for (position, size) in sizes.enumerated() {
                batch.append(inference.contains(position) ? try start("infer", gpus: size, options: ["--gpu-affinity=node"])
                                                          : try start("batch", gpus: size))
            }
            layout = try batch.map { try #require(try gpuIndices($0), "job \($0) has no GPUs") }
        }
        let cancelled = free.compactMap { batch.indices.contains($0) ? batch[$0] : nil }
        if !cancelled.isEmpty { try finish(cancelled) }
        let offset = logSize()
        let options = request ?? ["--gres=gpu:\(gpus)"]
        let hold = beforeRelease == nil ? [] : ["--hold"]
        let submitted = try run(["sbatch", "--parsable"] + hold + self.options(for: "infer") + ["-w", "node1", "-c", "1"] + options
                                + ["-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(submitted.status == 0, "\(submitted.stderr)")
        let infer = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        if let beforeRelease {
            defer { _ = try? run(["scontrol", "release", infer]) }
            var all = batch + [infer]
            try finishingOnError(&all) { _ in try beforeRelease(infer) }
        }
        _ = try waitUntil(seconds: seconds) {
            if try state(infer) == "RUNNING" { return true }
            guard let until else { return false }
            return logLines(from: offset).contains { until(infer, $0) }
        }
        let placed = try state(infer) == "RUNNING" ? try gpuIndices(infer) : nil
        var victims: [String] = []
        var victimGPUs: [GPUSet] = []
        for (i, id) in batch.enumerated() where !cancelled.contains(id) {
            if try restarts(id) > 0 || state(id) != "RUNNING" {
                victims.append(id)
                victimGPUs.append(layout[i])
            }
        }
        return ScenarioOutcome(batch: batch, layout: layout, infer: infer, placed: placed, victims: victims,
                               victimGPUs: victimGPUs, cancelled: cancelled, log: logLines(from: offset))
    }

    /// Checks what every scenario must leave behind: victims requeued (PENDING, one restart),
    /// every other batch job still running, slurmctld up.
    func expectNothingLost(_ outcome: ScenarioOutcome, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        for victim in outcome.victims {
            #expect(try state(victim) == "PENDING", "victim \(victim)", sourceLocation: sourceLocation)
            #expect(try restarts(victim) == 1, "victim \(victim)", sourceLocation: sourceLocation)
        }
        for id in outcome.running {
            #expect(try state(id) == "RUNNING", "non-victim \(id)", sourceLocation: sourceLocation)
            #expect(try restarts(id) == 0, "non-victim \(id)", sourceLocation: sourceLocation)
        }
        #expect(try controllerIsUp(), sourceLocation: sourceLocation)
    }

    func finish(_ outcome: ScenarioOutcome) throws {
        try finish(outcome.batch.filter { !outcome.cancelled.contains($0) } + [outcome.infer])
    }
}
