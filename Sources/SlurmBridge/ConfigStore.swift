import CSlurmShim
import Glibc
import SlurmStrings
import Synchronization
import TopoEngine

/// Identity of a file version: a changed stamp means the file was edited or replaced.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = info.st_mtim.tv_sec
        modifiedNanoseconds = info.st_mtim.tv_nsec
    }
}

/// A failure to read or parse the configuration, as one log line.
public struct ConfigLoadError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The topo_aware.conf the plugins of this .so run with (one store for both: `PluginImage`).
///
/// `load` (at `init`) is strict: an error fails the plugin's init, Slurm's convention for a bad
/// configuration. Afterwards every hook calls `current()`, which reloads the file when it has
/// changed on disk (a stat per call); a new version that does not parse is logged once and the
/// last good configuration stays in force, so an edit never takes the controller down. Log lines
/// carry the prefix of the plugin whose hook noticed the change.
public final class ConfigStore: Sendable {
    private struct State {
        var path: String = ""
        var config: TopoAwareConfig?
        var stamp: FileStamp?
        /// The version (or nil: missing file) last reported as broken, to log it once.
        var reportedFailure: FileStamp??
    }

    private let state = Mutex(State())

    public init() {}

    /// Reads and parses `path`, making it the configuration in force.
    @discardableResult
    public func load(path: String) throws(ConfigLoadError) -> ParsedConfig {
        let (text, stamp) = try Self.read(path)
        let parsed: ParsedConfig
        do {
            parsed = try TopoAwareConfig.parse(text, file: path)
        } catch {
            throw ConfigLoadError(description: error.description)
        }
        state.withLock {
            $0 = State(path: path, config: parsed.config, stamp: stamp, reportedFailure: nil)
        }
        return parsed
    }

    /// The configuration in force, reloaded first if the file changed. nil before a successful `load`.
    public func current(logPrefix: String) -> TopoAwareConfig? {
        state.withLock { state -> TopoAwareConfig? in
            guard state.config != nil else { return nil }
            var info = stat()
            guard stat(state.path, &info) == 0 else {
                if state.reportedFailure != .some(nil) {
                    state.reportedFailure = .some(nil)
                    SlurmLog.error("\(logPrefix): \(state.path): \(Self.errnoText()); keeping the configuration loaded before")
                }
                return state.config
            }
            let stamp = FileStamp(info)
            if stamp == state.stamp || state.reportedFailure == .some(stamp) { return state.config }
            do {
                let (text, readStamp) = try Self.read(state.path)
                let parsed = try TopoAwareConfig.parse(text, file: state.path)
                state.config = parsed.config
                state.stamp = readStamp
                state.reportedFailure = nil
                SlurmLog.info("\(logPrefix): reloaded \(state.path): \(Self.summary(parsed.config))")
                for warning in parsed.warnings { SlurmLog.info("\(logPrefix): warning: \(warning)") }
            } catch {
                state.reportedFailure = .some(stamp)
                SlurmLog.error("\(logPrefix): \(error); keeping the configuration loaded before")
            }
            return state.config
        }
    }

    /// Forgets the configuration (plugin `fini`).
    public func unload() {
        state.withLock { $0 = State() }
    }

    /// "2 preemptor classes (inference, rt), 1 preemptible class (batch)".
    public static func summary(_ config: TopoAwareConfig) -> String {
        var preemptors: [String] = []
        var preemptibles: [String] = []
        for rule in config.classes {
            if case .preemptor = rule.kind { preemptors.append(rule.name) } else { preemptibles.append(rule.name) }
        }
        func count(_ names: [String], _ what: String) -> String {
            "\(names.count) \(what) class\(names.count == 1 ? "" : "es")\(names.isEmpty ? "" : " (\(names.joined(separator: ", ")))")"
        }
        return "\(count(preemptors, "preemptor")), \(count(preemptibles, "preemptible"))"
    }

    // MARK: - File access

    /// Reads a regular file of at most `limit` bytes, with its stamp.
    static func read(_ path: String, limit: Int = TopoAwareConfig.maxFileSize) throws(ConfigLoadError) -> (String, FileStamp) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigLoadError(description: "\(path): cannot open: \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ConfigLoadError(description: "\(path): cannot stat: \(errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ConfigLoadError(description: "\(path): not a regular file")
        }
        guard info.st_size <= limit else {
            throw ConfigLoadError(description: "\(path): file is larger than \(limit) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var used = 0
        while used < bytes.count {
            let got = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.read(fd, base + used, buffer.count - used)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw ConfigLoadError(description: "\(path): cannot read: \(errnoText())")
            }
            if got == 0 { break }
            used += got
        }
        guard used <= limit else {
            throw ConfigLoadError(description: "\(path): file is larger than \(limit) bytes")
        }
        return (String(decoding: bytes[0..<used], as: UTF8.self), FileStamp(info))
    }

    static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

/// The files the plugins read: `ConfigPaths` from the slurm.conf slurmctld read and
/// `$TOPO_AWARE_CONF`, the same rule as the command-line tool's.
enum PluginPaths {
    static func current() -> ConfigPaths {
        var slurmConf: String?
        if let raw = CSlurmShim_slurm_conf_path() {
            slurmConf = CStrings.read(raw, limit: 4096)
            free(raw)
        }
        let override = getenv(ConfigPaths.topoAwareVariable).flatMap { CStrings.read($0, limit: 4096) }
        return ConfigPaths(slurmConf: slurmConf, topoAwareOverride: override)
    }
}

/// What the two plugins of this .so share: one topo_aware.conf and one GPU topology, each read
/// once per change whichever hook notices it first.
enum PluginImage {
    static let config = ConfigStore()
    static let topology = TopologyStore()
    /// The TRES form of the Slurm release this .so was built for (the C compatibility layer).
    static let tresSyntax: TRESSyntax = TRESSyntax(gresPrefix: String(cString: CSlurmShim_tres_gres_prefix())) ?? .slash

    /// The plugin sides (`job_submit/topo_aware`, `preempt/topo_aware`) using the stores: each
    /// joins at its init or first use and leaves at its fini; the stores are emptied when the
    /// last one leaves, so a side that has left answers as if unconfigured.
    private static let users = Mutex(Set<String>())

    static func join(_ side: String) { users.withLock { _ = $0.insert(side) } }

    static func isJoined(_ side: String) -> Bool { users.withLock { $0.contains(side) } }

    static func leave(_ side: String) {
        let last = users.withLock { users -> Bool in
            users.remove(side)
            return users.isEmpty
        }
        if last {
            config.unload()
            topology.unload()
        }
    }
}
