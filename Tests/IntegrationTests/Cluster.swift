import Foundation
import Testing

/// The local Slurm cluster started by `scripts/slurm-local` (scripts/test points
/// $TOPO_PREEMPT_CLUSTER and its siblings at their directories).
struct Cluster: Sendable {
    let directory: String
    let slurmConf: String
    let pluginDir: String
    let topology: String
    /// Stock Slurm's victim order as configured: `oldest-first` (default) or `youngest-first`.
    let victimOrder: String
    /// Sockets per node (`TOPO_CLUSTER_SOCKETS`).
    let sockets: Int
    let pluginsOn: Bool
    /// slurmdbd with QOS records (batch, infer Preempt=batch); preemption by QOS.
    let accounting: Bool
    /// The Slurm release it runs (22.05.8: Debian's packages) and, for a release built from
    /// source, its install prefix, whose bin/ and sbin/ come first in PATH for every command.
    let slurmRelease: String
    let slurmPrefix: String?

    /// The cluster with stock preemption (PreemptType=preempt/partition_prio).
    static let current: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER")
    /// Stock preemption on NVLink pairs (4 GPUs per socket).
    static let pairs: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_PAIRS")
    /// Stock preemption taking victims youngest first (PreemptParameters=youngest_first; 22.05:
    /// SchedulerParameters=preempt_youngest_first), islands: the strongest stock configuration.
    static let youngest: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_YOUNGEST")
    /// The cluster running PreemptType=preempt/topo_aware (NVLink islands of 4 per socket).
    static let topoAware: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_TOPO_AWARE")
    /// preempt/topo_aware on NVLink pairs.
    static let topoAwarePairs: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_TOPO_AWARE_PAIRS")
    /// preempt/topo_aware on NVLink pairs with one socket per pair (as numa_node_as_socket
    /// makes of a machine with one NUMA node per GPU pair): job_submit shapes 2-GPU requests.
    static let topoAwarePairSockets: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_TOPO_AWARE_PAIR_SOCKETS")
    /// preempt/topo_aware over QOS semantics (BasePolicy=qos, slurmdbd + MariaDB), islands.
    static let topoAwareQOS: Cluster? = load(variable: "TOPO_PREEMPT_CLUSTER_TOPO_AWARE_QOS")

    static func load(variable: String) -> Cluster? {
        guard let directory = ProcessInfo.processInfo.environment[variable],
              let text = try? String(contentsOfFile: directory + "/cluster.env", encoding: .utf8)
        else { return nil }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let kv = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            if kv.count == 2 { values[String(kv[0])] = String(kv[1]) }
        }
        guard let conf = values["SLURM_CONF"], let plugins = values["TOPO_PLUGIN_DIR"] else { return nil }
        let prefix = values["TOPO_CLUSTER_SLURM_PREFIX"].flatMap { $0.isEmpty ? nil : $0 }
        return Cluster(directory: directory, slurmConf: conf, pluginDir: plugins,
                       topology: values["TOPO_CLUSTER_TOPOLOGY"] ?? "islands",
                       victimOrder: values["TOPO_CLUSTER_VICTIM_ORDER"] ?? "oldest-first",
                       sockets: values["TOPO_CLUSTER_SOCKETS"].flatMap { Int($0) } ?? 2,
                       pluginsOn: values["TOPO_CLUSTER_PLUGINS"] != "off", accounting: values["TOPO_CLUSTER_ACCOUNTING"] == "on",
                       slurmRelease: values["TOPO_CLUSTER_SLURM"] ?? "22.05.8", slurmPrefix: prefix)
    }

    static var isAvailable: Bool { current != nil }

    /// scripts/test sets TOPO_PREEMPT_REQUIRE_CLUSTER=1: then every integration suite runs, and
    /// one whose cluster, test user or binary is missing fails in its `#require`.
    static let required = ProcessInfo.processInfo.environment["TOPO_PREEMPT_REQUIRE_CLUSTER"] == "1"

    var controllerLog: String { directory + "/log/slurmctld.log" }

    /// How the release writes a GRES in TRES strings (`TresPerSocket=gres/gpu:4` from 23.02).
    var tresGresPrefix: String { releaseAtLeast(23, 2) ? "gres/" : "gres:" }

    /// True when the cluster's release is `major.minor` or later (25.5: Slurm 25.05).
    func releaseAtLeast(_ major: Int, _ minor: Int) -> Bool {
        let parts = slurmRelease.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return false }
        return (parts[0], parts[1]) >= (major, minor)
    }

    /// How an inference job is submitted: to the infer partition (higher PriorityTier), or,
    /// where preemption is by QOS, to the batch partition with the infer QOS, so that only the
    /// QOS can make it a preemptor.
    func options(for partition: String) -> [String] {
        guard accounting else { return ["-p", partition] }
        return partition == "infer" ? ["-p", "batch", "--qos=infer"] : ["-p", partition, "--qos=batch"]
    }
    var topoAwareConf: String { directory + "/etc/topo_aware.conf" }

    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The environment commands for this cluster run with: its SLURM_CONF, and its release's
    /// binaries first in PATH.
    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_CONF"] = slurmConf
        if let slurmPrefix {
            environment["PATH"] = "\(slurmPrefix)/bin:\(slurmPrefix)/sbin:" + (environment["PATH"] ?? "/usr/bin:/bin")
        }
        return environment
    }

    /// Runs a command with this cluster's SLURM_CONF; never through a shell.
    @discardableResult
    func run(_ arguments: [String]) throws -> Result {
        try runProcess("/usr/bin/env", arguments, environment: environment)
    }

    /// Runs the topo-preempt binary against this cluster (its SLURM_CONF and topo_aware.conf),
    /// as root; never through a shell.
    func cli(_ arguments: [String]) throws -> Result {
        var environment = environment
        environment["TOPO_AWARE_CONF"] = topoAwareConf
        return try runProcess(try #require(CLI.binary, "the topo-preempt binary is missing (swift build)"), arguments,
                              environment: environment)
    }

    /// Submits a held job (it never runs, so tests do not compete for GPUs).
    func submitHeld(_ options: [String]) throws -> Result {
        try run(["sbatch", "--parsable", "--hold", "-c", "1", "-o", "/dev/null"] + options + ["--wrap", "sleep 600"])
    }

    /// `scontrol show job -o ID` as a dictionary (values up to the next ` Key=`).
    func job(_ id: String) throws -> [String: String] {
        let result = try run(["scontrol", "show", "job", "-o", id])
        guard result.status == 0 else { return [:] }
        return Self.parseKeyValues(result.stdout)
    }

    static func parseKeyValues(_ line: String) -> [String: String] {
        // Keys are CamelCase words followed by '='; values may contain spaces (Comment=...).
        var fields: [String: String] = [:]
        let words = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ", omittingEmptySubsequences: false)
        var key: String? = nil
        var value = ""
        for word in words {
            if let eq = word.firstIndex(of: "="), word[..<eq].allSatisfy({ $0.isLetter || $0.isNumber || $0 == ":" || $0 == "/" }),
               !word[..<eq].isEmpty, word.first?.isUppercase == true {
                if let key { fields[key] = value.trimmingCharacters(in: .whitespaces) }
                key = String(word[..<eq])
                value = String(word[word.index(after: eq)...])
            } else {
                value += " " + word
            }
        }
        if let key { fields[key] = value.trimmingCharacters(in: .whitespaces) }
        return fields
    }

    func cancel(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        _ = try? run(["scancel"] + ids)
    }

    /// True while this cluster's slurmctld process is alive and it answers `scontrol ping`. From
    /// 23.11 a reconfigure restarts slurmctld under a new pid, and its pid file may keep naming
    /// the old one: the process is found by its command line (`slurmctld -f SLURM_CONF`, as
    /// slurm-local starts it), the pid file being only the first place looked.
    func controllerIsUp() throws -> Bool {
        guard controllerPIDs().contains(where: { kill($0, 0) == 0 }) else { return false }
        let ping = try run(["scontrol", "ping"])
        return ping.status == 0 && ping.stdout.contains("UP")
    }

    /// The pid in slurmctld's pid file and every process running `slurmctld -f SLURM_CONF`.
    func controllerPIDs() -> [Int32] {
        var pids: [Int32] = []
        if let text = try? String(contentsOfFile: directory + "/run/slurmctld.pid", encoding: .utf8),
           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            pids.append(pid)
        }
        let wanted = "slurmctld\0-f\0\(slurmConf)"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                  String(decoding: data, as: UTF8.self).hasPrefix(wanted) else { continue }
            pids.append(pid)
        }
        return pids
    }

    /// Lines of slurmctld's log, from byte `offset` on.
    func logLines(from offset: UInt64 = 0) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: controllerLog) else { return [] }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = handle.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func logSize() -> UInt64 {
        (try? FileManager.default.attributesOfItem(atPath: controllerLog)[.size] as? UInt64) ?? 0
    }

    /// Polls `condition` every 50 ms until it holds or `seconds` pass.
    func waitUntil(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if try condition() { return true }
            usleep(50_000)
        } while Date() < deadline
        return try condition()
    }
}

/// Runs an executable (never through a shell) and collects its exit status and output.
func runProcess(_ executable: String, _ arguments: [String],
                environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Cluster.Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment
    process.currentDirectoryURL = URL(fileURLWithPath: "/tmp")
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes concurrently so neither can fill up and block the child.
    let errData = LockedData()
    let errDone = DispatchSemaphore(value: 0)
    Thread {
        errData.set(err.fileHandleForReading.readDataToEndOfFile())
        errDone.signal()
    }.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    errDone.wait()
    return Cluster.Result(status: process.terminationStatus,
                          stdout: String(decoding: outData, as: UTF8.self),
                          stderr: String(decoding: errData.value, as: UTF8.self))
}

/// A value handed from a reader thread.
final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    var value: Data { lock.lock(); defer { lock.unlock() }; return data }
}

extension Trait where Self == ConditionTrait {
    /// The suite runs when `present` holds, and always under scripts/test (where a missing
    /// cluster, user or binary must fail, not skip); plain `swift test` skips it saying what it
    /// needs.
    static func needs(_ what: Comment, _ present: @autoclosure @escaping @Sendable () -> Bool) -> Self {
        .enabled(if: Cluster.required || present(), what)
    }
}
