import Foundation
import Testing
import TopoEngine

/// topo-preempt-exporter as a site runs it, under a real Prometheus server (Debian's
/// `prometheus`), on loopback beside the topo_aware cluster.
enum Exporter {
    /// The debug build `swift test` made, or $TOPO_PREEMPT_EXPORTER.
    static let binary: String? = {
        let path = ProcessInfo.processInfo.environment["TOPO_PREEMPT_EXPORTER"] ?? (CLI.root + "/.build/debug/topo-preempt-exporter")
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    /// A port free at this moment (bound and let go), for Prometheus' own listener.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A process started in the background, its stderr in a file; stopped by `stop`.
    final class Background {
        let process = Process()
        let stderrPath: String

        init(_ executable: String, _ arguments: [String], environment: [String: String], stderr: String) throws {
            stderrPath = stderr
            FileManager.default.createFile(atPath: stderr, contents: nil)
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

        /// SIGTERM, then SIGKILL if it has not ended within 10 s.
        func stop() {
            guard process.isRunning else { return }
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning, Date() < deadline { usleep(50_000) }
            #expect(!process.isRunning, "\(process.executableURL?.path ?? "?") did not stop on SIGTERM")
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// GET `url` (http://127.0.0.1:PORT/PATH) over a plain socket, HTTP/1.0: status and body
    /// (nil status when nothing answered).
    static func get(_ url: String) -> (status: Int?, body: String) {
        guard let parts = URLComponents(string: url), let port = parts.port else { return (nil, "") }
        let target = parts.percentEncodedPath + (parts.percentEncodedQuery.map { "?" + $0 } ?? "")
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return (nil, "") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return (nil, "") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET \(target) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return (nil, "") }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += buffer[0..<n]
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard let head = text.range(of: "\r\n\r\n") else { return (nil, text) }
        let status = text[..<head.lowerBound].split(separator: " ").dropFirst().first.flatMap { Int($0) }
        return (status, String(text[head.upperBound...]))
    }

    /// An instant query of Prometheus' HTTP API: the single value, nil when no series.
    static func query(_ prometheus: Int, _ promQL: String) -> Double? {
        var components = URLComponents(string: "http://127.0.0.1:\(prometheus)/api/v1/query")
        components?.queryItems = [URLQueryItem(name: "query", value: promQL)]
        guard let url = components?.url?.absoluteString else { return nil }
        let answer = get(url)
        guard answer.status == 200, let object = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              let first = result.first, let value = first["value"] as? [Any], value.count == 2, let text = value[1] as? String
        else { return nil }
        return Double(text)
    }
}

extension TopoAwareIslandsTests {
    /// The lab's scenarios on the islands cluster with topo-preempt-exporter following the
    /// decision log and reading the cluster, and Prometheus scraping it every second: the
    /// counters Prometheus holds equal the scenarios' outcomes (planned preemptions by mode and
    /// level, hits and misses, victims, waits), the fragmentation gauges say what an idle
    /// cluster has free, `promtool check metrics` accepts the exporter's output.
    @Test func prometheusScrapesTheExporterThroughTheLabScenarios() throws {
        let exporterBinary = try #require(Exporter.binary, "the topo-preempt-exporter binary is missing (swift build)")
        let cli = try #require(CLI.binary, "the topo-preempt binary is missing (swift build)")
        let prometheusBinary = "/usr/bin/prometheus", promtool = "/usr/bin/promtool"
        try #require(FileManager.default.isExecutableFile(atPath: prometheusBinary), "Debian's prometheus is not installed (scripts/install-deps)")
        let work = cluster.directory + "/prometheus-test"
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let records = cluster.directory + "/log/decisions.jsonl"
        #expect(try String(contentsOfFile: cluster.topoAwareConf, encoding: .utf8).contains("DecisionLog=\(records)"))

        // The exporter, on a port of its choosing, said on stderr.
        var environment = cluster.environment
        environment["TOPO_AWARE_CONF"] = cluster.topoAwareConf
        let exporter = try Exporter.Background(exporterBinary, ["--listen", "127.0.0.1:0", "--topo-preempt", cli,
                                                                "--cluster-interval", "1", "--poll-interval", "0.2"],
                                               environment: environment, stderr: work + "/exporter.err")
        defer { exporter.stop() }
        var port = 0
        let serving = cluster.waitUntil(seconds: 20) {
            guard let line = exporter.stderr.split(separator: "\n").first(where: { $0.contains("serving http://127.0.0.1:") }),
                  let match = line.firstMatch(of: /127\.0\.0\.1:(\d+)\/metrics/) else { return false }
            port = Int(match.1) ?? 0
            return true
        }
        try #require(serving, "exporter: \(exporter.stderr)")
        #expect(exporter.stderr.contains("following \(records)"), "records from topo_aware.conf's DecisionLog=: \(exporter.stderr)")

        // Prometheus, scraping it every second.
        let prometheusPort = try Exporter.freePort()
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: topo-preempt
                static_configs:
                  - targets: ['127.0.0.1:\(port)']
            """.write(toFile: work + "/prometheus.yml", atomically: true, encoding: .utf8)
        let checked = try runProcess(promtool, ["check", "config", work + "/prometheus.yml"])
        #expect(checked.status == 0, "promtool check config: \(checked.stdout) \(checked.stderr)")
        let prometheus = try Exporter.Background(prometheusBinary, [
            "--config.file=\(work)/prometheus.yml", "--storage.tsdb.path=\(work)/data",
            "--web.listen-address=127.0.0.1:\(prometheusPort)",
        ], environment: ProcessInfo.processInfo.environment, stderr: work + "/prometheus.err")
        defer { prometheus.stop() }
        let up = cluster.waitUntil(seconds: 60) { Exporter.query(prometheusPort, #"up{job="topo-preempt"}"#) == 1 }
        try #require(up, "Prometheus does not scrape the exporter: \(prometheus.stderr.suffix(2000))")

        // The scenarios, as the lab table runs them.
        let scenarios = LabScenario.on("islands")
        for scenario in scenarios { try scenario.runTopoAware(on: cluster, predict: false) }
        let planned = scenarios.filter { !$0.topoAware.0.isEmpty }
        let expected: [(String, Double)] = [
            (#"sum(topo_preempt_preemptions_total{chosen_by="plan",mode="guaranteed",reached="nvlink"})"#,
             Double(planned.filter { !$0.degraded }.count)),
            (#"sum(topo_preempt_preemptions_total{chosen_by="plan",mode="best-effort",reached="node"})"#,
             Double(planned.filter(\.degraded).count)),
            (#"sum(topo_preempt_affinity_total{result="hit"})"#, Double(planned.filter { !$0.degraded }.count)),
            (#"sum(topo_preempt_affinity_total{result="miss"})"#, Double(planned.filter(\.degraded).count)),
            (#"sum(topo_preempt_victims_total{chosen_by="plan"})"#, Double(planned.reduce(0) { $0 + $1.topoAware.0.count })),
            (#"sum(topo_preempt_victims_total{chosen_by="base-policy"})"#, 0),
            ("sum(topo_preempt_victims_per_preemption_count)", Double(planned.count)),
            ("sum(topo_preempt_victims_per_preemption_sum)", Double(planned.reduce(0) { $0 + $1.topoAware.0.count })),
            ("sum(topo_preempt_exporter_bad_records_total)", 0),
        ]
        for (promQL, value) in expected {
            var seen: Double?
            let equal = cluster.waitUntil(seconds: 30) {
                seen = Exporter.query(prometheusPort, promQL)
                return seen == value
            }
            #expect(equal, "\(promQL): \(seen.map { "\($0)" } ?? "no series"), expected \(value)")
        }
        // Guaranteed jobs that waited: at least one wait per such scenario, and the plans made.
        let waited = Double(scenarios.filter { $0.topoAware.1 == nil }.count)
        #expect(cluster.waitUntil(seconds: 30) { (Exporter.query(prometheusPort, "sum(topo_preempt_waits_total)") ?? 0) >= waited })
        #expect(cluster.waitUntil(seconds: 30) {
            (Exporter.query(prometheusPort, "sum(topo_preempt_plans_total)") ?? 0) >= Double(planned.count)
        })
        #expect(cluster.waitUntil(seconds: 30) { (Exporter.query(prometheusPort, "sum(topo_preempt_lost_gpu_seconds_total)") ?? -1) >= 0 })
        // A preemptor running: its wait (submission to start) is observed once.
        let waitsBefore = Exporter.query(prometheusPort, "sum(topo_preempt_preemptor_wait_seconds_count)") ?? 0
        let once = try ProvenanceCheck.preemptOnce(on: cluster)
        var waits: Double?
        let observed = cluster.waitUntil(seconds: 30) {
            waits = Exporter.query(prometheusPort, "sum(topo_preempt_preemptor_wait_seconds_count)")
            return waits == waitsBefore + 1
        }
        #expect(observed, "preemptor waits: \(waits.map { "\($0)" } ?? "no series"), expected \(waitsBefore + 1)")
        #expect(cluster.waitUntil(seconds: 30) {
            Exporter.query(prometheusPort, #"sum(topo_preempt_running_preemptors{class="inference",aligned="true"})"#) == 1
        })
        try cluster.finish(once.batch + [once.infer])

        // The jobs are gone: an idle cluster's 2 nodes have 2 free NVLink islands of 4 each, and
        // 2 free groups of 8 at node level; no preemptor runs.
        let type = "8gpu:nvlink=4x2"
        for (promQL, value) in [
            (#"topo_preempt_free_aligned_groups{node_type="\#(type)",level="nvlink",size="4"}"#, 4.0),
            (#"topo_preempt_freeable_aligned_groups{node_type="\#(type)",level="nvlink",size="4"}"#, 4.0),
            (#"topo_preempt_free_aligned_groups{node_type="\#(type)",level="node",size="8"}"#, 2.0),
            (#"topo_preempt_free_gpus{node_type="\#(type)"}"#, 16.0),
            (#"topo_preempt_nodes{node_type="\#(type)"}"#, 2.0),
            ("topo_preempt_cluster_up", 1.0),
        ] {
            var seen: Double?
            let equal = cluster.waitUntil(seconds: 30) {
                seen = Exporter.query(prometheusPort, promQL)
                return seen == value
            }
            #expect(equal, "\(promQL): \(seen.map { "\($0)" } ?? "no series"), expected \(value); exporter: \(exporter.stderr)")
        }

        // The exposition format as promtool reads it; a bad request is a 4xx and the exporter serves on.
        let metrics = Exporter.get("http://127.0.0.1:\(port)/metrics")
        #expect(metrics.status == 200)
        try metrics.body.write(toFile: work + "/metrics.txt", atomically: true, encoding: .utf8)
        let lint = try runProcess("/bin/sh", ["-c", "\(promtool) check metrics < '\(work)/metrics.txt'"])
        #expect(lint.status == 0, "promtool check metrics: \(lint.stdout) \(lint.stderr)")
        #expect(Exporter.get("http://127.0.0.1:\(port)/nothing").status == 404)
        #expect(Exporter.get("http://127.0.0.1:\(port)/metrics").status == 200)
        #expect(exporter.process.isRunning && prometheus.process.isRunning)
        #expect(try cluster.controllerIsUp())
    }
}
