/// What topo_aware.conf says: which jobs are preemptors (latency-sensitive inference) and which
/// are preemptible (batch), and the GPU affinity each preemptor class needs.
///
/// Syntax (Slurm `Key=Value` style, keys case-insensitive, see topo_aware.conf(5), man/topo_aware.conf.5):
///
///     DefaultLevel=nvlink
///     DefaultMode=guaranteed
///     AllowUserOverride=yes
///     ShapeRequests=yes
///     BasePolicy=partition_prio
///     PlanTimeout=300
///     PlanTimeBudget=200
///     StatsInterval=300
///     DecisionLog=/var/log/slurm/topo_aware/decisions.jsonl
///     DecisionLogMaxSize=100
///     DecisionLogKeep=5
///     CostOrder=priority,victims,work,collateral
///     RoughWorkTolerance=2%
///     PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed CostOrder=work
///     PreemptibleClass=batch Partitions=batch
///
/// A class line matches a job when every criterion it gives matches: one of the job's partitions
/// is in `Partitions=` (when given) and the job's QOS is in `QOS=` (when given). Lines are tried
/// in file order; the first match wins. A job matching no line is left to stock Slurm.
public struct TopoAwareConfig: Sendable, Equatable {
    public var defaultLevel: AffinityLevel
    public var defaultMode: PlacementMode
    public var allowUserOverride: Bool
    /// Rewrite guaranteed preemptors' `--gres=gpu:N` to `--gpus-per-socket=N
    /// --sockets-per-node=1` where the required level is one socket's GPUs on every node.
    public var shapeRequests: Bool
    /// preempt/topo_aware: which jobs may preempt which, for everything the planner does not
    /// decide (and for the planner's own candidates).
    public var basePolicy: BasePolicy
    /// preempt/topo_aware: seconds a plan Slurm has started to carry out is kept for its job.
    public var planTimeoutSeconds: Int
    /// preempt/topo_aware: a plan taking longer (milliseconds) is discarded for the base policy.
    public var planTimeBudgetMilliseconds: Int
    /// preempt/topo_aware: seconds between two lines in slurmctld's log summing up its
    /// decisions since slurmctld started (0: none).
    public var statsIntervalSeconds: Int = 300
    /// preempt/topo_aware: the decision log, one JSON record per line (nil: none is written).
    public var decisionLog: String? = nil
    /// The decision log is rotated (`.1`, `.2`, ...) when it reaches this many MiB.
    public var decisionLogMaxSizeMiB: Int = 100
    /// Rotated decision logs kept (the oldest beyond is removed).
    public var decisionLogKeep: Int = 5
    /// preempt/topo_aware: how plans are compared, most important first (every criterion, the
    /// ones a file leaves out after the given ones in the default order); a preemptor class
    /// may give its own.
    public var costOrder: [CostCriterion] = CostCriterion.defaultOrder
    /// preempt/topo_aware: how near the least work a plan ties with it under `rough-work`; a
    /// preemptor class may give its own.
    public var roughWorkTolerance: RoughWorkTolerance = .default
    public var classes: [JobClassRule]

    /// The cost order of a preemptor class: its own `CostOrder=`, else the file's (also for nil).
    public func costOrder(of rule: JobClassRule?) -> [CostCriterion] { rule?.costOrder ?? costOrder }

    /// The rough-work tolerance of a preemptor class: its own `RoughWorkTolerance=`, else the
    /// file's (also for nil).
    public func roughWorkTolerance(of rule: JobClassRule?) -> RoughWorkTolerance { rule?.roughWorkTolerance ?? roughWorkTolerance }

    public enum BasePolicy: String, Sendable, Equatable, CaseIterable {
        /// preempt/partition_prio: partitions with a higher PriorityTier preempt lower ones.
        case partitionPriority = "partition_prio"
        /// preempt/qos: a QOS preempts the QOS listed in its Preempt= field.
        case qos
    }

    public init(
        defaultLevel: AffinityLevel = .nvlink, defaultMode: PlacementMode = .guaranteed,
        allowUserOverride: Bool = true, shapeRequests: Bool = true, basePolicy: BasePolicy = .partitionPriority,
        planTimeoutSeconds: Int = 300, planTimeBudgetMilliseconds: Int = 200, classes: [JobClassRule] = []
    ) {
        self.defaultLevel = defaultLevel
        self.defaultMode = defaultMode
        self.allowUserOverride = allowUserOverride
        self.shapeRequests = shapeRequests
        self.basePolicy = basePolicy
        self.planTimeoutSeconds = planTimeoutSeconds
        self.planTimeBudgetMilliseconds = planTimeBudgetMilliseconds
        self.classes = classes
    }
}

/// One `PreemptorClass=` or `PreemptibleClass=` line.
public struct JobClassRule: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case preemptor(level: AffinityLevel, mode: PlacementMode)
        case preemptible
    }

    public var name: String
    public var kind: Kind
    /// Partition names this class applies to; nil: any partition.
    public var partitions: Set<String>?
    /// QOS names this class applies to; nil: any QOS.
    public var qos: Set<String>?
    /// The line it was defined on (for messages).
    public var line: Int
    /// A preemptor class's own `CostOrder=`; nil: the file's.
    public var costOrder: [CostCriterion]?
    /// A preemptor class's own `RoughWorkTolerance=`; nil: the file's.
    public var roughWorkTolerance: RoughWorkTolerance?

    public init(name: String, kind: Kind, partitions: Set<String>?, qos: Set<String>?, line: Int,
                costOrder: [CostCriterion]? = nil, roughWorkTolerance: RoughWorkTolerance? = nil) {
        self.name = name
        self.kind = kind
        self.partitions = partitions
        self.qos = qos
        self.line = line
        self.costOrder = costOrder
        self.roughWorkTolerance = roughWorkTolerance
    }

    /// The result of a rule accepting a job.
    public struct Match: Sendable, Equatable {
        /// The job partition that matched `Partitions=`, nil when the rule has no such criterion.
        public var partition: String?
    }

    /// Checks the job's partitions and QOS against the rule. An unknown partition (empty list) or
    /// QOS (nil) only matches a rule that does not constrain it.
    public func match(partitions jobPartitions: [String], qos jobQOS: String?) -> Match? {
        var matched: String? = nil
        if let partitions {
            guard let hit = jobPartitions.first(where: { partitions.contains($0) }) else { return nil }
            matched = hit
        }
        if let qos {
            guard let jobQOS, qos.contains(jobQOS) else { return nil }
        }
        return Match(partition: matched)
    }

    /// True when every job this rule matches is already matched by `earlier`.
    func isShadowed(by earlier: JobClassRule) -> Bool {
        func covers(_ outer: Set<String>?, _ inner: Set<String>?) -> Bool {
            guard let outer else { return true }
            guard let inner else { return false }
            return inner.isSubset(of: outer)
        }
        return covers(earlier.partitions, partitions) && covers(earlier.qos, qos)
    }
}

/// A configuration that parsed, with remarks that do not stop it from being used.
public struct ParsedConfig: Sendable, Equatable {
    public var config: TopoAwareConfig
    public var warnings: [TextDiagnostic]
}

extension TopoAwareConfig {
    /// Largest accepted file, in bytes: a config is a few dozen lines; anything bigger is a mistake.
    public static let maxFileSize = 1 << 20

    /// Parses topo_aware.conf text. `file` names the file in error messages.
    public static func parse(_ text: String, file: String) throws(TextDiagnostic) -> ParsedConfig {
        guard text.utf8.count <= maxFileSize else {
            throw TextDiagnostic(
                file: file, location: SourceLocation(line: 1, column: 1),
                message: "file is larger than \(maxFileSize) bytes")
        }
        let lines = try KeyValueLexer.lex(text, file: file)
        var config = TopoAwareConfig()
        var pending: [PendingRule] = []
        var warnings: [TextDiagnostic] = []
        var globalsSeen: [String: Int] = [:]

        func fail(_ location: SourceLocation, _ message: String) -> TextDiagnostic {
            TextDiagnostic(file: file, location: location, message: message)
        }

        for line in lines {
            guard let first = line.pairs.first else { continue }
            let firstKey = asciiLowercased(first.key)
            if firstKey == "preemptorclass" || firstKey == "preemptibleclass" {
                let rule = try parseClassLine(line, isPreemptor: firstKey == "preemptorclass", file: file)
                if let previous = pending.first(where: { $0.name == rule.name }) {
                    throw fail(first.valueLocation,
                               "class '\(rule.name)' is already defined on line \(previous.line)")
                }
                pending.append(rule)
                continue
            }
            for pair in line.pairs {
                let key = asciiLowercased(pair.key)
                if key == "preemptorclass" || key == "preemptibleclass" {
                    throw fail(pair.location, "'\(pair.key)' must start its own line")
                }
                if let previous = globalsSeen[key] {
                    throw fail(pair.location, "'\(pair.key)' is already set on line \(previous)")
                }
                switch key {
                case "defaultlevel":
                    config.defaultLevel = try level(pair, file: file)
                case "defaultmode":
                    config.defaultMode = try mode(pair, file: file)
                case "allowuseroverride":
                    config.allowUserOverride = try boolean(pair, file: file)
                case "shaperequests":
                    config.shapeRequests = try boolean(pair, file: file)
                case "basepolicy":
                    guard let policy = BasePolicy(rawValue: asciiLowercased(pair.value)) else {
                        throw fail(pair.valueLocation,
                                   "unknown base policy '\(printable(pair.value))' (expected partition_prio or qos)")
                    }
                    config.basePolicy = policy
                case "plantimeout":
                    config.planTimeoutSeconds = try integer(pair, in: 1...86_400, unit: "seconds", file: file)
                case "plantimebudget":
                    config.planTimeBudgetMilliseconds = try integer(pair, in: 1...10_000, unit: "milliseconds", file: file)
                case "statsinterval":
                    config.statsIntervalSeconds = try integer(pair, in: 0...86_400, unit: "seconds", file: file)
                case "decisionlog":
                    config.decisionLog = try absolutePath(pair, file: file)
                case "decisionlogmaxsize":
                    config.decisionLogMaxSizeMiB = try integer(pair, in: 1...1_048_576, unit: "MiB", file: file)
                case "decisionlogkeep":
                    config.decisionLogKeep = try integer(pair, in: 1...1000, unit: "files", file: file)
                case "costorder":
                    config.costOrder = try costOrder(pair, file: file)
                case "roughworktolerance":
                    config.roughWorkTolerance = try roughWorkTolerance(pair, file: file)
                case "partitions", "qos", "level", "mode":
                    throw fail(pair.location,
                               "'\(pair.key)' belongs on a PreemptorClass= or PreemptibleClass= line")
                default:
                    throw fail(pair.location,
                        "unknown key '\(printable(pair.key))' (expected DefaultLevel, DefaultMode, AllowUserOverride, ShapeRequests, BasePolicy, PlanTimeout, PlanTimeBudget, StatsInterval, DecisionLog, DecisionLogMaxSize, DecisionLogKeep, CostOrder, RoughWorkTolerance, PreemptorClass or PreemptibleClass)")
                }
                globalsSeen[key] = line.line
            }
        }
        // Defaults are file-wide, not positional: a class line written before DefaultLevel=
        // still takes it.
        for rule in pending {
            let kind: JobClassRule.Kind = rule.isPreemptor
                ? .preemptor(level: rule.level ?? config.defaultLevel, mode: rule.mode ?? config.defaultMode)
                : .preemptible
            let resolved = JobClassRule(name: rule.name, kind: kind, partitions: rule.partitions,
                                        qos: rule.qos, line: rule.line, costOrder: rule.costOrder,
                                        roughWorkTolerance: rule.roughWorkTolerance)
            if let shadowing = config.classes.first(where: { resolved.isShadowed(by: $0) }) {
                warnings.append(fail(SourceLocation(line: rule.line, column: 1),
                    "class '\(rule.name)' never matches: class '\(shadowing.name)' on line \(shadowing.line) matches every job it would"))
            }
            config.classes.append(resolved)
        }
        if !config.classes.contains(where: { if case .preemptor = $0.kind { true } else { false } }) {
            warnings.append(fail(SourceLocation(line: 1, column: 1),
                                 "no PreemptorClass line: no job will be treated as a preemptor"))
        }
        return ParsedConfig(config: config, warnings: warnings)
    }
}

// MARK: - Line parsers

extension TopoAwareConfig {
    /// A class line before the file-wide defaults are applied.
    private struct PendingRule {
        var name: String
        var isPreemptor: Bool
        var partitions: Set<String>?
        var qos: Set<String>?
        var level: AffinityLevel?
        var mode: PlacementMode?
        var line: Int
        var costOrder: [CostCriterion]?
        var roughWorkTolerance: RoughWorkTolerance?
    }

    private static func parseClassLine(
        _ line: KeyValueLine, isPreemptor: Bool, file: String
    ) throws(TextDiagnostic) -> PendingRule {
        let head = line.pairs[0]
        let name = try identifier(head.value, at: head.valueLocation, what: "class name", file: file)
        var partitions: Set<String>? = nil
        var qos: Set<String>? = nil
        var level: AffinityLevel? = nil
        var mode: PlacementMode? = nil
        var order: [CostCriterion]? = nil
        var tolerance: RoughWorkTolerance? = nil
        var seen: [String: SourceLocation] = [:]
        for pair in line.pairs.dropFirst() {
            let key = asciiLowercased(pair.key)
            if seen[key] != nil {
                throw TextDiagnostic(file: file, location: pair.location,
                                     message: "'\(pair.key)' appears twice on this line")
            }
            seen[key] = pair.location
            switch key {
            case "partitions":
                partitions = try nameList(pair, what: "partition", file: file)
            case "qos":
                qos = try nameList(pair, what: "QOS", file: file)
            case "level" where isPreemptor:
                level = try Self.level(pair, file: file)
            case "mode" where isPreemptor:
                mode = try Self.mode(pair, file: file)
            case "costorder" where isPreemptor:
                order = try costOrder(pair, file: file)
            case "roughworktolerance" where isPreemptor:
                tolerance = try roughWorkTolerance(pair, file: file)
            case "level", "mode":
                throw TextDiagnostic(file: file, location: pair.location,
                    message: "'\(pair.key)' applies to PreemptorClass lines only: preemptible jobs need no GPU affinity")
            case "costorder", "roughworktolerance":
                throw TextDiagnostic(file: file, location: pair.location,
                    message: "'\(pair.key)' applies to PreemptorClass lines only: it orders the plans of a preemptor")
            default:
                throw TextDiagnostic(file: file, location: pair.location,
                    message: "unknown key '\(printable(pair.key))' on a class line (expected Partitions, QOS\(isPreemptor ? ", Level, Mode, CostOrder, RoughWorkTolerance" : ""))")
            }
        }
        guard partitions != nil || qos != nil else {
            throw TextDiagnostic(file: file, location: head.location,
                                 message: "class '\(name)' needs Partitions= or QOS= to say which jobs it covers")
        }
        return PendingRule(name: name, isPreemptor: isPreemptor, partitions: partitions, qos: qos,
                           level: level, mode: mode, line: line.line, costOrder: order,
                           roughWorkTolerance: tolerance)
    }

    private static func level(_ pair: KeyValuePair, file: String) throws(TextDiagnostic) -> AffinityLevel {
        guard let level = AffinityLevel(name: pair.value) else {
            throw TextDiagnostic(file: file, location: pair.valueLocation,
                message: "unknown level '\(printable(pair.value))' for \(pair.key) (expected one of \(AffinityLevel.allNames))")
        }
        return level
    }

    private static func mode(_ pair: KeyValuePair, file: String) throws(TextDiagnostic) -> PlacementMode {
        guard let mode = PlacementMode(name: pair.value) else {
            throw TextDiagnostic(file: file, location: pair.valueLocation,
                message: "unknown mode '\(printable(pair.value))' for \(pair.key) (expected one of \(PlacementMode.allNames))")
        }
        return mode
    }

    /// A cost order (`CostCriterion.parseOrder`); an error points at the criterion it names.
    private static func costOrder(_ pair: KeyValuePair, file: String) throws(TextDiagnostic) -> [CostCriterion] {
        switch CostCriterion.parseOrder(pair.value) {
        case let .success(order): return order
        case let .failure(error):
            var location = pair.valueLocation
            location.column += error.offset
            throw TextDiagnostic(file: file, location: location, message: "\(pair.key): \(error.message)")
        }
    }

    /// A percentage (`RoughWorkTolerance`).
    private static func roughWorkTolerance(_ pair: KeyValuePair, file: String) throws(TextDiagnostic) -> RoughWorkTolerance {
        guard let tolerance = RoughWorkTolerance(pair.value) else {
            throw TextDiagnostic(file: file, location: pair.valueLocation,
                message: "'\(printable(pair.value))' for \(pair.key) must be \(RoughWorkTolerance.expected)")
        }
        return tolerance
    }

    private static func boolean(_ pair: KeyValuePair, file: String) throws(TextDiagnostic) -> Bool {
        switch asciiLowercased(pair.value) {
        case "yes", "true", "1": return true
        case "no", "false", "0": return false
        default:
            throw TextDiagnostic(file: file, location: pair.valueLocation,
                message: "'\(printable(pair.value))' is not a boolean for \(pair.key) (expected yes or no)")
        }
    }

    private static func integer(_ pair: KeyValuePair, in range: ClosedRange<Int>, unit: String,
                                file: String) throws(TextDiagnostic) -> Int {
        guard !pair.value.isEmpty, pair.value.utf8.count <= 9, pair.value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let value = Int(pair.value), range.contains(value)
        else {
            throw TextDiagnostic(file: file, location: pair.valueLocation,
                message: "'\(printable(pair.value))' for \(pair.key) must be a whole number of \(unit) from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// An absolute path of at most 1,024 bytes without control characters (slurmctld opens it;
    /// a relative path would depend on its working directory).
    private static func absolutePath(_ pair: KeyValuePair, file: String) throws(TextDiagnostic) -> String {
        let bytes = pair.value.utf8
        guard bytes.first == UInt8(ascii: "/"), bytes.count <= 1024, !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }),
              bytes.last != UInt8(ascii: "/")
        else {
            throw TextDiagnostic(file: file, location: pair.valueLocation,
                message: "'\(printable(pair.value))' for \(pair.key) must be an absolute file path (starting with '/', at most 1024 bytes)")
        }
        return pair.value
    }

    private static func nameList(_ pair: KeyValuePair, what: String, file: String) throws(TextDiagnostic) -> Set<String> {
        var names: Set<String> = []
        var column = pair.valueLocation.column
        for part in pair.value.split(separator: ",", omittingEmptySubsequences: false) {
            let location = SourceLocation(line: pair.valueLocation.line, column: column)
            names.insert(try identifier(String(part), at: location, what: "\(what) name", file: file))
            column += part.utf8.count + 1
        }
        return names
    }

    /// Class, partition and QOS names: letters, digits, `_`, `-`, `.`, `+`; at most 64 bytes.
    static func identifier(_ text: String, at location: SourceLocation, what: String, file: String) throws(TextDiagnostic) -> String {
        guard !text.isEmpty else {
            throw TextDiagnostic(file: file, location: location, message: "empty \(what)")
        }
        guard text.utf8.count <= 64 else {
            throw TextDiagnostic(file: file, location: location, message: "\(what) '\(printable(text))' is longer than 64 characters")
        }
        guard text.utf8.allSatisfy(isIdentifierByte) else {
            throw TextDiagnostic(file: file, location: location,
                message: "invalid \(what) '\(printable(text))' (letters, digits, '_', '-', '.', '+' only)")
        }
        return text
    }
}

@inlinable
func isIdentifierByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"),
         UInt8(ascii: "."), UInt8(ascii: "+"):
        return true
    default:
        return false
    }
}
