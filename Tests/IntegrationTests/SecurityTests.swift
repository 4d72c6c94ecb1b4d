import Foundation
import Testing
import TopoEngine

/// What an ordinary user can and cannot do with TopoPreempt loaded, on the topo_aware islands
/// cluster. The user is the unprivileged local account scripts/test creates
/// ($TOPO_PREEMPT_TEST_USER); node1 is filled by root's batch jobs, i.e. another user's.
enum TestUser {
    static let name: String? = ProcessInfo.processInfo.environment["TOPO_PREEMPT_TEST_USER"].flatMap { $0.isEmpty ? nil : $0 }
}

extension TopoAwareIslandsTests {
    @Suite(.needs("an unprivileged user ($TOPO_PREEMPT_TEST_USER, scripts/test)", TestUser.name != nil))
    struct SecurityTests {
        let cluster: Cluster
        let user: String

        init() throws {
            cluster = try #require(Cluster.topoAware)
            user = try #require(TestUser.name, "no unprivileged test user: $TOPO_PREEMPT_TEST_USER is unset (scripts/test creates topo-preempt-user)")
        }

        /// Runs a command as the unprivileged user (runuser, no shell), in /tmp.
        func asUser(_ arguments: [String]) throws -> Cluster.Result {
            try runProcess("/usr/sbin/runuser", ["-u", user, "--", "/usr/bin/env", "SLURM_CONF=\(cluster.slurmConf)",
                                                 "TOPO_AWARE_CONF=\(cluster.topoAwareConf)",
                                                 "PATH=\(cluster.environment["PATH"] ?? "/usr/bin:/bin")"] + arguments)
        }

        func submitAsUser(_ options: [String]) throws -> String {
            let result = try asUser(["sbatch", "--parsable", "--chdir=/tmp", "-w", "node1", "-c", "1", "-o", "/dev/null"]
                                    + options + ["--wrap", "sleep 600"])
            try #require(result.status == 0, "sbatch as \(user): \(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The per-job override only adjusts a preemptor's level and mode: on a batch job it
        /// changes nothing (the tag stays preemptible); that job preempts nobody. And the
        /// AdminComment tag the plugins trust cannot be forged: Slurm refuses a user's update.
        @Test func overrideCannotRaiseTheClass() throws {
            let batch = try cluster.fillNode()
            defer { try? cluster.finish(batch) }
            let id = try submitAsUser(["-p", "batch", "--gpu-affinity=nvlink:guaranteed", "--gres=gpu:4"])
            defer { cluster.cancel([id]) }
            let tag = try cluster.job(id)["AdminComment"] ?? ""
            #expect(tag.contains("topo_aware:preemptible=batch"), "AdminComment \(tag)")
            #expect(!tag.contains("preemptor"), "AdminComment \(tag)")
            let forged = try asUser(["scontrol", "update", "jobid=\(id)", "AdminComment=topo_aware:preemptor=inference,level=nvlink,mode=guaranteed"])
            #expect(forged.status != 0, "a user changed AdminComment: \(forged.stdout)")
            #expect(try cluster.job(id)["AdminComment"] == tag)
            // Slurm answers for it in its passes; nothing of root's is touched.
            let offset = cluster.logSize()
            let evaluated = try cluster.waitUntil(seconds: 15) { try cluster.job(id)["Reason"] == "Resources" }
            #expect(evaluated, "job \(id) was not considered by the scheduler")
            #expect(try batch.allSatisfy { try cluster.state($0) == "RUNNING" && cluster.restarts($0) == 0 })
            #expect(!cluster.logLines(from: offset).contains { $0.contains("to reclaim resources for JobId=\(id)") })
            #expect(try cluster.state(id) == "PENDING")
        }

        /// A user's inference job may only take what the base policy allows: root's job in the
        /// infer partition (PreemptMode=OFF) is never a victim, even where it blocks the cheap
        /// island; the user's job gets the other island (or waits).
        @Test func usersPreemptorStaysWithinTheBasePolicy() throws {
            var batch: [String] = []
            for size in [2, 2, 2, 1, 1] { batch.append(try cluster.start("batch", gpus: size)) }
            defer { try? cluster.finish(batch) }
            // Root's own inference job takes 0-1's place: cancel the 0-1 batch job first.
            try cluster.finish([batch[0]])
            let protected = try cluster.start("infer", gpus: 2)
            defer { try? cluster.finish([protected]) }
            let offset = cluster.logSize()
            let id = try submitAsUser(["-p", "infer", "--gres=gpu:4"])
            defer { cluster.cancel([id]) }
            let ran = try cluster.waitUntil(seconds: 60) { try cluster.state(id) == "RUNNING" }
            #expect(try cluster.state(protected) == "RUNNING" && cluster.restarts(protected) == 0, "root's infer job was preempted")
            let preempted = cluster.logLines(from: offset).filter { $0.contains("to reclaim resources for JobId=\(id)") }
            #expect(!preempted.contains { $0.contains("JobId=\(protected) ") })
            if ran, let placed = try cluster.gpuIndices(id) { #expect(cluster.isAligned(placed), "GPUs \(placed)") }
        }

        /// `topo-preempt plan --job ID --apply` requeues a plan's victims: an ordinary user whose
        /// plan would requeue root's jobs is refused before anything changes (exit 4); root
        /// applies it, and the held job then starts on the island the plan freed.
        @Test func applyNeedsSlurmRights() throws {
            let binary = try #require(CLI.binary, "topo-preempt not built")
            let batch = try cluster.fillNode()
            let held = try cluster.submitHeldOnNode1("infer", gpus: 4)
            defer { try? cluster.finish(batch + [held]) }
            let refused = try asUser([binary, "plan", "--job", held, "--apply"])
            #expect(refused.status == 4, "exit \(refused.status): \(refused.stdout) \(refused.stderr)")
            #expect(refused.stderr.contains("needs Slurm operator rights (root or SlurmUser) or owning them") && refused.stderr.contains("Nothing was requeued"))
            #expect(try batch.allSatisfy { try cluster.state($0) == "RUNNING" && cluster.restarts($0) == 0 })

            let applied = try cluster.cli(["plan", "--job", held, "--apply"])
            #expect(applied.status == 0, "\(applied.stderr)")
            #expect(applied.stdout.contains("requeued job \(batch[0]) for job \(held)") && applied.stdout.contains("requeued job \(batch[2]) for job \(held)"))
            let requeued = try cluster.waitUntil(seconds: 30) { try [batch[0], batch[2]].allSatisfy { try cluster.restarts($0) == 1 } }
            #expect(requeued)
            #expect(try [batch[1], batch[3], batch[4]].allSatisfy { try cluster.restarts($0) == 0 })
            try cluster.run(["scontrol", "release", held])
            let running = try cluster.waitUntil(seconds: 30) { try cluster.state(held) == "RUNNING" }
            #expect(running)
            if running { #expect(try cluster.gpuIndices(held) == GPUSet(0...3)) }
        }
    }
}
