import CSlurmMock
import CSlurmShim
import Foundation
import Testing

extension MockedSlurm {
    /// The job_submit plugin through its C entry points (CSlurmShim_job_submit*, which Slurm's
    /// symbols forward to), against the mocked Slurm API. Serialized: the mock's state is global.
    @Suite struct JobSubmitShimTests {
        static let config = """
            PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed
            PreemptibleClass=batch Partitions=batch
            """

        // MARK: init

        @Test func initLoadsTheConfigAndLogsIt() throws {
            let mock = try MockSlurm(config: Self.config)
            #expect(CSlurmShim_job_submit_init() == SLURM_SUCCESS)
            #expect(mock.logs.contains(
                "info: job_submit/topo_aware: init: loaded \(mock.configPath): 1 preemptor class (inference), 1 preemptible class (batch)"))
            _ = CSlurmShim_job_submit_fini()
            #expect(mock.finish(fini: false) == .clean)  // and removes the temporary directory
        }

        @Test func initFindsTheConfigBesideSlurmConf() throws {
            let mock = try MockSlurm(config: Self.config, viaEnvironment: false)
            #expect(CSlurmShim_job_submit_init() == SLURM_SUCCESS)
            #expect(mock.logs.contains { $0.contains("loaded \(mock.directory)/topo_aware.conf") })
            _ = CSlurmShim_job_submit_fini()
            #expect(mock.finish(fini: false) == .clean)  // and removes the temporary directory
        }

        @Test func initFailsOnABrokenConfigNamingFileAndLine() throws {
            let mock = try MockSlurm(config: "PreemptorClass=inference Partitions=infer\nDefaultLevel=nvlnk\n")
            #expect(CSlurmShim_job_submit_init() == SLURM_ERROR)
            #expect(mock.logs == [
                "error: job_submit/topo_aware: init: \(mock.configPath):2:14: unknown level 'nvlnk' for DefaultLevel (expected one of nvlink, pcie-switch, host-bridge, numa, socket, node)",
            ])
            #expect(mock.finish(fini: false) == .clean)  // and removes the temporary directory
        }

        @Test func initFailsOnAMissingConfig() throws {
            let mock = try MockSlurm(config: nil)
            #expect(CSlurmShim_job_submit_init() == SLURM_ERROR)
            #expect(mock.logs == ["error: job_submit/topo_aware: init: \(mock.configPath): cannot open: No such file or directory"])
            #expect(mock.finish(fini: false) == .clean)  // and removes the temporary directory
        }

        @Test func initLogsConfigWarnings() throws {
            let mock = try MockSlurm(config: "PreemptibleClass=batch Partitions=batch\n")
            #expect(CSlurmShim_job_submit_init() == SLURM_SUCCESS)
            #expect(mock.logs.contains("info: job_submit/topo_aware: init: warning: \(mock.configPath):1:1: no PreemptorClass line: no job will be treated as a preemptor"))
            _ = CSlurmShim_job_submit_fini()
            #expect(mock.finish(fini: false) == .clean)  // and removes the temporary directory
        }

        // MARK: job_submit

        @Test(arguments: [
            ("batch", nil, "topo_aware:preemptible=batch"),
            ("infer", nil, "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed"),
            ("infer", "pcie-switch:best-effort", "topo_aware:preemptor=inference,level=pcie-switch,mode=best-effort,override=user"),
            ("debug", nil, nil),
        ] as [(String, String?, String?)])
        func classifiesIntoAdminComment(partition: String, affinity: String?, expected: String?) throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            let job = JobDesc(partition: partition, spankEnv: affinity.map { ["TOPO_AWARE_GPU_AFFINITY=\($0)"] } ?? [])
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.adminComment == expected)
            #expect(job.errMsg == nil)
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func malformedOverrideIsRejectedWithMessageAndCode() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            let job = JobDesc(partition: "infer", spankEnv: ["OTHER=1", "TOPO_AWARE_GPU_AFFINITY=nvlnk"])
            #expect(job.submit() == Int32(ESLURM_INVALID_GRES.rawValue))
            #expect(job.errMsg == "topo_aware: invalid --gpu-affinity=nvlnk: 'nvlnk' is neither a level nor a mode; expected LEVEL[:MODE] with LEVEL one of nvlink, pcie-switch, host-bridge, numa, socket, node and MODE one of guaranteed, best-effort")
            #expect(job.adminComment == nil)
            #expect(mock.logs.contains { $0.hasPrefix("info: job_submit/topo_aware: job_submit: rejected uid=1000 name=test partition=infer qos=-: topo_aware: invalid --gpu-affinity=nvlnk") })
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func disabledOverrideIsRejectedWithAccessDenied() throws {
            let mock = try MockSlurm(config: Self.config + "\nAllowUserOverride=no\n", initialize: true)
            let job = JobDesc(partition: "infer", spankEnv: ["TOPO_AWARE_GPU_AFFINITY=node"])
            #expect(job.submit() == Int32(ESLURM_ACCESS_DENIED.rawValue))
            #expect(job.errMsg?.contains("AllowUserOverride=no") == true)
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func noticeIsShownForAnIgnoredOverride() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            let job = JobDesc(partition: "batch", spankEnv: ["TOPO_AWARE_GPU_AFFINITY=nvlink"])
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.errMsg == "topo_aware: --gpu-affinity ignored: partition batch is in preemptible class 'batch', not a preemptor class")
            #expect(job.adminComment == "topo_aware:preemptible=batch")
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func keepsAdministratorCommentAndOtherPluginsMessages() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            let job = JobDesc(partition: "batch", adminComment: "ticket-42",
                              spankEnv: ["TOPO_AWARE_GPU_AFFINITY=nvlnk"], errMsg: "lua: first")
            #expect(job.submit() == Int32(ESLURM_INVALID_GRES.rawValue))
            #expect(job.errMsg?.hasPrefix("lua: first\ntopo_aware: invalid --gpu-affinity=nvlnk") == true)
            #expect(job.adminComment == "ticket-42")
            let accepted = JobDesc(partition: "batch", adminComment: "ticket-42")
            #expect(accepted.submit() == SLURM_SUCCESS)
            #expect(accepted.adminComment == "ticket-42 topo_aware:preemptible=batch")
            job.release()
            accepted.release()
            #expect(mock.finish() == .clean)
        }

        @Test func usesSlurmctldsDefaultPartitionWhenNoneIsGiven() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            CSlurmMock_set_default_partition("infer")
            let job = JobDesc(partition: nil)
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.adminComment == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed")
            job.release()
            #expect(mock.finish() == .clean)
        }

        @Test func tracesClassificationOnlyAtDebugLevel() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            let quiet = JobDesc(partition: "infer")
            _ = quiet.submit()
            #expect(!mock.logs.contains { $0.hasPrefix("debug:") })
            CSlurmMock_set_log_level(5)
            let traced = JobDesc(partition: "infer")
            _ = traced.submit()
            #expect(mock.logs.last == "debug: job_submit/topo_aware: job_submit: uid=1000 name=test partition=infer qos=- -> preemptor inference level=nvlink mode=guaranteed")
            quiet.release()
            traced.release()
            #expect(mock.finish() == .clean)
        }

        @Test func nullJobDescriptionIsLetThrough() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            #expect(CSlurmShim_job_submit(nil, 0, nil) == SLURM_SUCCESS)
            #expect(CSlurmShim_job_modify(nil, nil, 0, nil) == SLURM_SUCCESS)
            #expect(mock.logs.filter { $0.hasPrefix("error:") }.count == 2)
            #expect(mock.finish() == .clean)
        }

        @Test func jobsAreLetThroughAfterFini() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            _ = CSlurmShim_job_submit_fini()
            let job = JobDesc(partition: "infer", spankEnv: ["TOPO_AWARE_GPU_AFFINITY=nvlnk"])
            #expect(job.submit() == SLURM_SUCCESS)
            #expect(job.adminComment == nil)
            #expect(mock.logs.last == "error: job_submit/topo_aware: job_submit: no configuration loaded; job let through unclassified")
            job.release()
            #expect(mock.finish(fini: false) == .clean)
        }

        @Test func hostileFieldsNeverTrap() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            let huge = String(repeating: "p", count: 70_000)
            let manyEnv = (0..<10_000).map { "X\($0)=\($0)" } + ["TOPO_AWARE_GPU_AFFINITY=nvlink"]
            let cases: [JobDesc] = [
                JobDesc(partition: huge),
                JobDesc(partition: ",,,"),
                JobDesc(partition: "infer", qos: "\u{1}\u{7f}"),
                JobDesc(partition: "infer", spankEnv: manyEnv),
                JobDesc(partition: "infer", spankEnv: ["TOPO_AWARE_GPU_AFFINITY=\(huge)"]),
                JobDesc(partition: "infer", spankEnv: ["TOPO_AWARE_GPU_AFFINITY=nv\u{1}link"]),
                JobDesc(partition: "infer", spankEnv: ["TOPO_AWARE_GPU_AFFINITY"]),
                JobDesc(partition: "infer", adminComment: huge),
            ]
            for job in cases { _ = job.submit() }
            #expect(cases[0].adminComment == nil)                // too long to read: unknown partition
            #expect(cases[3].adminComment == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed") // entries past the bound are not read
            #expect(cases[4].errMsg?.contains("longer than 64 characters") == true)
            #expect(cases[5].errMsg?.contains("nv\\u{1}link") == true)
            #expect(cases[6].adminComment == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed")
            for job in cases { job.release() }
            #expect(mock.finish() == .clean)
        }

        // MARK: reload

        @Test func reloadsAnEditedConfigAndKeepsTheLastGoodOneOnErrors() throws {
            let mock = try MockSlurm(config: Self.config, initialize: true)
            try mock.rewrite("PreemptorClass=inference Partitions=batch Level=socket\n")
            let first = JobDesc(partition: "batch")
            _ = first.submit()
            #expect(first.adminComment == "topo_aware:preemptor=inference,level=socket,mode=guaranteed")
            #expect(mock.logs.contains("info: job_submit/topo_aware: reloaded \(mock.configPath): 1 preemptor class (inference), 0 preemptible classes"))

            try mock.rewrite("PreemptorClass=inference Partitions=batch Level=socket\nBogus=1\n")
            let second = JobDesc(partition: "batch")
            let third = JobDesc(partition: "batch")
            _ = second.submit()
            _ = third.submit()
            #expect(second.adminComment == first.adminComment)
            #expect(third.adminComment == first.adminComment)
            let errors = mock.logs.filter { $0.hasPrefix("error:") }
            #expect(errors == ["error: job_submit/topo_aware: \(mock.configPath):2:1: unknown key 'Bogus' (expected DefaultLevel, DefaultMode, AllowUserOverride, ShapeRequests, BasePolicy, PlanTimeout, PlanTimeBudget, StatsInterval, DecisionLog, DecisionLogMaxSize, DecisionLogKeep, CostOrder, RoughWorkTolerance, PreemptorClass or PreemptibleClass); keeping the configuration loaded before"])

            try FileManager.default.removeItem(atPath: mock.configPath)
            let fourth = JobDesc(partition: "batch")
            _ = fourth.submit()
            #expect(fourth.adminComment == first.adminComment)
            #expect(mock.logs.last == "error: job_submit/topo_aware: \(mock.configPath): No such file or directory; keeping the configuration loaded before")
            for job in [first, second, third, fourth] { job.release() }
            #expect(mock.finish() == .clean)
        }
    }
}
