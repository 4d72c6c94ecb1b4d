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

        /// 200 seeded random submissions, valid and malformed: every one the plugin decides comes
        /// out exactly as the engine's model says, garbage Slurm itself refuses is refused, and the
        /// controller is up and answering afterwards.
        @Test func randomAndMalformedSubmissionsMatchTheModelAndTheControllerSurvives() throws {
            let config = try TopoAwareConfig.parse(String(contentsOfFile: cluster.topoAwareConf, encoding: .utf8),
                                                   file: cluster.topoAwareConf).config
            let policy = SubmitPolicy(config: config)
            let etc = cluster.directory + "/etc/"
            let topology = TopologySummary.build(
                slurmNodes: try SlurmConfNodes.parse(String(contentsOfFile: etc + "slurm.conf", encoding: .utf8), file: "slurm.conf"),
                gresConf: try GresConf.parse(String(contentsOfFile: etc + "gres.conf", encoding: .utf8), file: "gres.conf")).summary
            let topologyPolicy = TopologyPolicy(summary: topology, shapeRequests: config.shapeRequests)
            var shaped = 0
            var topologyRejected = 0
            var rng = SplitMix64(seed: 0x70_70)
            var created: [String] = []
            defer { cluster.cancel(created) }
            var decided = 0
            var slurmRefused = 0

            for _ in 0..<200 {
                let sample = RandomSubmission.make(&rng)
                let result = try cluster.submitHeld(sample.options)
                let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                if result.status == 0 { created.append(id) }
                guard let partitions = sample.partitionsForModel else {
                    // Input Slurm rejects on its own (bad partition, bad gres, ...).
                    #expect(result.status != 0, "Slurm accepted \(sample.options)")
                    slurmRefused += 1
                    continue
                }
                decided += 1
                let job = SubmittedJob(partitions: partitions, qos: sample.qos, affinityOverride: sample.affinity)
                switch policy.evaluate(job) {
                case let .accept(classification, notice):
                    let gres = sample.options.last { $0.hasPrefix("--gres=") }.map { "gres:" + $0.dropFirst("--gres=".count) }
                    switch topologyPolicy.decide(classification, GPURequest(tresPerNode: gres)) {
                    case .unchanged:
                        #expect(result.status == 0, "\(sample.options): \(result.stderr)")
                        #expect(try cluster.job(id)["AdminComment"] == AdminCommentTag.format(classification),
                                "\(sample.options)")
                    case let .shape(request):
                        shaped += 1
                        #expect(result.status == 0, "\(sample.options): \(result.stderr)")
                        let job = try cluster.job(id)
                        #expect(job["AdminComment"] == AdminCommentTag.format(classification, shape: request.tag),
                                "\(sample.options)")
                        #expect(job["TresPerSocket"] == request.tresPerSocket)
                        #expect(result.stderr.contains(request.notice))
                    case let .reject(message):
                        topologyRejected += 1
                        #expect(result.status != 0, "\(sample.options) was accepted")
                        #expect(result.stderr.contains("sbatch: error: \(message)"), "\(sample.options): \(result.stderr)")
                        #expect(result.stderr.contains("Requested node configuration is not available"))
                    }
                    if let notice { #expect(result.stderr.contains(notice), "\(sample.options)") }
                case let .reject(_, message):
                    #expect(result.status != 0, "\(sample.options) was accepted")
                    #expect(result.stderr.contains("sbatch: error: \(message)"), "\(sample.options): \(result.stderr)")
                }
            }
            #expect(decided > 100 && slurmRefused > 10, "decided \(decided), refused by Slurm \(slurmRefused)")
            #expect(shaped > 5 && topologyRejected > 5, "shaped \(shaped), rejected for topology \(topologyRejected)")
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

    /// Requests Slurm refuses itself (unknown partition or gres, unparsable values).
    static let refused = [["-p", "nosuchpartition"], ["-p", "infer,nosuch"], ["--time=notatime"],
                          ["--mem=-5"], ["--ntasks=0"], ["--gres=nosuchgres:1"], ["--begin=garbage"],
                          ["--gres=gpu:1:2:3"]]
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

