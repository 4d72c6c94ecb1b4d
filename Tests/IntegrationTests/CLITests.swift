import Foundation
import Testing
import TopoEngine

/// The `topo-preempt` executable as a user runs it (no cluster needed): exit codes, output
/// shapes, error text naming file and line.
/// Skipped when the binary is not built, except under scripts/test, where a missing binary fails.
@Suite(.needs("the topo-preempt binary (swift build)", CLI.binary != nil))
struct CLITests {
    @Test func topoShowJSONShape() throws {
        let result = try CLI.run(["topo", "show", CLI.fixture("local-pairs.txt"), "--format", "json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["source"] as? String == "nvidia-smi topo -m")
        let groups = try #require(object["groups"] as? [String: [[Int]]])
        #expect(groups["nvlink"] == [[0, 1], [2, 3], [4, 5], [6, 7]])
        #expect(groups["pcie-switch"] == [[0, 1, 2, 3], [4, 5, 6, 7]])
        #expect((object["largestGroup"] as? [String: Int])?["nvlink"] == 2)
        let paths = try #require(object["paths"] as? [[String]])
        #expect(paths[0][0] == "X" && paths[0][1] == "NV2" && paths[0][2] == "PXB" && paths[0][4] == "SYS")
    }

    /// explain from a decision log alone (--no-live): a preemptor's plan and victims, a victim's
    /// preemptor, the rotated file read first, a line that is no record named with file and
    /// line, an unknown job exit 1, a config without DecisionLog= named.
    @Test func explainFromTheDecisionLog() throws {
        let directory = NSTemporaryDirectory() + "explain-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/decisions.jsonl"
        try (#"{"seq":1,"time":1796236889,"event":"plan","job":6,"mode":"guaranteed","level":"nvlink","reached":"nvlink","degraded":false,"targets":[{"node":"node1","gpus":"0-3"}],"victims":[1,3],"cost":{"victims":2,"priority":65537,"lost_gpu_seconds":12,"collateral_gpus":0},"plan_us":160,"message":"JobId=6 plan node1 gpus=0-3 level=nvlink victims=1,3","details":["on node1: requeue 1 GPUs 0-1, 3 GPUs 2-3"]}"# + "\n")
            .write(toFile: log + ".1", atomically: true, encoding: .utf8)
        try ([#"{"seq":2,"time":1796236890,"event":"preempted","job":1,"other":6,"reason":"plan","targets":[{"node":"node1","gpus":"0-1"}],"victims":[1,3],"preempt_mode":"REQUEUE","lost_gpu_seconds":10,"message":"JobId=1 preempted (REQUEUE) on node1 gpus=0-1 for JobId=6"}"#,
              #"{"seq":3,"time":1796236890,"event":"bogus","job":3}"#,
              #"{"seq":4,"time":1796236891,"event":"wait","job":7,"reason":"no-aligned-plan","message":"JobId=7 no plan"}"#].joined(separator: "\n") + "\n")
            .write(toFile: log, atomically: true, encoding: .utf8)
        let preemptor = try CLI.run(["explain", "6", "--records", log, "--no-live", "--no-history"])
        #expect(preemptor.status == 0, "\(preemptor.stderr)")
        #expect(preemptor.stdout.contains("Plan made at 2026-12-02T18:41:29Z (guaranteed mode): node1 gpus=0-3, nvlink-aligned, victims 1,3"))
        #expect(preemptor.stdout.contains("  - on node1: requeue 1 GPUs 0-1, 3 GPUs 2-3"))
        #expect(preemptor.stdout.contains("Preempted for it: JobId=1 (REQUEUE, node1 gpus=0-1, chosen by plan)."))
        #expect(preemptor.stderr.contains("\(log):2: not a decision record (unknown event 'bogus'); skipped"), "\(preemptor.stderr)")
        let victim = try CLI.run(["explain", "1", "--records", log, "--no-live", "--no-history", "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(victim.stdout.utf8)) as? [String: Any])
        #expect(object["role"] as? String == "victim")
        #expect((object["records"] as? [[String: Any]])?.first?["other"] as? Int == 6)
        let waiting = try CLI.run(["explain", "7", "--records", log, "--no-live", "--no-history"])
        #expect(waiting.stdout.contains("Last decision (2026-12-02T18:41:31Z): it waits, no-aligned-plan: JobId=7 no plan."))
        let unknown = try CLI.run(["explain", "99", "--records", log, "--no-live", "--no-history"])
        #expect(unknown.status == 1 && unknown.stderr.contains("JobId=99: no record of \(log) names it"))
        let conf = directory + "/topo_aware.conf"
        try "PreemptorClass=a Partitions=p\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let unset = try CLI.run(["explain", "6", "--config", conf, "--no-live", "--no-history"])
        #expect(unset.status == 1 && unset.stderr.contains("\(conf): no DecisionLog= is set"), "\(unset.stderr)")
    }

    /// simulate: the table, JSON with every policy, the SVG and CSV files, bad input named.
    @Test func simulateSmallCluster() throws {
        let directory = NSTemporaryDirectory() + "simulate-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let svg = directory + "/sim.svg", csv = directory + "/sim.csv"
        let text = try CLI.run(["simulate", "--nodes", "islands:2,pairs:2," + CLI.fixture("local-pairs.txt") + ":1", "--days", "0.25",
                                "--plot", svg, "--csv", csv, "--no-progress"])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("affinity hit rate of preemptions"))
        #expect(text.stdout.contains("topo-guaranteed"))
        #expect(try String(contentsOfFile: svg, encoding: .utf8).hasPrefix("<svg"))
        #expect(try String(contentsOfFile: csv, encoding: .utf8).hasPrefix("policy,time,utilisation,hit_rate,pending_inference,running_inference\n"))
        let json = try CLI.run(["simulate", "--nodes", "islands:2", "--days", "0.1", "--plot", "-", "--format", "json"])
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["policies"] as? [[String: Any]])?.count == 6)
        #expect(object["gpus"] as? Int == 16)
        // TopoPreempt against the best stock variant, metric by metric, naming it.
        let comparison = try #require(object["comparison"] as? [[String: Any]])
        let stockNames: Set<String> = ["stock", "stock-shaped", "stock-youngest", "stock-shaped-youngest"]
        #expect(comparison.count == 12 && comparison.allSatisfy { stockNames.contains($0["bestStock"] as? String ?? "") })
        #expect(comparison.allSatisfy { $0["policy"] as? String == "topo-guaranteed" && ($0["gain"] as? String)?.isEmpty == false })
        #expect(text.stdout.contains("topo-guaranteed against the best stock variant for each metric:"))
        // Drain time: given, echoed; out of range, named.
        let drained = try CLI.run(["simulate", "--nodes", "islands:2", "--days", "0.1", "--plot", "-", "--format", "json",
                                   "--policies", "stock,topo-guaranteed", "--victim-exit", "5", "--epilog", "3", "--kill-wait", "30"])
        let drainObject = try #require(try JSONSerialization.jsonObject(with: Data(drained.stdout.utf8)) as? [String: Any])
        let drain = try #require(drainObject["drain"] as? [String: Any])
        #expect(drain["epilog"] as? Int == 3 && drain["killWait"] as? Int == 30 && drain["exitMean"] as? Double == 5)
        // --report: one command writes the report (how it was made, the tables, each node type
        // alone) and its plot.
        let reportDirectory = directory + "/report"
        let reported = try CLI.run(["simulate", "--nodes", "islands:2,pairs:2", "--days", "0.1", "--seed", "7", "--plot", "-",
                                    "--inference-per-day", "2000", "--inference-gpus", "4", "--report", reportDirectory, "--no-progress"])
        #expect(reported.status == 0, "\(reported.stderr)")
        let markdown = try String(contentsOfFile: reportDirectory + "/report.md", encoding: .utf8)
        #expect(markdown.hasPrefix("# topo-preempt simulate: islands:2,pairs:2\n"))
        #expect(markdown.contains("seed 7") && markdown.contains("`stock-youngest` (stock Slurm, `--gres=gpu:N`, victims youngest-first)"))
        #expect(markdown.contains("topo-guaranteed against the best stock variant for each metric:"))
        #expect(markdown.contains("## The same trace on islands:4 alone") && markdown.contains("## The same trace on pairs:4 alone"))
        // 4-GPU inference on NVLink pairs alone: more than any nvlink group, said once there.
        let pairsPart = try #require(markdown.components(separatedBy: "## The same trace on pairs:4 alone").last)
        #expect(pairsPart.contains("inference jobs ask for more GPUs than the largest nvlink group here (2)"))
        #expect(!markdown.components(separatedBy: "## The same trace on pairs:4 alone")[0].contains("ask for more GPUs"))
        #expect(try String(contentsOfFile: reportDirectory + "/simulation.svg", encoding: .utf8).hasPrefix("<svg"))
        // CPUs, memory and multi-node jobs: the table says what the planner was given and adds
        // their rows; bad values are named.
        let resources = try CLI.run(["simulate", "--nodes", "islands:4", "--days", "0.1", "--plot", "-", "--no-progress",
                                     "--policies", "stock,topo-guaranteed", "--cores-per-socket", "8", "--memory-per-node", "500",
                                     "--cpus-per-gpu", "2:1,4:1", "--memory-per-gpu", "64", "--multi-node", "0.5", "--planner-view", "full"])
        #expect(resources.status == 0, "\(resources.stderr)")
        #expect(resources.stdout.contains("nodes: 8 cores per socket, 500 GB of memory;")
                    && resources.stdout.contains("TopoPreempt's planner given GPUs, CPUs and memory (--planner-view full)"))
        #expect(resources.stdout.contains("plans Slurm could not carry out") && resources.stdout.contains("jobs refused (no node can hold them)"))
        for (option, message) in [(["--cpus-per-gpu", "4:x"], "--cpus-per-gpu: '4:x': the weight must be a number above 0"),
                                  (["--memory-per-gpu=-1"], "--memory-per-gpu: '-1' is not VALUE or VALUE:WEIGHT"),
                                  (["--planner-view", "cpus"], "--planner-view: 'cpus' is neither gpus nor full"),
                                  (["--multi-node", "2"], "--multi-node must be a fraction from 0 to 1, not 2.0"),
                                  (["--cores-per-socket", "0"], "--cores-per-socket must be 1 to 4096, not 0")] {
            let result = try CLI.run(["simulate", "--nodes", "islands:2", "--days", "0.1", "--plot", "-"] + option)
            #expect(result.status == 1 && result.stderr.contains(message), "\(option): \(result.stderr)")
        }
        let badDrain = try CLI.run(["simulate", "--nodes", "islands:2", "--kill-wait=-1", "--plot", "-"])
        #expect(badDrain.status == 1 && badDrain.stderr.contains("--kill-wait must be 0 to 86400 seconds"))
        let bad = try CLI.run(["simulate", "--nodes", "islands", "--plot", "-"])
        #expect(bad.status == 1 && bad.stderr.contains("--nodes: 'islands' is not NAME:COUNT"))
        let trace = directory + "/t.csv"
        try "submit,gpus,duration,class\n0,2,60,train\n".write(toFile: trace, atomically: true, encoding: .utf8)
        let badTrace = try CLI.run(["simulate", "--trace", trace, "--plot", "-"])
        #expect(badTrace.status == 1 && badTrace.stderr.contains("t.csv:2:1: class 'train' is neither inference nor batch"))
    }

    @Test func topoShowTextTree() throws {
        let result = try CLI.run(["topo", "show", CLI.fixture("local-pairs.txt")])
        #expect(result.stdout.contains("""
                {0-3} pcie-switch/host-bridge/numa/socket
                  {0-1} nvlink
                  {2-3} nvlink
            """))
        #expect(result.stdout.contains("largest aligned group: nvlink 2, pcie-switch 4, host-bridge 4, numa 4, socket 4, node 8"))
    }

    @Test func mangledTopologyNamesFileAndLine() throws {
        let file = NSTemporaryDirectory() + "mangled-\(getpid()).txt"
        try "\tGPU0\tGPU1\nGPU0\t X \tNVQ\nGPU1\tNV1\t X \n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try CLI.run(["topo", "show", file])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(file):2:10: unknown link 'NVQ' between GPU0 and GPU1"))
        let missing = try CLI.run(["topo", "show", "/nonexistent/topo.txt"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent/topo.txt: cannot read: no such file"))
    }

    @Test func gresConfMatchesTheEngineAndCheckPasses() throws {
        let fixture = CLI.fixture("dgx1-v100-2.txt")
        let result = try CLI.run(["topo", "gres-conf", fixture, "--node-name", "dgx[1-4]", "--type", "v100"])
        #expect(result.status == 0)
        let expected = GresConfGenerator.generate(
            try NvidiaSmiTopo.parse(String(contentsOfFile: fixture, encoding: .utf8), file: fixture),
            source: "dgx1-v100-2.txt", options: .init(nodeName: "dgx[1-4]", type: "v100")).text
        #expect(result.stdout == expected)
        let file = NSTemporaryDirectory() + "gres-\(getpid()).conf"
        try result.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let check = try CLI.run(["topo", "check", file, "--topology", fixture])
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.stdout.hasSuffix("\(file): 0 error(s), 0 warning(s)\n"))
        // The same file against another machine's topology: errors, exit 1.
        let wrong = try CLI.run(["topo", "check", file, "--topology", CLI.fixture("dgx-a100-1.txt"), "--format", "json"])
        #expect(wrong.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(wrong.stdout.utf8)) as? [String: Any])
        #expect((report["errors"] as? Int ?? 0) > 0)
    }

    @Test func benchPrintsOneRowPerFileWithARatio() throws {
        let files = ["dgx-a100-1.txt", "amd-mi210-4gpu-rocm-showtopo.txt"].map(CLI.fixture)
        let result = try CLI.run(["bench", "topology", "--iterations", "5"] + files)
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n")
        #expect(rows.count == 3)
        #expect(rows.first?.contains("ratio") == true)
        #expect(rows.dropFirst().allSatisfy { $0.split(separator: " ").count == 6 })
        #expect(rows[1].hasPrefix("dgx-a100-1.txt") && rows[1].contains(" 3108 "))
    }

    @Test func benchPlanPrintsARowPerClusterSize() throws {
        let result = try CLI.run(["bench", "plan", "--nodes", "4,8", "--runs", "2", "--extra-plans", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n")
        #expect(rows.count == 3)
        #expect(rows[1].hasPrefix("4 ") && rows[2].hasPrefix("8 "))
        #expect(rows.dropFirst().allSatisfy { $0.contains("2/") })  // every plan aligned: "2/<stock>"
    }

    /// bench simulate: one Markdown row per size and span, the first size the baseline (ratios
    /// 1.00, the lowest policy's and each policy's), events per policy and peak memory read from
    /// each child simulate's JSON; a bad policy or run count is refused before anything runs.
    @Test func benchSimulatePrintsARowPerSizeAndSpan() throws {
        let result = try CLI.run(["bench", "simulate", "--nodes", "8,16", "--days", "0.1,0.2", "--policies", "stock,topo-guaranteed"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("policies in parallel"))
        let rows = result.stdout.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| ---") }
        #expect(rows.count == 5, "\(result.stdout)")
        #expect(rows.first?.contains("stock events/s") == true && rows.first?.contains("topo-guaranteed events/s") == true)
        let cells = rows.dropFirst().map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
        #expect(cells.map { $0[0] } == ["8", "16", "8", "16"])
        #expect(cells.map { $0[2] } == ["0.1", "0.1", "0.2", "0.2"])
        #expect(cells[0][5] == "1.00" && cells[2][5] == "1.00")
        #expect(cells[0][6] == "1.00 / 1.00" && cells[2][6] == "1.00 / 1.00")
        #expect(cells.allSatisfy { ($0[7].split(separator: "/").count == 2) && (Int($0[9]) ?? 0) > 0 })
        let bad = try CLI.run(["bench", "simulate", "--policies", "stock,nonsense"])
        #expect(bad.status != 0 && bad.stderr.contains("unknown policy 'nonsense'"))
        let badRuns = try CLI.run(["bench", "simulate", "--runs", "0"])
        #expect(badRuns.status != 0 && badRuns.stderr.contains("--runs must be from 1 to 9"))
    }

    /// bench simulate --sequential --runs 3: each policy in its own process (the same events as
    /// when run together: one trace, one seed), the medians of three runs.
    @Test func benchSimulateSequentialMedians() throws {
        let arguments = ["bench", "simulate", "--nodes", "8,16", "--days", "0.1", "--policies", "stock,topo-best-effort"]
        let together = try CLI.run(arguments)
        let apart = try CLI.run(arguments + ["--sequential", "--runs", "3"])
        #expect(together.status == 0 && apart.status == 0, "\(together.stderr)\(apart.stderr)")
        #expect(apart.stdout.contains("one policy at a time, medians of 3 runs per row"))
        func cells(_ text: String) -> [[String]] {
            text.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| ---") }.dropFirst()
                .map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
        }
        let (a, b) = (cells(together.stdout), cells(apart.stdout))
        #expect(a.count == 2 && b.count == 2, "\(apart.stdout)")
        #expect(a.map { $0[7] } == b.map { $0[7] })  // events per policy
        #expect(b.allSatisfy { (Double($0[3]) ?? 0) > 0 && (Double($0[4]) ?? 0) > 0 && (Double($0[8]) ?? 0) > 0 })
        // Each policy against itself at the smallest size: the median of the rounds' ratios,
        // exactly one at the smallest size; rows come in size order.
        #expect(b.first?[6] == "1.00 / 1.00" && b.map { $0[0] } == ["8", "16"], "\(apart.stdout)")
    }

    /// CostOrder=: `config check` shows the file's order and each preemptor class's in force,
    /// an unknown criterion is named with file:line:column; `plan --snapshot` takes the order
    /// from --cost-order, else from the file --config names, and says it; `simulate` checks
    /// --cost-order and reports it. RoughWorkTolerance= and --rough-work-tolerance alike.
    @Test func costOrderInConfigPlanAndSimulate() throws {
        let directory = NSTemporaryDirectory() + "cost-order-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/topo_aware.conf"
        try """
            CostOrder=work
            RoughWorkTolerance=5%
            PreemptorClass=inference Partitions=infer
            PreemptorClass=chat Partitions=chat CostOrder=victims,work RoughWorkTolerance=0.5
            PreemptibleClass=batch Partitions=batch
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let text = try CLI.run(["config", "check", "--config", file])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("  CostOrder=work,priority,victims,collateral RoughWorkTolerance=5%\n"), "\(text.stdout)")
        #expect(text.stdout.contains("preemptor  inference level=nvlink mode=guaranteed costorder=work,priority,victims,collateral roughworktolerance=5%"))
        #expect(text.stdout.contains("preemptor  chat level=nvlink mode=guaranteed costorder=victims,work,priority,collateral roughworktolerance=0.5%"))
        let json = try CLI.run(["config", "check", "--config", file, "--format", "json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["costOrder"] as? String == "work,priority,victims,collateral")
        let classes = try #require(object["classes"] as? [[String: Any]])
        #expect(classes.map { $0["costOrder"] as? String } == ["work,priority,victims,collateral", "victims,work,priority,collateral", nil])
        #expect(object["roughWorkTolerance"] as? String == "5%" && classes.map { $0["roughWorkTolerance"] as? String } == ["5%", "0.5%", nil])

        let bad = directory + "/bad.conf"
        try "PreemptorClass=inference Partitions=infer CostOrder=work,lost\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let invalid = try CLI.run(["config", "check", "--config", bad])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("\(bad):1:58: CostOrder: 'lost' is not a cost criterion (expected priority, victims, work, rough-work or collateral)"), "\(invalid.stderr)")

        let snapshot = directory + "/snap.json"
        try CLI.run(["plan", "--example-snapshot"]).stdout.write(toFile: snapshot, atomically: true, encoding: .utf8)
        let byDefault = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4"])
        #expect(byDefault.stdout.contains("plans compared by priority, victims, work, collateral, most important first"), "\(byDefault.stdout)")
        let byFile = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4", "--config", file, "--format", "json"])
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(byFile.stdout.utf8)) as? [String: Any])
        #expect(plan["costOrder"] as? String == "work,priority,victims,collateral", "\(byFile.stdout)")
        let given = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4", "--config", file, "--cost-order", "Collateral,victims"])
        #expect(given.stdout.contains("plans compared by collateral, victims, priority, work"), "\(given.stdout)")
        let twice = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4", "--cost-order", "work,work"])
        #expect(twice.status == 64 && twice.stderr.contains("--cost-order: 'work' is given twice"), "\(twice.stderr)")
        // rough-work: the tolerance from the option, else the file's; said beside the criterion.
        let rough = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4", "--config", file, "--cost-order", "rough-work",
                                 "--rough-work-tolerance", "2.5%", "--format", "json"])
        let roughPlan = try #require(try JSONSerialization.jsonObject(with: Data(rough.stdout.utf8)) as? [String: Any])
        #expect(roughPlan["costOrder"] as? String == "rough-work,priority,victims,work,collateral" && roughPlan["roughWorkTolerance"] as? String == "2.5%",
                "\(rough.stdout)")
        let roughByFile = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4", "--config", file, "--cost-order", "rough-work"])
        #expect(roughByFile.stdout.contains("plans compared by rough-work (within 5%), priority, victims, work, collateral"), "\(roughByFile.stdout)")
        let badTolerance = try CLI.run(["plan", "--snapshot", snapshot, "--gpus", "4", "--rough-work-tolerance", "2.55"])
        #expect(badTolerance.status == 64 && badTolerance.stderr.contains(
            "--rough-work-tolerance: '2.55' is not a percentage from 0 to 100 with at most one decimal, such as 2 or 2.5%"), "\(badTolerance.stderr)")

        let simulated = try CLI.run(["simulate", "--nodes", "islands:4,pairs:4", "--days", "0.05", "--policies", "topo-best-effort",
                                     "--cost-order", "work", "--format", "json", "--plot", "-", "--no-progress"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(simulated.stdout.utf8)) as? [String: Any])
        #expect(report["costOrder"] as? String == "work,priority,victims,collateral" && report["roughWorkTolerance"] == nil, "\(simulated.stderr)")
        let roughly = try CLI.run(["simulate", "--nodes", "islands:4", "--days", "0.05", "--policies", "topo-guaranteed",
                                   "--cost-order", "priority,rough-work,victims", "--rough-work-tolerance", "5", "--format", "json",
                                   "--plot", "-", "--no-progress"])
        let roughReport = try #require(try JSONSerialization.jsonObject(with: Data(roughly.stdout.utf8)) as? [String: Any])
        #expect(roughReport["roughWorkTolerance"] as? String == "5%", "\(roughly.stderr)")
        let wrongTolerance = try CLI.run(["simulate", "--nodes", "islands:4", "--days", "0.05", "--rough-work-tolerance=-1"])
        #expect(wrongTolerance.status != 0 && wrongTolerance.stderr.contains("--rough-work-tolerance: '-1' is not a percentage"), "\(wrongTolerance.stderr)")
        let wrong = try CLI.run(["simulate", "--nodes", "islands:4", "--days", "0.05", "--cost-order", "cheapest"])
        #expect(wrong.status != 0 && wrong.stderr.contains("--cost-order: 'cheapest' is not a cost criterion"), "\(wrong.stderr)")
    }

    /// plan --snapshot with CPUs: the lab's full node giving 8 CPUs, 5 of them held by jobs the
    /// snapshot does not list; its batch jobs hold none. A 4-GPU job of 3 CPUs gets the usual
    /// plan; of 4 CPUs none, and the reason says CPUs.
    @Test func planSnapshotWithCPUs() throws {
        let example = try CLI.run(["plan", "--example-snapshot"])
        var object = try #require(try JSONSerialization.jsonObject(with: Data(example.stdout.utf8)) as? [String: Any])
        var nodes = try #require(object["nodes"] as? [[String: Any]])
        nodes[0]["cpus"] = 8
        nodes[0]["otherCPUs"] = 5
        object["nodes"] = nodes
        let file = NSTemporaryDirectory() + "snapshot-cpus-\(getpid()).json"
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fits = try CLI.run(["plan", "--snapshot", file, "--gpus", "4", "--cpus", "3", "--format", "json"])
        #expect(fits.status == 0, "\(fits.stderr)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(fits.stdout.utf8)) as? [String: Any])
        #expect(plan["outcome"] as? String == "plan" && (plan["victims"] as? [Int])?.isEmpty == false)
        let short = try CLI.run(["plan", "--snapshot", file, "--gpus", "4", "--cpus", "4"])
        #expect(short.status == 1 && short.stdout.contains("can free 4 GPUs and 4 CPUs from"), "\(short.stdout)")
        let bad = try CLI.run(["plan", "--snapshot", file, "--gpus", "4", "--memory=-1"])
        #expect(bad.status != 0 && bad.stderr.contains("--memory must be 0 or more MB"))
    }

    /// plan --snapshot with blocks: --segment and --required as the block suites' scenarios
    /// (two blocks of four 4-GPU nodes; the fills of Cluster.segmentPairs and Cluster.namedNode).
    @Test func planSnapshotWithSegmentsAndNamedNodes() throws {
        func snapshot(_ name: String, _ fill: [(node: Int, sizes: [Int])]) throws -> String {
            let layout = ClusterSnapshot.LayoutSpec(paths: (0..<4).map { i in (0..<4).map { $0 == i ? "X" : "NV4" } }, sockets: [0, 0, 1, 1])
            var jobs: [ClusterSnapshot.RunningJob] = []
            for (node, sizes) in fill {
                var next = 0
                for size in sizes {
                    jobs.append(.init(id: UInt32(jobs.count + 1), priority: 1, startTime: Int64(jobs.count),
                                      allocations: [.init(node: node - 1, gpus: GPUSet(next..<(next + size)))]))
                    next += size
                }
            }
            let value = ClusterSnapshot(layouts: [layout], nodes: (1...8).map { .init(name: "node\($0)", layout: 0, block: $0 <= 4 ? "b1" : "b2") },
                                        jobs: jobs, time: 3600, slurm: SlurmRelease(26, 5, 3),
                                        blockLevels: BlockLevels(order: ["b1", "b2"], baseNodes: 4, levels: [1, 2]))
            let file = NSTemporaryDirectory() + "snapshot-\(name)-\(getpid()).json"
            try JSONEncoder().encode(value).write(to: URL(fileURLWithPath: file))
            return file
        }
        let pairs = try snapshot("pairs", Cluster.segmentPairs), named = try snapshot("named", Cluster.namedNode)
        defer { for file in [pairs, named] { try? FileManager.default.removeItem(atPath: file) } }
        let split = try CLI.run(["plan", "--snapshot", pairs, "--gpus", "4", "--nodes", "4", "--segment", "2", "--compare-stock", "--format", "json"])
        #expect(split.status == 0, "\(split.stderr)")
        let plan = try #require(try JSONSerialization.jsonObject(with: Data(split.stdout.utf8)) as? [String: Any])
        #expect(plan["victims"] as? [Int] == [13, 14, 15, 16] && plan["domain"] as? String == "block b1+b2", "\(split.stdout)")
        #expect((plan["stock"] as? [String: Any])?["victims"] as? [Int] == Array(1...12), "\(split.stdout)")
        let uneven = try CLI.run(["plan", "--snapshot", pairs, "--gpus", "4", "--nodes", "4", "--segment", "3"])
        #expect(uneven.status == 1 && uneven.stdout.contains("--segment=3 does not divide the job's 4 nodes"), "\(uneven.stdout)")
        let w = try CLI.run(["plan", "--snapshot", named, "--gpus", "4", "--nodes", "2", "--required", "node5"])
        #expect(w.status == 0 && w.stdout.contains("all 2 nodes in block b2"), "\(w.stdout)")
        let tooMany = try CLI.run(["plan", "--snapshot", named, "--gpus", "4", "--nodes", "2", "--required", "node1,node2,node3"])
        #expect(tooMany.status != 0 && tooMany.stderr.contains("--required names 3 nodes, more than --nodes 2"))
    }

    @Test func classifyExplainsShapingAndRejection() throws {
        let gres = NSTemporaryDirectory() + "gres-classify-\(getpid()).conf"
        let slurm = NSTemporaryDirectory() + "slurm-classify-\(getpid()).conf"
        try GresConfTestData.islands.write(toFile: gres, atomically: true, encoding: .utf8)
        try "NodeName=node[1-2] Sockets=2 CoresPerSocket=8 Gres=gpu:8\n".write(toFile: slurm, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: gres)
            try? FileManager.default.removeItem(atPath: slurm)
        }
        let config = CLI.root + "/etc/topo_aware.conf"
        let shaped = try CLI.run(["classify", "-p", "infer", "--gres", "gpu:4", "--gres-conf", gres, "--slurm-conf", slurm,
                                  "--config", config])
        #expect(shaped.status == 0)
        #expect(shaped.stdout.contains("AdminComment: topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,shape=gpus-per-socket:4"))
        let rejected = try CLI.run(["classify", "-p", "infer", "--gres", "gpu:5", "--gres-conf", gres, "--slurm-conf", slurm,
                                    "--config", config])
        #expect(rejected.status == 1)
        #expect(rejected.stdout.contains("rejected: sbatch shows: topo_aware: 5 GPUs per node can never be nvlink-aligned"))
    }
}

enum GresConfTestData {
    static let islands = (0..<8).map { g in
        let links = (0..<8).map { p in p == g ? "-1" : (p / 4 == g / 4 ? "1" : "0") }.joined(separator: ",")
        return "NodeName=node[1-2] Name=gpu File=/dev/nvidia\(g) Cores=\(g < 4 ? "0-7" : "8-15") Links=\(links)"
    }.joined(separator: "\n") + "\n"
}

enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// The debug build `swift test` made beside the test bundle, or $TOPO_PREEMPT_CLI: the tool
    /// built for another Slurm release (scripts/build-plugins --slurm VERSION), which the
    /// integration suites use against that release's clusters.
    static let binary: String? = {
        let path = ProcessInfo.processInfo.environment["TOPO_PREEMPT_CLI"] ?? (root + "/.build/debug/topo-preempt")
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    static func fixture(_ name: String) -> String { root + "/Tests/TopoEngineTests/Fixtures/topologies/" + name }

    static func run(_ arguments: [String]) throws -> Cluster.Result {
        try runProcess(try #require(binary, "the topo-preempt binary is missing: \(root)/.build/debug/topo-preempt or $TOPO_PREEMPT_CLI"), arguments)
    }
}
