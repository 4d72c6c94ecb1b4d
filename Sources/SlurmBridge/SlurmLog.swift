import CSlurmShim

/// Slurm's log, from Swift. Lines start with the plugin type and the hook, as Slurm's own
/// plugins write them (`job_submit/topo_aware: job_submit: ...`).
public enum SlurmLog {
    public static func error(_ message: @autoclosure () -> String) { write(CSlurmShim_LOG_ERROR, message) }
    public static func info(_ message: @autoclosure () -> String) { write(CSlurmShim_LOG_INFO, message) }
    public static func verbose(_ message: @autoclosure () -> String) { write(CSlurmShim_LOG_VERBOSE, message) }
    public static func debug(_ message: @autoclosure () -> String) { write(CSlurmShim_LOG_DEBUG, message) }

    /// Builds the message only when Slurm would write it.
    private static func write(_ level: CSlurmShim_log_level, _ message: () -> String) {
        guard CSlurmShim_log_enabled(level) != 0 else { return }
        message().withCString { CSlurmShim_log(level, $0) }
    }
}
