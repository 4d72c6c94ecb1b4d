import Foundation
import Testing
import TopoEngine

/// The lab's preemption scenarios (../shared/slurm-lab), README's demo table row by row, each under
/// the three configurations: stock Slurm with the plain request, stock Slurm with the request
/// shaped to one socket (`--gpus-per-socket=N --sockets-per-node=1`), and PreemptType=
/// preempt/topo_aware. Stock outcomes are recorded as measured (so a change in Slurm shows up
/// here); topo_aware must place the job inside one NVLink group (or degrade only where the job
/// asked for best-effort) with no more victims than either stock variant, requeue exactly its
/// victims and leave every other job running, and `topo-preempt plan --job` must have predicted
/// exactly what the controller did.
struct LabScenario: Sendable, CustomTestStringConvertible {
    var name: String
    var topology: String
    var sizes: [Int]
    /// Jobs (by position in `sizes`) of the infer partition or QOS, needing no alignment: the
    /// new infer job may not preempt them.
    var inference: [Int] = []
    /// Batch jobs (by position) cancelled before the infer job arrives.
    var free: [Int] = []
    var gpus: Int
    /// The infer job's `--gpu-affinity`; nil for the class default (nvlink, guaranteed).
    var affinity: String? = nil
    /// topo_aware places the job degraded (best-effort, no aligned group could be freed).
    var degraded = false
    /// Victims' GPUs (in job order) and the infer job's GPUs (nil: it waits), per configuration.
    var stockPlain: ([String], String?)
    var stockShaped: ([String], String?)
    var topoAware: ([String], String?)

    var testDescription: String { "\(topology) \(name)" }

    static let all: [LabScenario] = [
        LabScenario(name: "full node 2 2 2 1 1", topology: "islands", sizes: [2, 2, 2, 1, 1], gpus: 4,
                    stockPlain: (["0-1", "4-5"], "0-1,4-5"), stockShaped: (["0-1", "2-3"], "0-3"),
                    topoAware: (["0-1", "2-3"], "0-3")),
        LabScenario(name: "full node 1 2 1 2 1 1", topology: "islands", sizes: [1, 2, 1, 2, 1, 1], gpus: 4,
                    stockPlain: (["0", "4-5", "1"], "0-1,4-5"), stockShaped: (["4-5", "6-7"], "4-7"),
                    topoAware: (["4-5", "6-7"], "4-7")),
        LabScenario(name: "free GPUs 0,1,4,5", topology: "islands", sizes: [2, 2, 2, 1, 1], free: [0, 1], gpus: 4,
                    stockPlain: ([], "0-1,4-5"), stockShaped: (["2-3"], "0-3"), topoAware: (["2-3"], "0-3")),
        LabScenario(name: "full node 1 1 2 1 1 2", topology: "pairs", sizes: [1, 1, 2, 1, 1, 2], gpus: 2,
                    stockPlain: (["0", "4"], "0,4"), stockShaped: (["1-2"], "1-2"), topoAware: (["6-7"], "6-7")),
        // README's fifth row: inference jobs hold GPUs 0 and 4, so no island can be freed.
        LabScenario(name: "i1 i1 2 2 1 1 guaranteed", topology: "islands", sizes: [1, 1, 2, 2, 1, 1], inference: [0, 1], gpus: 4,
                    stockPlain: (["1-2", "5-6"], "1-2,5-6"), stockShaped: ([], nil), topoAware: ([], nil)),
        LabScenario(name: "i1 i1 2 2 1 1 best-effort", topology: "islands", sizes: [1, 1, 2, 2, 1, 1], inference: [0, 1], gpus: 4,
                    affinity: "nvlink:best-effort", degraded: true,
                    stockPlain: (["1-2", "5-6"], "1-2,5-6"), stockShaped: ([], nil), topoAware: (["1-2", "5-6"], "1-2,5-6")),
    ]

    static func on(_ topology: String) -> [LabScenario] { all.filter { $0.topology == topology } }
    /// The stock variants know no --gpu-affinity: one scenario per fill.
    static func stock(on topology: String) -> [LabScenario] { on(topology).filter { $0.affinity == nil } }

    /// Polls for the infer job to run; a job expected to wait is watched for `waitSeconds`
    /// (three scheduling passes at sched_interval=5) or, under topo_aware, until the plugin logs
    /// that it has no plan.
    static let waitSeconds = 15.0

    /// Stock variants: job_submit/topo_aware must not shape (ShapeRequests=no) so the plain
    /// request stays plain; the shaped one asks per socket itself.
    func runStock(on cluster: Cluster, shaped: Bool) throws {
        let request = shaped ? ["--gpus-per-socket=\(gpus)", "--sockets-per-node=1"] : ["--gres=gpu:\(gpus)"]
        let expected = shaped ? stockShaped : stockPlain
        let outcome = try cluster.withShaping(false) {
            try cluster.scenario(sizes, inference: inference, free: free, gpus: gpus, request: request,
                                 seconds: expected.1 == nil ? Self.waitSeconds : 60)
        }
        defer { try? cluster.finish(outcome) }
        #expect(outcome.victimGPUs.map(\.description) == expected.0)
        #expect(outcome.placed?.description == expected.1)
        try cluster.expectNothingLost(outcome)
    }

    /// topo_aware as a site runs it: the shipped topo_aware.conf (shaping where a level is one
    /// socket wide), a plain request. The job is held first and `topo-preempt plan --job` asked
    /// (`predict: false` where topo_aware.conf is broken on purpose: the CLI then refuses the
    /// file, naming file and line, while the controller keeps its last good configuration).
    func runTopoAware(on cluster: Cluster, predict: Bool = true) throws {
        var predicted: CLIPrediction?
        let waits = topoAware.1 == nil
        let outcome = try cluster.scenario(
            sizes, inference: inference, free: free, gpus: gpus,
            request: ["--gres=gpu:\(gpus)"] + (affinity.map { ["--gpu-affinity=\($0)"] } ?? []),
            seconds: 60, until: waits ? { infer, line in line.contains("preempt/topo_aware: JobId=\(infer) no plan") } : nil,
            beforeRelease: predict ? { predicted = try CLIPrediction(cluster: cluster, job: $0) } : nil)
        defer { try? cluster.finish(outcome) }
        #expect(outcome.victimGPUs.map(\.description) == topoAware.0)
        #expect(outcome.placed?.description == topoAware.1)
        if let placed = outcome.placed, !degraded { #expect(cluster.isAligned(placed), "GPUs \(placed) span NVLink groups") }
        let fewest = min(stockPlain.0.count, stockShaped.0.count)
        #expect(outcome.victims.count <= fewest || stockPlain.0.isEmpty || stockShaped.1 == nil)
        let job = "preempt/topo_aware: JobId=\(outcome.infer)"
        if let placed = outcome.placed, !outcome.victims.isEmpty {
            let level = degraded ? "level=node (degraded, required nvlink)" : "level=nvlink"
            let line = "\(job) plan node1 gpus=\(placed) \(level) victims=\(outcome.victims.joined(separator: ","))"
            #expect(outcome.log.contains { $0.contains(line) }, "no '\(line)' in slurmctld's log")
        }
        if waits {
            #expect(outcome.log.contains { $0.contains("\(job) no plan") && $0.contains("guaranteed mode: preempting nothing") },
                    "no '\(job) no plan' line in slurmctld's log")
        }
        // What the CLI predicted on the held job is what the controller did.
        guard predict else { return try cluster.expectNothingLost(outcome) }
        let prediction = try #require(predicted)
        #expect(prediction.victims == outcome.victims.compactMap(UInt32.init), "plan --job: \(prediction.raw)")
        if let placed = outcome.placed {
            #expect(prediction.status == 0 && prediction.expectedGPUs.contains(placed.description), "plan --job: \(prediction.raw)")
        } else {
            #expect(prediction.status == 1 && prediction.action == "no-victims", "plan --job: \(prediction.raw)")
        }
        try cluster.expectNothingLost(outcome)
    }
}

/// `topo-preempt plan --job ID --format json` on the cluster: what preempt/topo_aware would do.
struct CLIPrediction {
    var status: Int32
    var action: String?
    var victims: [UInt32]
    var expectedGPUs: [String]
    var raw: String

    init(cluster: Cluster, job: String) throws {
        let result = try cluster.cli(["plan", "--job", job, "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                                  "plan --job \(job): \(result.stdout) \(result.stderr)")
        status = result.status
        action = object["action"] as? String
        victims = object["controllerVictims"] as? [UInt32] ?? []
        let nodes = object["nodes"] as? [[String: Any]] ?? []
        expectedGPUs = nodes.flatMap { $0["expectedGPUs"] as? [String] ?? [] }
        raw = result.stdout + result.stderr
    }
}

extension LiveCluster {
    /// Stock Slurm on NVLink islands (the cluster the other live suites share).
    @Suite(.needs("the stock islands cluster", Cluster.current?.topology == "islands"))
    struct StockIslandsComparison {
        @Test(arguments: LabScenario.stock(on: "islands"))
        func plainRequest(_ scenario: LabScenario) throws { try scenario.runStock(on: try #require(Cluster.current), shaped: false) }

        @Test(arguments: LabScenario.stock(on: "islands"))
        func shapedRequest(_ scenario: LabScenario) throws { try scenario.runStock(on: try #require(Cluster.current), shaped: true) }
    }
}

/// Suites on the stock NVLink-pairs cluster, one at a time.
@Suite(.serialized, .needs("the stock pairs cluster (scripts/test)", Cluster.pairs != nil))
enum StockPairsCluster {}

extension StockPairsCluster {
    @Suite struct Comparison {
        @Test(arguments: LabScenario.stock(on: "pairs"))
        func plainRequest(_ scenario: LabScenario) throws { try scenario.runStock(on: try #require(Cluster.pairs), shaped: false) }

        @Test(arguments: LabScenario.stock(on: "pairs"))
        func shapedRequest(_ scenario: LabScenario) throws { try scenario.runStock(on: try #require(Cluster.pairs), shaped: true) }
    }
}

/// preempt/topo_aware in a real slurmctld, NVLink islands of 4 per socket.
@Suite(.serialized, .needs("the topo_aware cluster (scripts/test)", Cluster.topoAware != nil))
struct TopoAwareIslandsTests {
    let cluster: Cluster

    init() throws { cluster = try #require(Cluster.topoAware) }

    @Test func pluginIsLoadedAndFindsThePlanner() throws {
        let plugin = cluster.pluginDir + "/preempt_topo_aware.so"
        let defined = try cluster.run(["nm", "-D", "--defined-only", plugin]).stdout
        // The preempt API of the release: preempt_p_get_data up to 24.11, one function per datum from 25.05.
        let data = cluster.releaseAtLeast(25, 5) ? ["preempt_p_get_prio", "preempt_p_get_mode", "preempt_p_get_grace_time"]
            : ["preempt_p_get_data"]
        for symbol in ["plugin_name", "plugin_type", "plugin_version", "init", "fini", "preempt_p_job_preempt_check",
                       "preempt_p_preemptable"] + data {
            #expect(defined.split(separator: "\n").contains { $0.hasSuffix(" \(symbol)") }, "\(symbol) not exported")
        }
        let log = cluster.logLines()
        #expect(log.contains { $0.contains("preempt/topo_aware: planner found in \(cluster.pluginDir)/job_submit_topo_aware.so (base policy partition_prio)") })
        #expect(try cluster.run(["scontrol", "show", "config"]).stdout.contains("preempt/topo_aware"))
        #expect(try cluster.controllerIsUp())
    }

    @Test(arguments: LabScenario.on("islands"))
    func labScenario(_ scenario: LabScenario) throws { try scenario.runTopoAware(on: cluster) }

    @Test func randomFillsNeverEndMisaligned() throws {
        try RandomFills.run(on: cluster, seeds: 1...12, gpus: 4)
    }

    /// A topo_aware.conf that no longer parses is logged with file and line; the last good
    /// configuration stays in force and preemption stays topology-aware.
    @Test func brokenConfigReloadKeepsTheLastGoodOne() throws {
        let path = cluster.topoAwareConf
        let original = try String(contentsOfFile: path, encoding: .utf8)
        defer { try? original.write(toFile: path, atomically: true, encoding: .utf8) }
        let lines = original.split(separator: "\n", omittingEmptySubsequences: false).count
        try (original + (original.hasSuffix("\n") ? "" : "\n") + "PlanTimeout=soon\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let scenario = try #require(LabScenario.on("islands").first)
        try scenario.runTopoAware(on: cluster, predict: false)
        let errors = cluster.logLines().filter { $0.contains("error:") && $0.contains("\(path):\(lines)") && $0.contains("PlanTimeout") }
        #expect(!errors.isEmpty, "no error naming \(path):\(lines)")
        #expect(try cluster.controllerIsUp())
    }

    /// Every preemption leaves its evidence where a site looks: the plan and each preemption in
    /// the decision log (DecisionLog=, JSON lines), each victim's SystemComment naming the
    /// preemptor, the GPUs it lost and the plan that chose it, the preemptor's naming its plan.
    @Test func decisionRecordsAndProvenance() throws {
        let (batch, infer, victims) = try ProvenanceCheck.preemptOnce(on: cluster)
        defer { try? cluster.finish(batch + [infer]) }
        #expect(victims == [batch[0], batch[2]])
        try ProvenanceCheck.systemComments(on: cluster, victims: victims, infer: infer)
        let records = try ProvenanceCheck.records(on: cluster, infer: infer, victims: victims)
        let plan = try #require(records.first { $0["event"] as? String == "plan" && $0["job"] as? Int == Int(infer) })
        #expect(plan["victims"] as? [Int] == victims.compactMap { Int($0) })
        #expect(plan["level"] as? String == "nvlink" && plan["reached"] as? String == "nvlink" && plan["degraded"] as? Bool == false)
        let targets = plan["targets"] as? [[String: Any]]
        #expect(targets?.first?["node"] as? String == "node1" && targets?.first?["gpus"] as? String == "0-3")
        let preempted = records.filter { $0["event"] as? String == "preempted" && $0["other"] as? Int == Int(infer) }
        #expect(Set(preempted.compactMap { $0["job"] as? Int }) == Set(victims.compactMap { Int($0) }))
        #expect(preempted.allSatisfy { $0["reason"] as? String == "plan" && $0["preempt_mode"] as? String == "REQUEUE" })
        #expect(preempted.allSatisfy { ($0["lost_gpu_seconds"] as? Int ?? -1) >= 0 })
        // topo-preempt explain, as a user runs it: the preemptor's plan and victims, live GPUs;
        // a victim's preemptor.
        let explained = try cluster.cli(["explain", infer, "--config", cluster.topoAwareConf])
        #expect(explained.status == 0, "\(explained.stderr)")
        #expect(explained.stdout.hasPrefix("JobId=\(infer) is RUNNING on node1 gpus=0-3 (nvlink-aligned)."), "\(explained.stdout)")
        #expect(explained.stdout.contains("(guaranteed mode): node1 gpus=0-3, nvlink-aligned, victims \(victims.joined(separator: ","))"))
        #expect(explained.stdout.contains("Preempted for it: JobId=\(victims[0]) (REQUEUE, node1 gpus="))
        let victim = try cluster.cli(["explain", victims[0], "--config", cluster.topoAwareConf, "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(victim.stdout.utf8)) as? [String: Any])
        #expect(object["role"] as? String == "victim")
        #expect(((object["live"] as? [String: Any])?["systemComment"] as? String)?.contains("by JobId=\(infer)") == true)
        #expect(try cluster.controllerIsUp())
    }

    /// CostOrder= in force inside slurmctld: one island held by a 4-GPU batch job, the other
    /// by two 2-GPU jobs started at least two seconds later (work is counted in whole seconds:
    /// together they have lost less). With the default order (priority, then victims) the plan
    /// requeues the 4-GPU job; with `CostOrder=work` on the inference class (the file read again
    /// without a restart) the two younger ones. With `CostOrder=rough-work` the two younger ones
    /// too, but with `RoughWorkTolerance=100` on the class, once the old job has run at least
    /// twice as long as it had when the young ones started (so its work is at most twice
    /// theirs), the plans tie and the one victim wins. The plan's record says the order it
    /// followed and, with rough-work, the tolerance.
    @Test func victimsFollowTheConfiguredCostOrder() throws {
        let conf = cluster.topoAwareConf
        let original = try String(contentsOfFile: conf, encoding: .utf8)
        defer { try? original.write(toFile: conf, atomically: true, encoding: .utf8) }
        // (class settings, victims: the old job or the young ones, order in force, tolerance recorded)
        let cases: [(settings: String?, old: Bool, order: String, tolerance: String?)] = [
            (nil, true, "priority,victims,work,collateral", nil),
            ("CostOrder=work", false, "work,priority,victims,collateral", nil),
            ("CostOrder=rough-work", false, "rough-work,priority,victims,work,collateral", "2%"),
            ("CostOrder=rough-work RoughWorkTolerance=100", true, "rough-work,priority,victims,work,collateral", "100%"),
        ]
        for item in cases {
            if let settings = item.settings {
                let lines = original.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix("PreemptorClass=inference") ? "\($0) \(settings)" : String($0) }
                try #require(lines.contains { $0.hasSuffix(settings) }, "no inference class line in \(conf)")
                try lines.joined(separator: "\n").write(toFile: conf, atomically: true, encoding: .utf8)
                let checked = try cluster.cli(["config", "check", "--config", conf])
                #expect(checked.stdout.contains("preemptor  inference") && checked.stdout.contains("costorder=\(item.order) roughworktolerance=\(item.tolerance ?? "2%")"),
                        "\(checked.stdout)")
            }
            let old = try cluster.start("batch", gpus: 4)
            var jobs = [old]
            defer { try? cluster.finish(jobs) }
            try #require(try cluster.gpuIndices(old) == GPUSet(0...3), "the 4-GPU job is not on one island")
            let started = Date()
            _ = cluster.waitUntil(seconds: 10) { Date().timeIntervalSince(started) >= 2 }
            let young = [try cluster.start("batch", gpus: 2), try cluster.start("batch", gpus: 2)]
            jobs += young
            if item.tolerance == "100%" {
                // Until the old job's run time is at least twice (plus a second) what it was
                // when the later young job started: 4 x its time <= 2 x 2 x 2 x theirs.
                let oldStart = try cluster.startSeconds(old), youngStart = try young.map(cluster.startSeconds).max() ?? 0
                let until = Double(oldStart + 2 * (youngStart - oldStart) + 1)
                let waited = cluster.waitUntil(seconds: 30) { Date().timeIntervalSince1970 >= until }
                try #require(waited, "the clock did not reach \(until)")
            }
            let infer = try cluster.start("infer", gpus: 4, waitForRunning: false)
            jobs.append(infer)
            let running = try cluster.waitUntil(seconds: 60) { try cluster.state(infer) == "RUNNING" }
            try #require(running, "infer job \(infer) did not run")
            let victims = try (young + [old]).filter { try cluster.restarts($0) > 0 }.sorted()
            let expected = item.old ? [old] : young.sorted()
            #expect(victims == expected, "\(item.settings ?? "(default)")")
            let records = try ProvenanceCheck.records(on: cluster, infer: infer, victims: victims)
            let plan = records.last { $0["event"] as? String == "plan" && $0["job"] as? Int == Int(infer) }
            #expect(plan?["cost_order"] as? String == item.order && plan?["rough_work_tolerance"] as? String == item.tolerance,
                    "\(item.settings ?? "(default)"): \(plan ?? [:])")
            try cluster.finish(jobs)
            jobs = []
        }
        #expect(try cluster.controllerIsUp())
    }

    /// A full disk under the decision log (a 64 KiB tmpfs, filled): slurmctld goes on deciding
    /// and preempting as before, logs one error naming the file, and once there is room again the
    /// log goes on with a `records-lost` line counting what it could not write.
    @Test func fullDiskUnderTheDecisionLog() throws {
        let mount = cluster.directory + "/full-disk"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let mounted = try cluster.run(["mount", "-t", "tmpfs", "-o", "size=64k", "topo-preempt-full", mount])
        try #require(mounted.status == 0, "mount: \(mounted.stderr)")
        // Lazily: slurmctld's writer lets go of the file when it next reads topo_aware.conf.
        defer {
            let unmounted = try? cluster.run(["umount", "-l", mount])
            #expect(unmounted?.status == 0, "umount -l \(mount): \(unmounted?.stderr ?? "?")")
            try? FileManager.default.removeItem(atPath: mount)
        }
        let filled = try cluster.run(["dd", "if=/dev/zero", "of=\(mount)/filler", "bs=4k"])
        #expect(filled.status != 0 && filled.stderr.contains("No space left on device"), "\(filled.stderr)")
        let conf = cluster.topoAwareConf
        let original = try String(contentsOfFile: conf, encoding: .utf8)
        defer { try? original.write(toFile: conf, atomically: true, encoding: .utf8) }
        let path = mount + "/decisions.jsonl"
        try original.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("DecisionLog=") ? "DecisionLog=\(path)" : String($0) }.joined(separator: "\n")
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let offset = cluster.logSize()
        let first = try ProvenanceCheck.preemptOnce(on: cluster)
        #expect(first.victims == [first.batch[0], first.batch[2]], "preemption changed under a full disk")
        try cluster.finish(first.batch + [first.infer])
        let errors = cluster.logLines(from: offset).filter { $0.contains("preempt/topo_aware: decision log: cannot") }
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.contains(path) == true && errors.first?.contains("No space left on device") == true, "\(errors)")
        #expect(try cluster.controllerIsUp())
        // Room again: the next decisions are written, after the count of those lost.
        try FileManager.default.removeItem(atPath: mount + "/filler")
        let second = try ProvenanceCheck.preemptOnce(on: cluster)
        defer { try? cluster.finish(second.batch + [second.infer]) }
        var lines: [String] = []
        let resumed = cluster.waitUntil(seconds: 10) {
            lines = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            return lines.contains { $0.contains(#""event":"preempted""#) && $0.contains(#""other":\#(second.infer)"#) }
        }
        #expect(resumed, "\(lines)")
        #expect(lines.first?.contains(#""event":"records-lost""#) == true, "\(lines.first ?? "(empty)")")
        #expect(cluster.logLines(from: offset).contains { $0.contains("preempt/topo_aware: decision log: writing \(path) again") })
    }

    /// Batch jobs already waiting for node1 when the victims' GPUs are freed do not take them:
    /// the infer job does (kept plan, then Slurm's priority order).
    @Test func freedGPUsGoToThePreemptor() throws {
        var batch: [String] = []
        for size in [2, 2, 2, 1, 1] { batch.append(try cluster.start("batch", gpus: size)) }
        let waiting = [try cluster.start("batch", gpus: 1, waitForRunning: false),
                       try cluster.start("batch", gpus: 2, waitForRunning: false)]
        let infer = try cluster.start("infer", gpus: 4)
        defer { try? cluster.finish(batch + waiting + [infer]) }
        #expect(try cluster.gpuIndices(infer) == GPUSet(0...3))
        for id in waiting { #expect(try cluster.state(id) == "PENDING", "waiting batch job \(id) started") }
        #expect(try [batch[1], batch[3], batch[4]].allSatisfy { try cluster.state($0) == "RUNNING" })
        #expect(try cluster.controllerIsUp())
    }

    /// node1 goes DOWN while the plan's victims drain: slurmctld stays up, Slurm requeues
    /// every job of the node (none is lost), and once the node is back the infer job runs
    /// on one island. (ReturnToService=2: the node is back as soon as its slurmd registers.)
    @Test func nodeDownMidScenario() throws {
        var batch: [String] = []
        for size in [2, 2, 2, 1, 1] { batch.append(try cluster.start("batch", gpus: size)) }
        let submitted = try cluster.run(["sbatch", "--parsable", "-p", "infer", "-w", "node1", "-c", "1", "--gres=gpu:4",
                                         "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(submitted.status == 0)
        let infer = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { try? cluster.finish(batch + [infer]) }
        let offset = cluster.logSize()
        let update = try cluster.run(["scontrol", "update", "nodename=node1", "state=down", "reason=topo-preempt-test"])
        #expect(update.status == 0, "\(update.stderr)")
        #expect(try cluster.controllerIsUp())
        // The node is DOWN only briefly: with ReturnToService=2 it is back as soon as slurmd
        // registers again, so the controller's own line is the evidence (node_mgr.c update_node).
        let downSeen = cluster.waitUntil(seconds: 10) {
            cluster.logLines(from: offset).contains { $0.contains("update_node: node node1 state set to DOWN") }
        }
        #expect(downSeen, "slurmctld never set node1 DOWN")
        try cluster.run(["scontrol", "update", "nodename=node1", "state=resume"])
        let running = try cluster.waitUntil(seconds: 60) { try cluster.state(infer) == "RUNNING" }
        #expect(running, "infer job \(infer) did not run after the node came back")
        if running, let placed = try cluster.gpuIndices(infer) { #expect(cluster.isAligned(placed), "GPUs \(placed)") }
        for id in batch {
            #expect(["PENDING", "RUNNING"].contains(try cluster.state(id)), "batch job \(id) lost")
        }
        #expect(try cluster.controllerIsUp())
    }
}

/// preempt/topo_aware in a real slurmctld, NVLink pairs (no request shape expresses a pair).
@Suite(.serialized, .needs("the topo_aware pairs cluster (scripts/test)", Cluster.topoAwarePairs != nil))
struct TopoAwarePairsTests {
    let cluster: Cluster

    init() throws { cluster = try #require(Cluster.topoAwarePairs) }

    @Test(arguments: LabScenario.on("pairs"))
    func labScenario(_ scenario: LabScenario) throws { try scenario.runTopoAware(on: cluster) }

    @Test func randomFillsNeverEndMisaligned() throws {
        try RandomFills.run(on: cluster, seeds: 101...108, gpus: 2)
    }
}

/// Seeded random fills of node1 (every GPU taken by batch jobs of 1 to 4 GPUs), then a
/// guaranteed infer job: it must either run inside one NVLink group, or wait while the plugin
/// logs that no aligned plan exists (which `topo-preempt plan --job` then confirms).
enum RandomFills {
    static func sizes(seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        var sizes: [Int] = []
        var left = 8
        while left > 0 {
            let size = min(left, [1, 1, 2, 2, 3, 4][Int(rng.next() % 6)])
            sizes.append(size)
            left -= size
        }
        return sizes
    }

    static func run(on cluster: Cluster, seeds: ClosedRange<UInt64>, gpus: Int) throws {
        var aligned = 0, waited = 0
        for seed in seeds {
            let sizes = Self.sizes(seed: seed)
            let outcome = try cluster.scenario(sizes, gpus: gpus, seconds: 60) { infer, line in
                line.contains("preempt/topo_aware: JobId=\(infer) no plan")
            }
            defer { try? cluster.finish(outcome) }
            let fill = zip(sizes, outcome.layout).map { "\($0.0):\($0.1)" }.joined(separator: " ")
            if let placed = outcome.placed {
                #expect(cluster.isAligned(placed), "seed \(seed) fill \(fill): GPUs \(placed) span NVLink groups")
                aligned += 1
                try cluster.expectNothingLost(outcome)
            } else {
                #expect(outcome.log.contains { $0.contains("preempt/topo_aware: JobId=\(outcome.infer) no plan") },
                        "seed \(seed) fill \(fill): infer job neither ran nor was reported without a plan")
                #expect(outcome.victims.isEmpty, "seed \(seed): jobs preempted without an aligned plan")
                let offline = try CLIPrediction(cluster: cluster, job: outcome.infer)
                #expect(offline.status == 1 && offline.action == "no-victims",
                        "seed \(seed): topo-preempt plan --job disagrees with the controller: \(offline.raw)")
                waited += 1
            }
        }
        print("random fills on \(cluster.topology): \(aligned) aligned, \(waited) waited for lack of an aligned plan, 0 misaligned expected")
    }
}

/// preempt/topo_aware over QOS semantics (BasePolicy=qos): slurmdbd with MariaDB, QOS batch
/// (Priority=10, requeue) and infer (Priority=100, Preempt=batch). Inference jobs go to the
/// batch partition with `--qos=infer`, so only the QOS makes them preemptors.
@Suite(.serialized, .needs("the topo_aware QOS cluster (scripts/test)", Cluster.topoAwareQOS != nil))
struct TopoAwareQOSTests {
    let cluster: Cluster

    init() throws { cluster = try #require(Cluster.topoAwareQOS) }

    @Test func qosRecordsAndBasePolicy() throws {
        let qos = try cluster.run(["sacctmgr", "-n", "-P", "list", "qos", "format=name,priority,preempt"]).stdout
        #expect(qos.contains("infer|100|batch"))
        #expect(qos.contains("batch|10|"))
        #expect(cluster.logLines().contains { $0.contains("preempt/topo_aware: planner found in") && $0.contains("(base policy qos)") })
    }

    @Test(arguments: LabScenario.on("islands"))
    func labScenario(_ scenario: LabScenario) throws { try scenario.runTopoAware(on: cluster) }

    /// Provenance is kept by slurmdbd with the preempted run: slurmctld sends AdminComment (not
    /// SystemComment) with a run's end, so `sacct` shows the tag's provenance keys on the
    /// victim's preempted run after the job has left the controller.
    @Test func provenanceInSacct() throws {
        let (batch, infer, victims) = try ProvenanceCheck.preemptOnce(on: cluster)
        defer { try? cluster.finish(batch + [infer]) }
        try #require(!victims.isEmpty)
        try ProvenanceCheck.systemComments(on: cluster, victims: victims, infer: infer)
        for victim in victims {
            var rows: [String] = []
            let stored = try cluster.waitUntil(seconds: 30) {
                rows = try cluster.run(["sacct", "-D", "-n", "-P", "-X", "-j", victim, "--format=JobID,State,AdminComment"])
                    .stdout.split(separator: "\n").map(String.init)
                return rows.contains { $0.contains("|PREEMPTED|") && $0.contains(",preempted_by=\(infer),preempted_gpus=node1:") && $0.hasSuffix(",chosen_by=plan") }
            }
            #expect(stored, "sacct rows of \(victim): \(rows)")
        }
        // explain reads the same runs back (sacct -D): the victim's preempted run and who took it.
        let explained = try cluster.cli(["explain", victims[0], "--format", "json"])
        #expect(explained.status == 0, "\(explained.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(explained.stdout.utf8)) as? [String: Any])
        let runs = object["history"] as? [[String: Any]] ?? []
        #expect(runs.contains { ($0["provenance"] as? [String: String])?["preempted_by"] == infer && ($0["state"] as? String) == "PREEMPTED" },
                "\(runs)")
        #expect((object["summary"] as? [String])?.contains { $0.hasPrefix("slurmdbd: its run ") && $0.contains("preempted by JobId=\(infer) on node1:") } == true)
    }

    /// QOS decides, not the partition: a batch-QOS job in the infer partition (PriorityTier 10)
    /// preempts nothing (batch does not preempt batch) and waits.
    @Test func partitionTierDoesNotMakeAPreemptor() throws {
        let batch = try cluster.fillNode()
        defer { try? cluster.finish(batch) }
        let submitted = try cluster.run(["sbatch", "--parsable", "-p", "infer", "--qos=batch", "-w", "node1", "-c", "1",
                                         "--gres=gpu:4", "-o", "/dev/null", "--wrap", "sleep 600"])
        try #require(submitted.status == 0, "\(submitted.stderr)")
        let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { cluster.cancel([id]) }
        // Two scheduling passes (sched_interval=5) without a preemption: poll the reason.
        let evaluated = try cluster.waitUntil(seconds: 15) { try cluster.job(id)["Reason"] == "Resources" }
        let reason = try cluster.job(id)["Reason"] ?? "?"
        #expect(evaluated, "job \(id): \(reason)")
        #expect(try batch.allSatisfy { try cluster.state($0) == "RUNNING" && cluster.restarts($0) == 0 })
        #expect(try cluster.state(id) == "PENDING")
    }
}

/// The lab's first scenario once, and the evidence it leaves (decision log, SystemComment).
enum ProvenanceCheck {
    /// node1 filled 2 2 2 1 1, then a 4-GPU infer job; returns the batch jobs, the infer job and
    /// the batch jobs it preempted (requeued), once it runs.
    static func preemptOnce(on cluster: Cluster) throws -> (batch: [String], infer: String, victims: [String]) {
        let batch = try cluster.fillNode()
        var infer = ""
        do {
            infer = try cluster.start("infer", gpus: 4, waitForRunning: false)
            let running = try cluster.waitUntil(seconds: 60) { try cluster.state(infer) == "RUNNING" }
            try #require(running, "infer job \(infer) did not run")
            return (batch, infer, try batch.filter { try cluster.restarts($0) > 0 })
        } catch {
            try? cluster.finish(batch + (infer.isEmpty ? [] : [infer]))
            throw error
        }
    }

    /// A job's SystemComment as `scontrol show job` prints it (its own line), or nil.
    static func systemComment(_ id: String, on cluster: Cluster) throws -> String? {
        let text = try cluster.run(["scontrol", "show", "job", id]).stdout
        return text.split(separator: "\n").lazy.map { $0.trimmingCharacters(in: .whitespaces) }
            .first { $0.hasPrefix("SystemComment=") }.map { String($0.dropFirst("SystemComment=".count)) }
    }

    static func systemComments(on cluster: Cluster, victims: [String], infer: String,
                               sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let plan = "guaranteed plan node1 gpus=0-3 level=nvlink victims=\(victims.joined(separator: ","))"
        for victim in victims {
            let comment = try systemComment(victim, on: cluster) ?? "(none)"
            #expect(comment.hasPrefix("topo_aware: preempted (REQUEUE) by JobId=\(infer) on node1 gpus=") && comment.contains("; chosen by its \(plan) "),
                    "victim \(victim): \(comment)", sourceLocation: sourceLocation)
        }
        let own = try systemComment(infer, on: cluster) ?? "(none)"
        #expect(own.hasPrefix("topo_aware: \(plan) cost="), "preemptor \(infer): \(own)", sourceLocation: sourceLocation)
        // The same facts as keys of the AdminComment tag (what sacct keeps).
        for victim in victims {
            let admin = try cluster.job(victim)["AdminComment"] ?? "(none)"
            #expect(admin.contains(",preempted_by=\(infer),preempted_gpus=node1:") && admin.hasSuffix(",chosen_by=plan"),
                    "victim \(victim): AdminComment=\(admin)", sourceLocation: sourceLocation)
        }
        let admin = try cluster.job(infer)["AdminComment"] ?? "(none)"
        #expect(admin.hasSuffix(",plan=node1:0-3,reached=nvlink,victims=\(victims.joined(separator: "+"))"),
                "preemptor \(infer): AdminComment=\(admin)", sourceLocation: sourceLocation)
    }

    /// The decision log's records (written by a thread of slurmctld: polled until the victims'
    /// preemptions are there).
    static func records(on cluster: Cluster, infer: String, victims: [String]) throws -> [[String: Any]] {
        let path = cluster.directory + "/log/decisions.jsonl"
        var records: [[String: Any]] = []
        let complete = cluster.waitUntil(seconds: 10) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            records = text.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }
            return records.filter { $0["event"] as? String == "preempted" && $0["other"] as? Int == Int(infer) }.count >= victims.count
        }
        #expect(complete, "\(path): \(records.count) records, not every preemption for \(infer)")
        return records
    }
}
