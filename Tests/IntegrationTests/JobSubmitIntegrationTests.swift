import Foundation
import Testing
import TopoEngine

extension LiveCluster {
    /// job_submit/topo_aware inside the real slurmctld of the local cluster: what an sbatch user
    /// and an administrator see.
    @Suite struct JobSubmitIntegrationTests {
        let cluster: Cluster

        init() throws {
            cluster = try #require(Cluster.current)
        }

        @Test func pluginIsSelfContainedAndExportsSlurmsSymbols() throws {
            let plugin = cluster.pluginDir + "/job_submit_topo_aware.so"
            let defined = try cluster.run(["nm", "-D", "--defined-only", plugin]).stdout
            for symbol in ["plugin_name", "plugin_type", "plugin_version", "init", "fini", "job_submit", "job_modify"] {
                #expect(defined.split(separator: "\n").contains { $0.hasSuffix(" \(symbol)") }, "\(symbol) not exported")
            }
            let undefined = try cluster.run(["nm", "-D", "--undefined-only", plugin]).stdout
            #expect(undefined.contains("slurm_info"), "slurm_* must be left for slurmctld to provide")
            // The CLI's libslurm client is not linked in: its RPCs would deadlock inside slurmctld.
            let symbols = Set(undefined.split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) })
            for client in ["slurm_load_jobs", "slurm_load_node", "slurm_load_partitions", "slurm_load_ctl_conf", "slurm_requeue",
                           "slurmdb_qos_get", "slurmdb_connection_get"] {
                #expect(!symbols.contains(client), "the plugin references the client call \(client)")
            }
            let libraries = try cluster.run(["ldd", plugin]).stdout
            #expect(!libraries.contains("libswift"), "Swift runtime must be linked statically")
            #expect(!libraries.contains("libslurm"), "the plugin must not link libslurm")
            #expect(!libraries.contains("libFoundation"))
        }

        @Test func controllerLoadedThePlugin() throws {
            #expect(cluster.pluginsOn)
            let loaded = cluster.logLines().contains {
                $0.contains("job_submit/topo_aware: init: loaded \(cluster.topoAwareConf): 1 preemptor class (inference), 1 preemptible class (batch)")
            }
            #expect(loaded)
            #expect(try cluster.controllerIsUp())
        }

        @Test(arguments: [
            (["-p", "batch", "--gres=gpu:2"], "topo_aware:preemptible=batch"),
            (["--gres=gpu:1"], "topo_aware:preemptible=batch"),  // default partition
            (["-p", "infer", "--gres=gpu:4"], "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,shape=gpus-per-socket:4"),
            (["-p", "infer"], "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed"),
            (["-p", "infer", "--gres=gpu:2", "--gpu-affinity=pcie-switch:best-effort"],
             "topo_aware:preemptor=inference,level=pcie-switch,mode=best-effort,override=user"),
            (["-p", "infer", "--gres=gpu:2", "--gpu-affinity=socket"],
             "topo_aware:preemptor=inference,level=socket,mode=guaranteed,override=user,shape=gpus-per-socket:2"),
        ])
        func acceptedJobsShowTheirClassInScontrol(options: [String], tag: String) throws {
            let submitted = try cluster.submitHeld(options)
            #expect(submitted.status == 0, "\(submitted.stderr)")
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { cluster.cancel([id]) }
            #expect(try cluster.job(id)["AdminComment"] == tag)
        }

        @Test func usersOwnCommentIsKept() throws {
            let submitted = try cluster.submitHeld(["-p", "infer", "--comment=my own note", "--gpu-affinity=numa"])
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { cluster.cancel([id]) }
            let job = try cluster.job(id)
            #expect(job["Comment"] == "my own note")
            #expect(job["AdminComment"] == "topo_aware:preemptor=inference,level=numa,mode=guaranteed,override=user")
        }

        @Test func malformedOverrideIsRejectedWithThePluginsMessage() throws {
            let result = try cluster.submitHeld(["-p", "infer", "--gres=gpu:1", "--gpu-affinity=nvlnk"])
            #expect(result.status != 0)
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.contains(
                "sbatch: error: topo_aware: invalid --gpu-affinity=nvlnk: 'nvlnk' is neither a level nor a mode; expected LEVEL[:MODE]"))
            #expect(result.stderr.contains("Batch job submission failed: Invalid generic resource (gres) specification"))
        }

        @Test func overrideOnABatchJobIsIgnoredWithANotice() throws {
            let result = try cluster.submitHeld(["-p", "batch", "--gpu-affinity=nvlink"])
            let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { cluster.cancel([id]) }
            #expect(result.status == 0)
            #expect(result.stderr.contains(
                "sbatch: topo_aware: --gpu-affinity ignored: partition batch is in preemptible class 'batch', not a preemptor class"))
            #expect(try cluster.job(id)["AdminComment"] == "topo_aware:preemptible=batch")
        }

        /// 200 seeded random submissions, valid and malformed: each is judged against
        /// `ExpectedVerdict`, what an administrator reading the documentation and this cluster's
        /// topo_aware.conf expects (written out, not computed by the plugin's policy code);
        /// garbage Slurm itself refuses is refused; the controller is up and answering afterwards.
        @Test func randomAndMalformedSubmissionsGetTheVerdictAnAdministratorExpects() throws {
            var rng = SplitMix64(seed: 0x70_70)
            var created: [String] = []
            defer { cluster.cancel(created) }
            var counts: [String: Int] = [:]
            for _ in 0..<200 {
                let sample = RandomSubmission.make(&rng)
                let result = try cluster.submitHeld(sample.options)
                let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                if result.status == 0 { created.append(id) }
                let expected = ExpectedVerdict(sample, on: cluster)
                counts[expected.kind, default: 0] += 1
                let what = "\(sample.options): \(result.stderr)"
                switch expected {
                case .refusedBySlurm:
                    #expect(result.status != 0, "Slurm accepted \(what)")
                case let .rejected(message):
                    #expect(result.status != 0, "accepted: \(what)")
                    #expect(result.stderr.contains("sbatch: error: \(message)"), "\(what)")
                case let .rejectedForTopology(message):
                    #expect(result.status != 0, "accepted: \(what)")
                    #expect(result.stderr.contains("sbatch: error: \(message)"), "\(what)")
                    #expect(result.stderr.contains("Requested node configuration is not available"), "\(what)")
                case let .accepted(tag, tresPerSocket, notice):
                    #expect(result.status == 0, "\(what)")
                    let job = try cluster.job(id)
                    #expect(job["AdminComment"] == tag, "\(what)")
                    if let tresPerSocket { #expect(job["TresPerSocket"] == tresPerSocket, "\(what)") }
                    if let notice { #expect(result.stderr.contains(notice), "\(what)") }
                }
            }
            for kind in ["refused by Slurm", "rejected", "rejected for topology", "shaped", "accepted"] {
                #expect(counts[kind, default: 0] >= 5, "only \(counts[kind, default: 0]) \(kind) in \(counts)")
            }
            #expect(try cluster.controllerIsUp())
        }

        /// An edit that breaks topo_aware.conf is logged with file and line and the last good
        /// configuration stays in force; a fixed file is picked up without restarting slurmctld.
        @Test func brokenConfigEditKeepsTheLastGoodConfiguration() throws {
            let path = cluster.topoAwareConf
            let original = try String(contentsOfFile: path, encoding: .utf8)
            defer { try? original.write(toFile: path, atomically: true, encoding: .utf8) }
            let offset = cluster.logSize()

            try (original + "\nLevle=nvlink\n").write(toFile: path, atomically: true, encoding: .utf8)
            let broken = try cluster.submitHeld(["-p", "infer"])
            let brokenID = broken.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { cluster.cancel([brokenID]) }
            #expect(broken.status == 0)
            #expect(try cluster.job(brokenID)["AdminComment"] == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed")
            let lineNumber = original.split(separator: "\n", omittingEmptySubsequences: false).count + 1
            #expect(cluster.logLines(from: offset).contains {
                $0.contains("error: job_submit/topo_aware: \(path):\(lineNumber):1: unknown key 'Levle'") && $0.contains("keeping the configuration loaded before")
            })

            try original.replacingOccurrences(of: "Level=nvlink", with: "Level=socket")
                .write(toFile: path, atomically: true, encoding: .utf8)
            let fixed = try cluster.submitHeld(["-p", "infer"])
            let fixedID = fixed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { cluster.cancel([fixedID]) }
            #expect(try cluster.job(fixedID)["AdminComment"] == "topo_aware:preemptor=inference,level=socket,mode=guaranteed")
            #expect(cluster.logLines(from: offset).contains { $0.contains("job_submit/topo_aware: reloaded \(path)") })
            #expect(try cluster.controllerIsUp())
        }
    }
}

/// One random sbatch call for the robustness test.
struct RandomSubmission {
    var options: [String]
    /// The partitions job_submit sees when Slurm itself has no objection; nil for submissions
    /// Slurm refuses on its own.
    var partitionsForModel: [String]?
    var qos: String?
    var affinity: String?

    static let validPieces = AffinityLevel.allCases.map(\.name) + PlacementMode.allCases.map(\.name)
        + ["nvlink:guaranteed", "socket:best-effort", "NVLink", "node:GUARANTEED"]
    static let junk = ["nvlnk", "", ":", "nvlink:", ":best-effort", "nvlink:guaranteed:x", "nvlink ",
                       "über", "a=b", "nvlink,socket", "--", "'; rm -rf /", "\\", "%s%s%n",
                       String(repeating: "x", count: 65), String(repeating: "nvlink", count: 1_000),
                       "line\nbreak", "tab\there"]

    /// Requests Slurm refuses itself (unknown partition or gres, unparsable values). Slurm
    /// 24.11 and later accept `--gres=gpu:1:2:3` (see `ExpectedVerdict`).
    static let refused = [["-p", "nosuchpartition"], ["-p", "infer,nosuch"], ["--time=notatime"],
                          ["--mem=-5"], ["--ntasks=0"], ["--gres=nosuchgres:1"], ["--begin=garbage"],
                          ["--gres=gpu:1:2:3"]]
    static let acceptedFrom2411 = ["--gres=gpu:1:2:3"]
    /// Requests Slurm accepts (and leaves pending, EnforcePartLimits=NO) though they cannot run
    /// here: they still pass through job_submit.
    static let odd = [["-N", "100"], ["--mem=99999999"], ["-c", "1000"], ["--gres=gpu:999"],
                      ["--gres=gpu:-1"], ["--job-name=\u{1}%n%s"], ["--comment=x y\tz"]]

    static func make(_ rng: inout SplitMix64) -> RandomSubmission {
        var options: [String] = []
        var partitions: [String]? = ["batch"]
        var qos: String? = nil
        switch rng.next() % 6 {
        case 0: options += ["-p", "batch"]
        case 1: options += ["-p", "infer"]; partitions = ["infer"]
        case 2: options += ["-p", "batch,infer"]; partitions = ["batch", "infer"]
        case 3: break  // default partition
        case 4:
            options += odd[Int(rng.next() % UInt64(odd.count))]
            if rng.next() % 2 == 0 { options += ["--qos=nosuchqos"]; qos = "nosuchqos" }
        default:
            options += refused[Int(rng.next() % UInt64(refused.count))]
            partitions = nil
        }
        // A later --gres would replace a bad one, so only plain submissions get a random size.
        if options.allSatisfy({ !$0.hasPrefix("--gres") }), partitions != nil, rng.next() % 2 == 0 {
            options.append("--gres=gpu:\(1 + rng.next() % 8)")
        }
        var affinity: String? = nil
        switch rng.next() % 4 {
        case 0: break
        case 1, 2: affinity = validPieces[Int(rng.next() % UInt64(validPieces.count))]
        default: affinity = junk[Int(rng.next() % UInt64(junk.count))]
        }
        if let affinity { options.append("--gpu-affinity=\(affinity)") }
        // A value the SPANK plugin cuts at 4096 bytes is still refused for its length, with
        // the same message (it quotes only the first 64 characters).
        return RandomSubmission(options: options, partitionsForModel: partitions, qos: qos, affinity: affinity)
    }
}


/// What a Slurm administrator expects job_submit/topo_aware to answer on the test cluster, read
/// from the documentation and the cluster's topo_aware.conf (`PreemptorClass=inference Partitions=infer
/// Level=nvlink Mode=guaranteed`, `PreemptibleClass=batch Partitions=batch`, user overrides and
/// shaping on) and its topology (NVLink islands of 4 GPUs, one per socket: at every level but
/// `node` the largest group is 4 GPUs and exactly one socket). Written out case by case, apart
/// from the plugin's own policy code, so that the plugin can disagree with it.
enum ExpectedVerdict {
    case refusedBySlurm
    case rejected(message: String)
    case rejectedForTopology(message: String)
    /// AdminComment, TresPerSocket when shaped, a notice sbatch prints.
    case accepted(tag: String, tresPerSocket: String?, notice: String?)

    var kind: String {
        switch self {
        case .refusedBySlurm: "refused by Slurm"
        case .rejected: "rejected"
        case .rejectedForTopology: "rejected for topology"
        case let .accepted(_, shaped, _): shaped == nil ? "accepted" : "shaped"
        }
    }

    /// Each `--gpu-affinity` value the samples use: the level and mode it sets (nil: the
    /// class's), or nil for a value that is not `LEVEL[:MODE]` or `MODE`.
    static let overrides: [String: (level: String?, mode: String?)?] = [
        "nvlink": ("nvlink", nil), "pcie-switch": ("pcie-switch", nil), "host-bridge": ("host-bridge", nil),
        "numa": ("numa", nil), "socket": ("socket", nil), "node": ("node", nil),
        "guaranteed": (nil, "guaranteed"), "best-effort": (nil, "best-effort"),
        "nvlink:guaranteed": ("nvlink", "guaranteed"), "socket:best-effort": ("socket", "best-effort"),
        "NVLink": ("nvlink", nil), "node:GUARANTEED": ("node", "guaranteed"),
    ]

    init(_ sample: RandomSubmission, on cluster: Cluster) {
        // Slurm 24.11+ takes `--gres=gpu:1:2:3` (22.05 refuses it): to the default partition.
        let acceptedByThisRelease = cluster.releaseAtLeast(24, 11) && sample.options.contains { RandomSubmission.acceptedFrom2411.contains($0) }
        guard let partitions = sample.partitionsForModel ?? (acceptedByThisRelease ? ["batch"] : nil) else {
            self = .refusedBySlurm
            return
        }
        var override: (level: String?, mode: String?)?
        if let raw = sample.affinity {
            // Anything not in the table is malformed: refused whatever the job's class.
            guard let entry = Self.overrides[raw], let parsed = entry else {
                self = .rejected(message: "topo_aware: invalid --gpu-affinity=")
                return
            }
            override = parsed
        }
        // The first class line listing any of the job's partitions; none given: the default
        // partition, batch.
        guard partitions.contains("infer") else {
            self = .accepted(tag: "topo_aware:preemptible=batch", tresPerSocket: nil,
                             notice: override == nil ? nil
                                 : "topo_aware: --gpu-affinity ignored: partition batch is in preemptible class 'batch', not a preemptor class")
            return
        }
        let level = override?.level ?? "nvlink"
        let mode = override?.mode ?? "guaranteed"
        let tag = "topo_aware:preemptor=inference,level=\(level),mode=\(mode)" + (override == nil ? "" : ",override=user")
        let gpus = sample.options.last { $0.hasPrefix("--gres=gpu:") }.flatMap { Int($0.dropFirst("--gres=gpu:".count)) }
        guard let gpus, mode == "guaranteed", level != "node" else {
            // No GPUs asked, best-effort, or node level: nothing to check or shape.
            self = .accepted(tag: tag, tresPerSocket: nil, notice: nil)
            return
        }
        if gpus > 4 {
            self = .rejectedForTopology(message: "topo_aware: \(gpus) GPUs per node can never be \(level)-aligned on this cluster")
        } else {
            self = .accepted(tag: tag + ",shape=gpus-per-socket:\(gpus)", tresPerSocket: "\(cluster.tresGresPrefix)gpu:\(gpus)",
                             notice: "topo_aware: GPU request shaped to --gpus-per-socket=\(gpus) --sockets-per-node=1")
        }
    }
}
