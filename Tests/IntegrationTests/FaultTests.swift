import Foundation
import Testing
import TopoEngine

/// Faults injected into the topo_aware islands cluster while a plan is being carried out. The
/// victims are `grace` partition jobs (GraceTime, see scripts/slurm-local) that ignore SIGTERM,
/// so they drain for the whole grace time before Slurm requeues them: the window each fault
/// hits. Every test writes down the outcome it expects and checks all of it.
extension TopoAwareIslandsTests {
    @Suite struct Faults {
        let cluster: Cluster

        init() throws { cluster = try #require(Cluster.topoAware) }

        /// node1 filled 2 2 2 1 1 with draining-capable jobs, a 4-GPU infer job planned and its
        /// victims signalled (PreemptTime set), still running in their grace time.
        struct Drain {
            var batch: [String]
            var infer: String
            var victims: [String]
            var offset: UInt64
            var others: [String] { batch.filter { !victims.contains($0) } }
        }

        func startDrain() throws -> Drain {
            var batch: [String] = []
            for size in [2, 2, 2, 1, 1] {
                let result = try cluster.run(["sbatch", "--parsable", "-p", "grace", "-w", "node1", "-c", "1", "--gres=gpu:\(size)",
                                              "-o", "/dev/null", "--wrap", "trap '' TERM; sleep 600"])
                try #require(result.status == 0, "\(result.stderr)")
                let id = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                batch.append(id)
                try #require(try cluster.waitUntil(seconds: 30) { try cluster.state(id) == "RUNNING" }, "job \(id) did not start")
            }
            let offset = cluster.logSize()
            let submitted = try cluster.run(["sbatch", "--parsable", "-p", "infer", "-w", "node1", "-c", "1", "--gres=gpu:4",
                                             "-o", "/dev/null", "--wrap", "sleep 600"])
            try #require(submitted.status == 0, "\(submitted.stderr)")
            let infer = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            var victims: [String] = []
            let planned = try cluster.waitUntil(seconds: 30) {
                guard let line = cluster.logLines(from: offset).first(where: { $0.contains("preempt/topo_aware: JobId=\(infer) plan node1 ") }),
                      let range = line.range(of: #"victims=[0-9,]+"#, options: .regularExpression)
                else { return false }
                victims = line[range].dropFirst("victims=".count).split(separator: ",").map(String.init)
                return try victims.allSatisfy { try preemptTime($0) != nil }
            }
            try #require(planned, "no plan with signalled victims for \(infer); log: \(cluster.logLines(from: offset).suffix(10))")
            return Drain(batch: batch, infer: infer, victims: victims, offset: offset)
        }

        /// `PreemptTime` of a job (nil: not signalled for preemption).
        func preemptTime(_ id: String) throws -> String? {
            let value = try cluster.job(id)["PreemptTime"]
            return value == nil || value == "None" || value == "Unknown" ? nil : value
        }

        /// Jobs slurmctld preempted for `infer` since `offset` ("preempted JobId=N has been requeued ...").
        func preemptedFor(_ infer: String, since offset: UInt64) -> Set<String> {
            var ids = Set<String>()
            for line in cluster.logLines(from: offset) where line.contains("to reclaim resources for JobId=\(infer)") {
                if let range = line.range(of: #"preempted JobId=[0-9]+"#, options: .regularExpression) {
                    ids.insert(String(line[range].dropFirst("preempted JobId=".count)))
                }
            }
            return ids
        }

        /// What every drain scenario must leave: victims requeued once (none cancelled), every
        /// other job running untouched, nothing preempted for the infer job beyond the plan.
        func expectPlanCarriedOut(_ drain: Drain, requeued: [String]? = nil,
                                  sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            for victim in requeued ?? drain.victims {
                let done = try cluster.waitUntil(seconds: 60) { try cluster.restarts(victim) == 1 }
                #expect(done, "victim \(victim) was not requeued", sourceLocation: sourceLocation)
                // Requeued: pending again (COMPLETING while its processes end), never ended.
                let state = try cluster.state(victim)
                #expect(["PENDING", "COMPLETING", "REQUEUED", "CONFIGURING", "RUNNING"].contains(state),
                        "victim \(victim) lost: \(state.isEmpty ? "gone" : state)", sourceLocation: sourceLocation)
            }
            for id in drain.others {
                #expect(try cluster.state(id) == "RUNNING", "non-victim \(id)", sourceLocation: sourceLocation)
                #expect(try cluster.restarts(id) == 0, "non-victim \(id) was preempted", sourceLocation: sourceLocation)
            }
            #expect(preemptedFor(drain.infer, since: drain.offset).isSubset(of: Set(drain.victims)),
                    "jobs outside the plan \(drain.victims) preempted: \(preemptedFor(drain.infer, since: drain.offset))",
                    sourceLocation: sourceLocation)
            #expect(try cluster.controllerIsUp(), sourceLocation: sourceLocation)
        }

        func expectInferAligned(_ drain: Drain, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            let running = try cluster.waitUntil(seconds: 90) { try cluster.state(drain.infer) == "RUNNING" }
            #expect(running, "infer job \(drain.infer) did not start", sourceLocation: sourceLocation)
            if running {
                #expect(try cluster.gpuIndices(drain.infer) == GPUSet(0...3), sourceLocation: sourceLocation)
            }
        }

        func finish(_ drain: Drain) throws {
            try cluster.finish(drain.batch + [drain.infer])
        }

        // MARK: - The faults

        /// slurmctld restarted while the victims drain. Expected: the restarted controller (kept
        /// plans are in memory only) sees the victims' PreemptTime, plans with their GPUs as
        /// freeing ("waits for draining jobs") and preempts nothing new; the victims are requeued
        /// at the end of their grace time and the infer job starts on 0-3.
        @Test func controllerRestartWhileVictimsDrain() throws {
            let drain = try startDrain()
            defer { try? finish(drain) }
            let log = cluster.directory + "/log/decisions.jsonl"
            func records() -> [[String: Any]] {
                ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
                }
            }
            let planned = cluster.waitUntil(seconds: 10) {
                records().contains { $0["event"] as? String == "plan" && $0["job"] as? Int == Int(drain.infer) }
            }
            #expect(planned, "no plan record for \(drain.infer) before the restart")
            let before = records().count
            try cluster.restartController()
            try expectInferAligned(drain)
            try expectPlanCarriedOut(drain)
            #expect(cluster.logLines(from: drain.offset).contains { $0.contains("JobId=\(drain.infer) waits for draining jobs to free node1 gpus=0-3") })
            // The decision log survives the restart: the records before it are kept, the
            // restarted controller appends (its writer numbers from 1 again) and records the wait.
            let after = records()
            #expect(after.count > before, "\(after.count) records after the restart, \(before) before")
            #expect(after.prefix(before).contains { $0["event"] as? String == "plan" && $0["job"] as? Int == Int(drain.infer) })
            let restarted = after.dropFirst(before)
            #expect(restarted.contains { $0["event"] as? String == "wait" && $0["job"] as? Int == Int(drain.infer) && $0["reason"] as? String == "victims-draining" },
                    "\(restarted)")
            #expect(restarted.contains { $0["seq"] as? Int == 1 })
        }

        /// The slurmd of the victims' node killed (SIGKILL) during the drain, restarted when the
        /// grace time is over. Expected: the job steps outlive slurmd; slurmctld requeues the
        /// victims, its terminate requests reach the node once slurmd is back, and the infer job
        /// starts on 0-3 with no other victim.
        @Test func slurmdKilledWhileVictimsDrain() throws {
            let drain = try startDrain()
            defer { try? finish(drain) }
            try cluster.killSlurmd("node1")
            let requeued = try cluster.waitUntil(seconds: 60) {
                try drain.victims.allSatisfy { try cluster.restarts($0) == 1 }
            }
            #expect(requeued, "victims not requeued while slurmd was down")
            try cluster.startSlurmd("node1")
            try expectInferAligned(drain)
            try expectPlanCarriedOut(drain)
        }

        /// node1 set DRAIN mid-plan. Expected: the plan is dropped ("node node1 is unavailable"),
        /// nothing more is preempted while it is drained and the infer job waits; the victims
        /// already signalled are requeued when their grace ends (Slurm cannot take a signal
        /// back); after `resume` the infer job starts on 0-3.
        @Test func nodeDrainedMidPlan() throws {
            let drain = try startDrain()
            defer {
                _ = try? cluster.run(["scontrol", "update", "nodename=node1", "state=resume"])
                try? finish(drain)
            }
            try cluster.run(["scontrol", "update", "nodename=node1", "state=drain", "reason=topo-preempt-fault-test"])
            try expectPlanCarriedOut(drain)
            #expect(try cluster.state(drain.infer) == "PENDING")
            #expect(cluster.logLines(from: drain.offset).contains {
                $0.contains("preempt/topo_aware: JobId=\(drain.infer) plan node1 ") && $0.contains("dropped: node node1 is unavailable")
            })
            try cluster.run(["scontrol", "update", "nodename=node1", "state=resume"])
            try expectInferAligned(drain)
            try expectPlanCarriedOut(drain)
        }

        /// The infer job cancelled while its victims drain. Expected: no further preemption for
        /// it; the two signalled victims are requeued at the end of their grace time (Slurm
        /// cannot take the signal back), the other three jobs are untouched.
        @Test func preemptorCancelledWhileVictimsDrain() throws {
            let drain = try startDrain()
            defer { try? finish(drain) }
            let cancelledAt = cluster.logSize()
            cluster.cancel([drain.infer])
            try expectPlanCarriedOut(drain)
            #expect(!cluster.logLines(from: cancelledAt).contains { $0.contains("preempt/topo_aware: JobId=\(drain.infer) plan ") },
                    "the cancelled job was planned again")
        }

        /// A victim cancelled by its user during the drain. Expected: it ends CANCELLED (the
        /// user's choice, not ours), the other victim is requeued, no job replaces it as a
        /// victim, and the infer job starts on 0-3.
        @Test func victimCancelledWhileVictimsDrain() throws {
            let drain = try startDrain()
            defer { try? finish(drain) }
            let gone = try #require(drain.victims.first)
            cluster.cancel([gone])
            let ended = try cluster.waitUntil(seconds: 30) { try cluster.state(gone) == "" || cluster.job(gone)["JobState"] == "CANCELLED" }
            #expect(ended)
            try expectInferAligned(drain)
            try expectPlanCarriedOut(drain, requeued: Array(drain.victims.dropFirst()))
        }

        /// `scontrol reconfigure` with a topo_aware.conf that no longer parses. Expected: the
        /// error names file:line, slurmctld stays up, the last good configuration stays in force
        /// (the lab scenario is still planned and aligned).
        @Test func reconfigureWithBrokenConfig() throws {
            let path = cluster.topoAwareConf
            let original = try String(contentsOfFile: path, encoding: .utf8)
            defer {
                try? original.write(toFile: path, atomically: true, encoding: .utf8)
                _ = try? cluster.run(["scontrol", "reconfigure"])
            }
            let line = original.split(separator: "\n", omittingEmptySubsequences: false).count
            try (original + (original.hasSuffix("\n") ? "" : "\n") + "DefaultMode=sometimes\n").write(toFile: path, atomically: true, encoding: .utf8)
            let offset = cluster.logSize()
            let reconfigured = try cluster.run(["scontrol", "reconfigure"])
            if cluster.releaseAtLeast(23, 11) {
                // From 23.11 reconfigure starts a new slurmctld: job_submit/topo_aware's init
                // refuses the file there, so the new process stops and the running one carries
                // on with everything as it was; scontrol reports the failure.
                #expect(reconfigured.status != 0, "reconfigure with a broken topo_aware.conf succeeded")
                #expect(try cluster.waitUntil(seconds: 30) {
                    cluster.logLines(from: offset).contains { $0.contains("Resuming operation, reconfigure failed") }
                })
            } else {
                #expect(reconfigured.status == 0, "\(reconfigured.stderr)")
            }
            #expect(try cluster.waitUntil(seconds: 30) { try cluster.controllerIsUp() })
            let outcome = try cluster.scenario([2, 2, 2, 1, 1], gpus: 4)
            defer { try? cluster.finish(outcome) }
            #expect(outcome.placed == GPUSet(0...3))
            try cluster.expectNothingLost(outcome)
            let errors = cluster.logLines(from: offset).filter { $0.contains("error:") && $0.contains("\(path):\(line)") }
            #expect(!errors.isEmpty, "no error naming \(path):\(line)")
        }

        /// gres.conf Links= for node1 that disagree with themselves (GPU 0 claims NVLink to GPU 5,
        /// GPU 5 denies it), read after `scontrol reconfigure`. Expected: an error line names the
        /// node and gres.conf:line; the planner leaves node1 to the base policy ("base policy on
        /// node(s) node1"), so the lab scenario comes out as stock Slurm's; nothing is lost.
        @Test func linksDisagreeingWithTheTopology() throws {
            let path = cluster.directory + "/etc/gres.conf"
            let original = try String(contentsOfFile: path, encoding: .utf8)
            defer {
                try? original.write(toFile: path, atomically: true, encoding: .utf8)
                _ = try? cluster.run(["scontrol", "reconfigure"])
            }
            var lines = original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let index = try #require(lines.firstIndex { $0.hasPrefix("NodeName=node1 ") && $0.contains("nvidia0 ") })
            lines[index] = lines[index].replacingOccurrences(of: "Links=-1,1,1,1,0,0,0,0", with: "Links=-1,1,1,1,0,1,0,0")
            try #require(lines[index].hasSuffix("Links=-1,1,1,1,0,1,0,0"), "unexpected gres.conf line: \(lines[index])")
            try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let offset = cluster.logSize()
            try cluster.run(["scontrol", "reconfigure"])
            let outcome = try cluster.scenario([2, 2, 2, 1, 1], gpus: 4)
            defer { try? cluster.finish(outcome) }
            let log = cluster.logLines(from: offset)
            #expect(log.contains { $0.contains("error: preempt/topo_aware: node node1: gres.conf Links= disagree (\(path):\(index + 1)") },
                    "no error naming node1 and \(path):\(index + 1)")
            #expect(log.contains { $0.contains("JobId=\(outcome.infer) no plan on nodes of known topology") && $0.contains("base policy on node(s) node1") })
            #expect(outcome.placed != nil, "the infer job did not start under the base policy")
            try cluster.expectNothingLost(outcome)
        }
    }
}

extension Cluster {
    private func pid(_ file: String) -> Int32? {
        (try? String(contentsOfFile: directory + "/run/" + file, encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Stops slurmctld (SIGTERM: it saves its state) and starts it again on the same files.
    func restartController() throws {
        let old = try #require(pid("slurmctld.pid"), "no slurmctld pid file")
        kill(old, SIGTERM)
        let stopped = waitUntil(seconds: 30) { kill(old, 0) != 0 }
        try #require(stopped, "slurmctld \(old) did not stop")
        let started = try run(["slurmctld", "-f", slurmConf])
        try #require(started.status == 0, "slurmctld did not start: \(started.stderr)")
        let up = try waitUntil(seconds: 60) {
            try controllerIsUp() && run(["sinfo", "-h", "-n", "node1", "-o", "%T"]).stdout.range(of: "idle|mix|alloc", options: .regularExpression) != nil
        }
        try #require(up, "slurmctld did not come back")
    }

    /// SIGKILL to `node`'s slurmd (its job steps live on).
    func killSlurmd(_ node: String) throws {
        let old = try #require(pid("slurmd-\(node).pid"), "no slurmd pid file for \(node)")
        kill(old, SIGKILL)
        try #require(waitUntil(seconds: 10) { kill(old, 0) != 0 }, "slurmd \(old) survived SIGKILL")
    }

    func startSlurmd(_ node: String) throws {
        let started = try run(["slurmd", "-f", slurmConf, "-N", node])
        try #require(started.status == 0, "slurmd \(node) did not start: \(started.stderr)")
        let responding = try waitUntil(seconds: 60) {
            try run(["sinfo", "-h", "-n", node, "-o", "%T"]).stdout.range(of: "idle|mix|alloc", options: .regularExpression) != nil
        }
        try #require(responding, "\(node) did not come back")
    }
}
