/// Where the plugins and the command-line tool find the files they read: one rule for both, so
/// the CLI reads what slurmctld reads. Every file but slurm.conf lives beside slurm.conf (Slurm's
/// own rule for gres.conf); `$TOPO_AWARE_CONF` (or the CLI's `--config`) names another
/// topo_aware.conf.
public struct ConfigPaths: Sendable, Equatable {
    /// The environment variable that names another topo_aware.conf.
    public static let topoAwareVariable = "TOPO_AWARE_CONF"
    /// slurm.conf when neither slurmctld nor `$SLURM_CONF` says otherwise.
    public static let defaultSlurmConf = "/etc/slurm/slurm.conf"

    public var slurmConf: String
    public var gresConf: String
    public var topoAwareConf: String

    /// `slurmConf`: the slurm.conf in use (slurmctld's own; for the CLI `$SLURM_CONF`), nil or
    /// empty for the default. `topoAwareOverride`: `$TOPO_AWARE_CONF` or `--config`, nil or empty
    /// for none.
    public init(slurmConf: String?, topoAwareOverride: String?) {
        let slurm = slurmConf.flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultSlurmConf
        let directory = Self.directory(of: slurm)
        self.slurmConf = slurm
        gresConf = directory + "/gres.conf"
        topoAwareConf = topoAwareOverride.flatMap { $0.isEmpty ? nil : $0 } ?? directory + "/topo_aware.conf"
    }

    /// The directory part of `path` (`.` for a bare file name, `/` for a file at the root).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
