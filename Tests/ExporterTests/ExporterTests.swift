import Foundation
import Prometheus
import Testing
@testable import ExporterCore
@testable import TopoEngine

/// The exposition text's value of one series (`name{labels}`), nil when absent.
func value(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

func record(_ json: String) -> ArraySlice<UInt8> { Array(json.utf8)[...] }

/// Decision records into metrics: what counts as a preemption, hits and misses, waits, the
/// plugin's cumulative stats as counters and a histogram.
@Suite struct RecordMetricsTests {
    static let plan = #"{"time":100,"event":"plan","job":9,"mode":"guaranteed","level":"nvlink","reached":"nvlink","victims":[1,3],"plan_us":150,"message":"m"}"#
    static func preempted(_ victim: Int, time: Int = 101, reason: String = "plan", victims: String = "[1,3]", reached: String = "nvlink",
                          mode: String = "guaranteed") -> String {
        #"{"time":\#(time),"event":"preempted","job":\#(victim),"other":9,"reason":"\#(reason)","mode":"\#(mode)","level":"nvlink","reached":"\#(reached)","victims":\#(victims),"preempt_mode":"REQUEUE","lost_gpu_seconds":100,"message":"m"}"#
    }

    @Test func aPlannedPreemptionIsCountedOnceWithItsVictims() {
        let m = RecordMetrics()
        for line in [Self.plan, Self.preempted(1), Self.preempted(3), Self.preempted(3, time: 150),
                     #"{"time":130,"event":"released","job":9,"message":"m"}"#] {
            m.apply(line: record(line))
        }
        let text = m.registry.emitToString()
        #expect(value(text, #"topo_preempt_preemptions_total{chosen_by="plan",mode="guaranteed",reached="nvlink"}"#) == 1,
                "a victim of the same plan preempted again is not a new preemption")
        #expect(value(text, #"topo_preempt_victims_total{chosen_by="plan"}"#) == 3)
        #expect(value(text, #"topo_preempt_lost_gpu_seconds_total{chosen_by="plan"}"#) == 300)
        #expect(value(text, #"topo_preempt_affinity_total{mode="guaranteed",result="hit"}"#) == 1)
        #expect(value(text, #"topo_preempt_affinity_total{mode="best-effort",result="miss"}"#) == 0)
        #expect(value(text, "topo_preempt_victims_per_preemption_sum") == 2)
        #expect(value(text, #"topo_preempt_plans_total{mode="guaranteed",level="nvlink",reached="nvlink"}"#) == 1)
        #expect(value(text, "topo_preempt_plan_duration_seconds_sum") == 0.00015)
        #expect(value(text, "topo_preempt_exporter_records_total") == 5)
    }

    /// A degraded best-effort plan is a miss; base-policy victims of one moment make one
    /// preemption, counted when two seconds of record time have passed.
    @Test func degradedIsAMissAndBasePolicyGroupsByTime() {
        let m = RecordMetrics()
        m.apply(line: record(Self.preempted(1, reason: "plan", victims: "[1]", reached: "socket", mode: "best-effort")))
        m.apply(line: record(Self.preempted(4, time: 200, reason: "base-policy", victims: "[]")))
        m.apply(line: record(Self.preempted(5, time: 200, reason: "base-policy", victims: "[]")))
        var text = m.registry.emitToString()
        #expect(value(text, #"topo_preempt_affinity_total{mode="best-effort",result="miss"}"#) == 1)
        #expect(value(text, #"topo_preempt_preemptions_total{chosen_by="base-policy",mode="base-policy",reached="unknown"}"#) == nil)
        m.flush(now: 202)
        text = m.registry.emitToString()
        #expect(value(text, #"topo_preempt_preemptions_total{chosen_by="base-policy",mode="base-policy",reached="unknown"}"#) == 1)
        #expect(value(text, "topo_preempt_victims_per_preemption_sum") == 3)
        #expect(value(text, #"topo_preempt_victims_total{chosen_by="base-policy"}"#) == 2)
    }

    @Test func reasonsAndBadLines() {
        let m = RecordMetrics()
        for line in [#"{"time":1,"event":"fallback","job":2,"reason":"no-topology","message":"m"}"#,
                     #"{"time":1,"event":"wait","job":2,"reason":"victims-draining","message":"m"}"#,
                     #"{"time":1,"event":"dropped","job":2,"reason":"plan-timeout","message":"m"}"#,
                     #"{"time":1,"event":"takeover","job":2,"other":3,"message":"m"}"#,
                     #"{"time":1,"event":"records-lost","job":0,"count":7,"message":"m"}"#,
                     #"{"time":1,"event":"nonsense","job":2,"message":"m"}"#, "not json", ""] {
            m.apply(line: record(line))
        }
        let text = m.registry.emitToString()
        #expect(value(text, #"topo_preempt_fallbacks_total{reason="no-topology"}"#) == 1)
        #expect(value(text, #"topo_preempt_waits_total{reason="victims-draining"}"#) == 1)
        #expect(value(text, #"topo_preempt_plans_dropped_total{reason="plan-timeout"}"#) == 1)
        #expect(value(text, "topo_preempt_takeovers_total") == 1)
        #expect(value(text, "topo_preempt_records_lost_total") == 7)
        #expect(value(text, "topo_preempt_exporter_bad_records_total") == 3)
    }

    /// Label values from records are bounded: the 257th reason is counted as "other".
    @Test func labelValuesAreBounded() {
        let m = RecordMetrics()
        for i in 0..<300 { m.apply(line: record(#"{"time":1,"event":"fallback","job":2,"reason":"r\#(i)","message":"m"}"#)) }
        let text = m.registry.emitToString()
        #expect(value(text, #"topo_preempt_fallbacks_total{reason="other"}"#) == Double(300 - LabelValues.limit))
    }

    static func stats(decisions: Int, sum: Int, buckets: [Int], rebuilds: Int) -> String {
        let b = RecordMetrics.hookBucketsMicroseconds.enumerated().map { i, le in "[\(le),\(i < buckets.count ? buckets[i] : buckets.last ?? 0)]" }
        return #"{"time":5,"event":"stats","job":0,"stats":{"decisions":\#(decisions),"kept":0,"partial":0,"full":0,"disagreements":0,"rebuilds":{"period":\#(rebuilds)},"indexed_jobs":0,"indexed_gpu_jobs":0,"hook_us":{"p50":0,"p99":0,"max":40,"sum":\#(sum),"buckets":[\#(b.joined(separator: ","))]}},"message":"m"}"#
    }

    /// The plugin's cumulative counters: what grew since the last stats record, and all of a new
    /// run after slurmctld restarted; the hook histogram keeps the plugin's counts and sum.
    @Test func statsAreDeltasAcrossRestarts() {
        let m = RecordMetrics()
        // 3 decisions: 2 under 16 us, 1 under 32 us; sum 40 us.
        m.apply(line: record(Self.stats(decisions: 3, sum: 40, buckets: [2, 3], rebuilds: 1)))
        m.apply(line: record(Self.stats(decisions: 5, sum: 80, buckets: [3, 5], rebuilds: 2)))
        var text = m.registry.emitToString()
        #expect(value(text, "topo_preempt_hook_decisions_total") == 5)
        #expect(value(text, #"topo_preempt_index_rebuilds_total{reason="period"}"#) == 2)
        #expect(value(text, "topo_preempt_hook_duration_seconds_count") == 5)
        #expect(value(text, #"topo_preempt_hook_duration_seconds_bucket{le="1.6e-05"}"#) == 3)
        #expect(abs((value(text, "topo_preempt_hook_duration_seconds_sum") ?? 0) - 80e-6) < 1e-9)
        // Restart: fewer decisions than before.
        m.apply(line: record(Self.stats(decisions: 1, sum: 10, buckets: [1], rebuilds: 1)))
        text = m.registry.emitToString()
        #expect(value(text, "topo_preempt_hook_decisions_total") == 6)
        #expect(value(text, #"topo_preempt_index_rebuilds_total{reason="period"}"#) == 3)
        #expect(value(text, "topo_preempt_hook_duration_seconds_count") == 6)
    }
}

/// The decision log followed across the plugin's rotation (FILE -> FILE.1, a new FILE), a
/// truncation, a file that appears later, a partial last line.
@Suite struct RecordFollowerTests {
    static func directory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("follower-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func append(_ path: String, _ text: String) throws {
        if !FileManager.default.fileExists(atPath: path) { #expect(FileManager.default.createFile(atPath: path, contents: nil)) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    @Test func rotationLosesNothing() throws {
        let dir = try Self.directory()
        let path = dir + "/decisions.jsonl"
        var follower = RecordFollower(path: path, fromStart: false)
        var lines: [String] = []
        func poll() { follower.poll { lines.append(String(decoding: $0, as: UTF8.self)) } }
        poll()
        #expect(follower.openError != nil, "no file yet")
        try Self.append(path, "a\nb\npart")
        poll()
        #expect(lines == ["a", "b"], "a file that appears later is read from its start; a partial line waits")
        try Self.append(path, "ial\nc\n")
        // Rotation: the rest goes to the old file after it is renamed; a new file begins.
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try Self.append(path + ".1", "d\n")
        try Self.append(path, "e\n")
        poll()
        #expect(lines == ["a", "b", "partial", "c", "d", "e"])
        #expect(follower.rotations == 1)
        // Truncated in place: read again from its start.
        try Data().write(to: URL(fileURLWithPath: path))
        poll()
        try Self.append(path, "f\n")
        poll()
        #expect(lines.last == "f")
    }

    @Test func startsAtTheEndUnlessAsked() throws {
        let dir = try Self.directory()
        let path = dir + "/decisions.jsonl"
        try Self.append(path, "old\n")
        var fromEnd = RecordFollower(path: path, fromStart: false), fromStart = RecordFollower(path: path, fromStart: true)
        var a: [String] = [], b: [String] = []
        fromEnd.poll { a.append(String(decoding: $0, as: UTF8.self)) }
        fromStart.poll { b.append(String(decoding: $0, as: UTF8.self)) }
        try Self.append(path, "new\n")
        fromEnd.poll { a.append(String(decoding: $0, as: UTF8.self)) }
        fromStart.poll { b.append(String(decoding: $0, as: UTF8.self)) }
        #expect(a == ["new"] && b == ["old", "new"])
    }

    @Test func anOverlongLineIsSkipped() throws {
        let dir = try Self.directory()
        let path = dir + "/decisions.jsonl"
        try Self.append(path, String(repeating: "x", count: RecordFollower.maxLine + 10) + "\nok\n")
        var follower = RecordFollower(path: path, fromStart: true)
        var lines: [String] = []
        follower.poll { lines.append(String(decoding: $0, as: UTF8.self)) }
        #expect(lines == ["ok"] && follower.overlong == 1)
    }
}

/// The cluster's gauges from `topo-preempt fragmentation --format json`; series of node types
/// that are gone are removed.
@Suite struct ClusterGaugesTests {
    static let json = #"""
        {"time":1,"node_types":[{"name":"8gpu:nvlink=4x2","nodes":2,"available":2,"gpus":8,"free_gpus":8,"freeable_gpus":16}],
         "groups":[{"node_type":"8gpu:nvlink=4x2","level":"nvlink","size":4,"free":2,"freeable":4}],
         "preemptors":[{"job":5,"class":"inference","mode":"guaranteed","required":"nvlink","reached":"socket","aligned":false,"start_time":1000,"wait_seconds":7}],
         "warnings":[]}
        """#

    @Test func gaugesFollowTheReport() throws {
        let registry = PrometheusCollectorRegistry()
        let gauges = ClusterGauges(registry: registry)
        #expect(value(registry.emitToString(), "topo_preempt_cluster_up") == 0)
        var report = try JSONDecoder().decode(ClusterGauges.Report.self, from: Data(Self.json.utf8))
        gauges.update(report, seconds: 0.5)
        var text = registry.emitToString()
        #expect(value(text, #"topo_preempt_free_aligned_groups{node_type="8gpu:nvlink=4x2",level="nvlink",size="4"}"#) == 2)
        #expect(value(text, #"topo_preempt_freeable_aligned_groups{node_type="8gpu:nvlink=4x2",level="nvlink",size="4"}"#) == 4)
        #expect(value(text, #"topo_preempt_running_preemptors{class="inference",mode="guaranteed",aligned="false"}"#) == 1)
        #expect(value(text, #"topo_preempt_running_preemptors{class="inference",mode="guaranteed",aligned="true"}"#) == 0)
        #expect(value(text, "topo_preempt_cluster_up") == 1)
        #expect(value(text, "topo_preempt_preemptor_wait_seconds_sum") == 7)
        // The same run seen again is not a new wait; a new start (requeued, started again) is.
        gauges.update(report, seconds: 0.5)
        #expect(value(registry.emitToString(), "topo_preempt_preemptor_wait_seconds_count") == 1)
        report.preemptors[0].startTime = 2000
        gauges.update(report, seconds: 0.5)
        #expect(value(registry.emitToString(), "topo_preempt_preemptor_wait_seconds_count") == 2)
        report.nodeTypes[0].name = "4gpu"
        report.groups = []
        report.preemptors = []
        gauges.update(report, seconds: 0.5)
        text = registry.emitToString()
        #expect(value(text, #"topo_preempt_free_aligned_groups{node_type="8gpu:nvlink=4x2",level="nvlink",size="4"}"#) == nil)
        #expect(value(text, #"topo_preempt_nodes{node_type="4gpu"}"#) == 2)
        #expect(value(text, #"topo_preempt_nodes{node_type="8gpu:nvlink=4x2"}"#) == nil)
        gauges.failed(seconds: 1)
        #expect(value(registry.emitToString(), "topo_preempt_cluster_up") == 0)
    }

    /// A reader that fails: a missing program, a non-zero exit, bad JSON, no answer in time.
    @Test func readerFailuresAreErrors() throws {
        func failure(_ reader: ClusterReader) -> String {
            do {
                _ = try reader.read()
                return "read"
            } catch { return error.description }
        }
        #expect(failure(ClusterReader(executable: "/nonexistent/topo-preempt")).hasPrefix("cannot run"))
        #expect(failure(ClusterReader(executable: "/bin/sh", arguments: ["-c", "echo broken >&2; exit 3"])) == "exit status 3: broken")
        #expect(failure(ClusterReader(executable: "/bin/echo", arguments: ["{"])).hasPrefix("unreadable JSON"))
        #expect(failure(ClusterReader(executable: "/bin/sleep", arguments: ["30"], timeout: 0.5)).hasPrefix("no answer within"))
        let ok = ClusterReader(executable: "/bin/sh", arguments: ["-c", "cat <<'EOF'\n\(Self.json)\nEOF"])
        #expect(try ok.read().groups.count == 1)
    }
}

/// The HTTP endpoint: /metrics in the text format, 4xx for everything else, a malformed request
/// answered with 400 and the server still serving.
@Suite struct MetricsServerTests {
    /// One request on a new connection; the whole answer.
    static func exchange(_ port: Int, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    @Test func answers() throws {
        let metrics = RecordMetrics()
        let server = try MetricsServer(host: "127.0.0.1", port: 0, registry: metrics.registry)
        defer { try? server.close() }
        let port = server.port
        let ok = try Self.exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200 OK"))
        #expect(ok.contains("Content-Type: \(MetricsServer.contentType)"))
        #expect(ok.contains("# TYPE topo_preempt_preemptions_total counter") || ok.contains("topo_preempt_exporter_records_total 0"))
        #expect(try Self.exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 200 OK"))
        #expect(try Self.exchange(port, "HEAD /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 200 OK"))
        #expect(try Self.exchange(port, "GET /other HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 404"))
        let post = try Self.exchange(port, "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nab")
        #expect(post.hasPrefix("HTTP/1.0 405") && post.contains("Allow: GET, HEAD"))
        #expect(try Self.exchange(port, "GARBAGE\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        #expect(try Self.exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X-A: b\r\n", count: 20_000) + "\r\n")
            .hasPrefix("HTTP/1.1 4"))
        let big = try Self.exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "a", count: 100_000))
        #expect(big.hasPrefix("HTTP/1.1 413"))
        #expect(try Self.exchange(port, "GET / HTTP/1.0\r\n\r\n").contains("href=\"/metrics\""), "still serving")
    }
}
