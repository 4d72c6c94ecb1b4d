import ArgumentParser
import TopoEngine

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with topo_aware.conf.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check topo_aware.conf as the plugins will read it and summarise it.",
            discussion: "Errors name file:line:column, as in slurmctld's log; exit status 1 on an error.")

        @OptionGroup var config: ConfigPathOption
        @OptionGroup var output: FormatOption

        func run() throws {
            let path = config.resolved()
            let parsed: ParsedConfig
            do {
                parsed = try config.load()
            } catch let error as CLIError {
                if output.format == .json { try printJSON(ConfigReport(path: path, error: error.description)) }
                throw error.exit()
            }
            switch output.format {
            case .json:
                try printJSON(ConfigReport(path: path, parsed: parsed))
            case .text:
                let c = parsed.config
                print("\(path): valid")
                print("  DefaultLevel=\(c.defaultLevel.name) DefaultMode=\(c.defaultMode.name) AllowUserOverride=\(c.allowUserOverride ? "yes" : "no") ShapeRequests=\(c.shapeRequests ? "yes" : "no")")
                print("  BasePolicy=\(c.basePolicy.rawValue) PlanTimeout=\(c.planTimeoutSeconds) PlanTimeBudget=\(c.planTimeBudgetMilliseconds) StatsInterval=\(c.statsIntervalSeconds)")
                print("  DecisionLog=\(c.decisionLog ?? "(none)") DecisionLogMaxSize=\(c.decisionLogMaxSizeMiB) DecisionLogKeep=\(c.decisionLogKeep)")
                print("  CostOrder=\(CostCriterion.text(c.costOrder)) RoughWorkTolerance=\(c.roughWorkTolerance)")
                for rule in c.classes {
                    var words = [String]()
                    switch rule.kind {
                    case let .preemptor(level, mode):
                        words += ["preemptor  \(rule.name)", "level=\(level.name)", "mode=\(mode.name)",
                                  "costorder=\(CostCriterion.text(c.costOrder(of: rule)))",
                                  "roughworktolerance=\(c.roughWorkTolerance(of: rule))"]
                    case .preemptible: words += ["preemptible \(rule.name)"]
                    }
                    if let p = rule.partitions { words.append("partitions=\(p.sorted().joined(separator: ","))") }
                    if let q = rule.qos { words.append("qos=\(q.sorted().joined(separator: ","))") }
                    print("  line \(rule.line): " + words.joined(separator: " "))
                }
            }
            for warning in parsed.warnings { printError("warning: \(warning)") }
        }
    }
}

/// JSON shape of `config check` (documented in docs/reference.md).
struct ConfigReport: Encodable {
    struct Class: Encodable {
        var name: String
        var role: String
        var partitions: [String]?
        var qos: [String]?
        var level: String?
        var mode: String?
        /// A preemptor class's cost order in force (its own, else the file's).
        var costOrder: String?
        /// A preemptor class's rough-work tolerance in force (its own, else the file's).
        var roughWorkTolerance: String?
        var line: Int
    }

    var file: String
    var valid: Bool
    var error: String?
    var defaultLevel: String?
    var defaultMode: String?
    var allowUserOverride: Bool?
    var shapeRequests: Bool?
    var basePolicy: String?
    var planTimeout: Int?
    var planTimeBudget: Int?
    var statsInterval: Int?
    var decisionLog: String?
    var decisionLogMaxSize: Int?
    var decisionLogKeep: Int?
    var costOrder: String?
    var roughWorkTolerance: String?
    var classes: [Class]?
    var warnings: [String]?

    init(path: String, error: String) {
        file = path
        valid = false
        self.error = error
    }

    init(path: String, parsed: ParsedConfig) {
        file = path
        valid = true
        let c = parsed.config
        defaultLevel = c.defaultLevel.name
        defaultMode = c.defaultMode.name
        allowUserOverride = c.allowUserOverride
        shapeRequests = c.shapeRequests
        basePolicy = c.basePolicy.rawValue
        planTimeout = c.planTimeoutSeconds
        planTimeBudget = c.planTimeBudgetMilliseconds
        statsInterval = c.statsIntervalSeconds
        decisionLog = c.decisionLog
        decisionLogMaxSize = c.decisionLogMaxSizeMiB
        decisionLogKeep = c.decisionLogKeep
        costOrder = CostCriterion.text(c.costOrder)
        roughWorkTolerance = c.roughWorkTolerance.description
        classes = c.classes.map { rule in
            var entry = Class(name: rule.name, role: "preemptible", partitions: rule.partitions?.sorted(),
                              qos: rule.qos?.sorted(), line: rule.line)
            if case let .preemptor(level, mode) = rule.kind {
                entry.role = "preemptor"
                entry.level = level.name
                entry.mode = mode.name
                entry.costOrder = CostCriterion.text(c.costOrder(of: rule))
                entry.roughWorkTolerance = c.roughWorkTolerance(of: rule).description
            }
            return entry
        }
        warnings = parsed.warnings.map(\.description)
    }
}
