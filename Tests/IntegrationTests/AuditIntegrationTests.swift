import Foundation
import Testing
import TopoEngine

extension TopoAwareQOSTests {
    /// `topo-preempt audit --since` over a period holding one real preemption (the lab's first
    /// scenario, QOS cluster with slurmdbd): one planned preemption, a hit, its two victims and
    /// the work they lost, as the decision log says; the preemptor's wait from sacct; the plot.
    @Test func auditSinceReportsThePeriod() throws {
        let since = utcTimestamp(Int64(Date().timeIntervalSince1970) - 1)
        let (batch, infer, victims) = try ProvenanceCheck.preemptOnce(on: cluster)
        defer { try? cluster.finish(batch + [infer]) }
        try #require(victims.count == 2)
        let svg = cluster.directory + "/audit.svg"
        var object: [String: Any] = [:]
        var raw = ""
        // The preemption's records are written within a second; slurmdbd learns the start soon after.
        let complete = try cluster.waitUntil(seconds: 30) {
            let result = try cluster.cli(["audit", "--since", since, "--bucket", "60", "--svg", svg, "--format", "json"])
            raw = result.stdout + result.stderr
            guard result.status == 0, let parsed = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            else { return false }
            object = parsed
            return (parsed["victims"] as? Int) == 2 && ((parsed["preemptor_waits"] as? [String: Any])?["started"] as? Int ?? 0) >= 1
        }
        #expect(complete, "audit --since \(since): \(raw)")
        #expect(object["preemptions"] as? Int == 1, "\(raw)")
        #expect(object["by_chosen"] as? [String: Int] == ["plan": 1])
        #expect(object["hits"] as? Int == 1 && object["misses"] as? Int == 0 && object["hit_rate"] as? Double == 1)
        #expect(object["victims_per_preemption"] as? Double == 2)
        #expect((object["lost_gpu_hours"] as? Double ?? -1) >= 0)
        let buckets = object["buckets"] as? [[String: Any]] ?? []
        #expect(buckets.reduce(0) { $0 + ($1["preemptions"] as? Int ?? 0) } == 1)
        let waits = object["preemptor_waits"] as? [String: Any]
        #expect((waits?["p50_seconds"] as? Int ?? -1) >= 0, "\(String(describing: waits))")
        let plot = (try? String(contentsOfFile: svg, encoding: .utf8)) ?? ""
        #expect(plot.hasPrefix("<svg") && plot.contains("1 preemptions, hit rate 100.0%"), "\(plot.prefix(300))")
        // --replay: the period's jobs (the fill and the infer job) through the simulator; the
        // site's guaranteed mode starts its one inference job aligned.
        let replayed = try cluster.cli(["audit", "--since", since, "--replay", "--format", "json"])
        #expect(replayed.status == 0, "\(replayed.stderr)")
        let replay = (try? JSONSerialization.jsonObject(with: Data(replayed.stdout.utf8)) as? [String: Any])?["replay"] as? [String: Any]
        #expect(replay?["jobs"] as? Int == batch.count + 1 && replay?["left_out"] as? Int == 0, "\(replayed.stdout)")
        let rows = replay?["rows"] as? [[String: Any]] ?? []
        #expect(rows.compactMap { $0["policy"] as? String } == ["stock", "stock-shaped", "stock-youngest", "stock-shaped-youngest", "topo-guaranteed"])
        let topo = rows.last
        #expect(topo?["inference_started"] as? Int == 1 && topo?["inference_aligned"] as? Int == 1, "\(String(describing: topo))")
        #expect(replay?["cost_order"] as? String == "priority,victims,work,collateral", "\(replayed.stdout)")
        // The replay compares plans by the site's order: a copy of the file with CostOrder=work.
        let conf = try String(contentsOfFile: cluster.topoAwareConf, encoding: .utf8)
        let workFirst = cluster.directory + "/topo_aware-work.conf"
        try (conf + "\nCostOrder=work\n").write(toFile: workFirst, atomically: true, encoding: .utf8)
        let byWork = try cluster.cli(["audit", "--since", since, "--replay", "--config", workFirst, "--format", "json"])
        let workReplay = (try? JSONSerialization.jsonObject(with: Data(byWork.stdout.utf8)) as? [String: Any])?["replay"] as? [String: Any]
        #expect(byWork.status == 0 && workReplay?["cost_order"] as? String == "work,priority,victims,collateral", "\(byWork.stdout)\(byWork.stderr)")
        let byWorkText = try cluster.cli(["audit", "--since", since, "--replay", "--config", workFirst])
        #expect(byWorkText.stdout.contains("plans compared by work,priority,victims,collateral"), "\(byWorkText.stdout)")
        // The text form, and a bad time named as such.
        let text = try cluster.cli(["audit", "--since", since])
        #expect(text.status == 0 && text.stdout.contains("affinity hit rate      100.0% (1 hit, 0 miss"), "\(text.stdout)\(text.stderr)")
        let bad = try cluster.cli(["audit", "--since", "yesterday"])
        #expect(bad.status == 64 && bad.stderr.contains("--since: 'yesterday' is not a time"), "\(bad.stderr)")
    }
}
