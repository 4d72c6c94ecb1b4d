import Foundation
import Testing
@testable import TopoEngine

@Suite struct TopoAwareConfigTests {
    static let sample = """
        # TopoPreempt test configuration
        DefaultLevel=socket
        DefaultMode=best-effort
        AllowUserOverride=no
        PreemptorClass=inference Partitions=infer,infer-hi Level=nvlink Mode=guaranteed
        PreemptorClass=interactive QOS=interactive
        PreemptibleClass=batch Partitions=batch QOS=normal,scavenger
        """

    @Test func parsesGlobalsAndClassesInOrder() throws {
        let parsed = try TopoAwareConfig.parse(Self.sample, file: "topo_aware.conf")
        let config = parsed.config
        #expect(parsed.warnings.isEmpty)
        #expect(config.defaultLevel == .socket)
        #expect(config.defaultMode == .bestEffort)
        #expect(config.allowUserOverride == false)
        #expect(config.classes.map(\.name) == ["inference", "interactive", "batch"])
        #expect(config.classes[0].kind == .preemptor(level: .nvlink, mode: .guaranteed))
        #expect(config.classes[0].partitions == ["infer", "infer-hi"])
        #expect(config.classes[0].qos == nil)
        // Defaults apply to class lines that give no Level/Mode.
        #expect(config.classes[1].kind == .preemptor(level: .socket, mode: .bestEffort))
        #expect(config.classes[2].kind == .preemptible)
        #expect(config.classes[2].qos == ["normal", "scavenger"])
        #expect(config.classes[2].line == 7)
    }

    @Test func defaultsAreFileWideNotPositional() throws {
        let text = "PreemptorClass=a Partitions=p\nDefaultLevel=numa\n"
        let config = try TopoAwareConfig.parse(text, file: "f").config
        #expect(config.classes[0].kind == .preemptor(level: .numa, mode: .guaranteed))
    }

    @Test func builtInDefaults() throws {
        let config = try TopoAwareConfig.parse("PreemptorClass=a Partitions=p", file: "f").config
        #expect(config.defaultLevel == .nvlink)
        #expect(config.defaultMode == .guaranteed)
        #expect(config.allowUserOverride)
    }

    @Test func preemptSettings() throws {
        let defaults = try TopoAwareConfig.parse("PreemptorClass=a Partitions=p", file: "f").config
        #expect(defaults.basePolicy == .partitionPriority)
        #expect(defaults.planTimeoutSeconds == 300 && defaults.planTimeBudgetMilliseconds == 200)
        #expect(defaults.statsIntervalSeconds == 300)
        let set = try TopoAwareConfig.parse("BasePolicy=QOS\nPlanTimeout=120\nPlanTimeBudget=50\nStatsInterval=0\nPreemptorClass=a Partitions=p", file: "f").config
        #expect(set.statsIntervalSeconds == 0)
        #expect(set.basePolicy == .qos)
        #expect(set.planTimeoutSeconds == 120 && set.planTimeBudgetMilliseconds == 50)
    }

    @Test func decisionLogKeys() throws {
        let defaults = try TopoAwareConfig.parse("PreemptorClass=a Partitions=p", file: "f").config
        #expect(defaults.decisionLog == nil && defaults.decisionLogMaxSizeMiB == 100 && defaults.decisionLogKeep == 5)
        let set = try TopoAwareConfig.parse("decisionlog=/var/log/slurm/d.jsonl\nDecisionLogMaxSize=1\nDecisionLogKeep=2", file: "f").config
        #expect(set.decisionLog == "/var/log/slurm/d.jsonl" && set.decisionLogMaxSizeMiB == 1 && set.decisionLogKeep == 2)
    }

    /// CostOrder=: the file's and a preemptor class's own; criteria left out follow in the
    /// default order; case ignored; `config check`'s view of each class's order.
    @Test func costOrder() throws {
        let defaults = try TopoAwareConfig.parse("PreemptorClass=a Partitions=p", file: "f").config
        #expect(defaults.costOrder == [.priority, .victims, .work, .collateral] && defaults.classes[0].costOrder == nil)
        let set = try TopoAwareConfig.parse("""
            CostOrder=Work,victims
            PreemptorClass=a Partitions=p
            PreemptorClass=b Partitions=q costorder=victims,priority,collateral,work
            PreemptibleClass=c Partitions=r
            """, file: "f").config
        #expect(set.costOrder == [.work, .victims, .priority, .collateral])
        #expect(set.classes[0].costOrder == nil)
        #expect(set.classes[1].costOrder == [.victims, .priority, .collateral, .work])
        #expect(CostCriterion.text(set.costOrder) == "work,victims,priority,collateral")
        #expect(CostCriterion.parseOrder("collateral") == .success([.collateral, .priority, .victims, .work]))
        #expect(CostCriterion.parseOrder("priority,Rough-Work,victims") == .success([.priority, .roughWork, .victims, .work, .collateral]))
        #expect(CostCriterion.text([.priority, .roughWork, .victims, .work, .collateral]) == "priority,rough-work,victims,work,collateral")
        #expect(CostCriterion.parseOrder("priority,bogus") == .failure(.init(
            message: "'bogus' is not a cost criterion (expected priority, victims, work, rough-work or collateral)", offset: 9)))
    }

    /// RoughWorkTolerance=: the file's and a preemptor class's own, 2% when not given.
    @Test func roughWorkTolerance() throws {
        let defaults = try TopoAwareConfig.parse("PreemptorClass=a Partitions=p", file: "f").config
        #expect(defaults.roughWorkTolerance == .default && defaults.roughWorkTolerance.perMille == 20)
        #expect(defaults.classes[0].roughWorkTolerance == nil && defaults.roughWorkTolerance(of: defaults.classes[0]) == .default)
        let set = try TopoAwareConfig.parse("""
            roughworktolerance=5%
            PreemptorClass=a Partitions=p
            PreemptorClass=b Partitions=q CostOrder=rough-work RoughWorkTolerance=0.5
            """, file: "f").config
        #expect(set.roughWorkTolerance.perMille == 50)
        #expect(set.roughWorkTolerance(of: set.classes[0]).perMille == 50 && set.roughWorkTolerance(of: nil).perMille == 50)
        #expect(set.roughWorkTolerance(of: set.classes[1]).perMille == 5 && set.classes[1].roughWorkTolerance?.description == "0.5%")
    }

    @Test func keysAreCaseInsensitive() throws {
        let config = try TopoAwareConfig.parse(
            "defaultlevel=PCIe-Switch\npreemptorclass=a partitions=p LEVEL=Host-Bridge", file: "f").config
        #expect(config.defaultLevel == .pcieSwitch)
        #expect(config.classes[0].kind == .preemptor(level: .hostBridge, mode: .guaranteed))
    }

    @Test(arguments: [
        ("Levle=nvlink", "f:1:1: unknown key 'Levle' (expected DefaultLevel, DefaultMode, AllowUserOverride, ShapeRequests, BasePolicy, PlanTimeout, PlanTimeBudget, StatsInterval, DecisionLog, DecisionLogMaxSize, DecisionLogKeep, CostOrder, RoughWorkTolerance, PreemptorClass or PreemptibleClass)"),
        ("DecisionLog=log/d.jsonl", "f:1:13: 'log/d.jsonl' for DecisionLog must be an absolute file path (starting with '/', at most 1024 bytes)"),
        ("DecisionLog=/var/log/", "f:1:13: '/var/log/' for DecisionLog must be an absolute file path (starting with '/', at most 1024 bytes)"),
        ("DecisionLogMaxSize=0", "f:1:20: '0' for DecisionLogMaxSize must be a whole number of MiB from 1 to 1048576"),
        ("DecisionLogKeep=1001", "f:1:17: '1001' for DecisionLogKeep must be a whole number of files from 1 to 1000"),
        ("BasePolicy=tiers", "f:1:12: unknown base policy 'tiers' (expected partition_prio or qos)"),
        ("PlanTimeout=0", "f:1:13: '0' for PlanTimeout must be a whole number of seconds from 1 to 86400"),
        ("StatsInterval=-1", "f:1:15: '-1' for StatsInterval must be a whole number of seconds from 0 to 86400"),
        ("PlanTimeBudget=5ms", "f:1:16: '5ms' for PlanTimeBudget must be a whole number of milliseconds from 1 to 10000"),
        ("DefaultLevel=nvlnk", "f:1:14: unknown level 'nvlnk' for DefaultLevel (expected one of nvlink, pcie-switch, host-bridge, numa, socket, node)"),
        ("DefaultMode=strict", "f:1:13: unknown mode 'strict' for DefaultMode (expected one of guaranteed, best-effort)"),
        ("AllowUserOverride=maybe", "f:1:19: 'maybe' is not a boolean for AllowUserOverride (expected yes or no)"),
        ("DefaultLevel=node\nDefaultLevel=numa", "f:2:1: 'DefaultLevel' is already set on line 1"),
        ("PreemptorClass=a", "f:1:1: class 'a' needs Partitions= or QOS= to say which jobs it covers"),
        ("PreemptorClass=a Partitions=p\nPreemptibleClass=a QOS=q", "f:2:18: class 'a' is already defined on line 1"),
        ("PreemptibleClass=b Partitions=p Level=nvlink", "f:1:33: 'Level' applies to PreemptorClass lines only: preemptible jobs need no GPU affinity"),
        ("PreemptorClass=a Partitions=p Nodes=x", "f:1:31: unknown key 'Nodes' on a class line (expected Partitions, QOS, Level, Mode, CostOrder, RoughWorkTolerance)"),
        ("CostOrder=work,victim", "f:1:16: CostOrder: 'victim' is not a cost criterion (expected priority, victims, work, rough-work or collateral)"),
        ("CostOrder=work,,victims", "f:1:16: CostOrder: an empty criterion in 'work,,victims' (expected a comma-separated list of priority, victims, work, rough-work, collateral)"),
        ("CostOrder=", "f:1:11: CostOrder: no criterion given (expected a comma-separated list of priority, victims, work, rough-work, collateral)"),
        ("CostOrder=work,priority,Work", "f:1:25: CostOrder: 'Work' is given twice"),
        ("CostOrder=work\nCostOrder=victims", "f:2:1: 'CostOrder' is already set on line 1"),
        ("PreemptorClass=a Partitions=p CostOrder=victims,lost", "f:1:49: CostOrder: 'lost' is not a cost criterion (expected priority, victims, work, rough-work or collateral)"),
        ("PreemptibleClass=b Partitions=p CostOrder=work", "f:1:33: 'CostOrder' applies to PreemptorClass lines only: it orders the plans of a preemptor"),
        ("RoughWorkTolerance=2.55%", "f:1:20: '2.55%' for RoughWorkTolerance must be a percentage from 0 to 100 with at most one decimal, such as 2 or 2.5%"),
        ("RoughWorkTolerance=", "f:1:20: '' for RoughWorkTolerance must be a percentage from 0 to 100 with at most one decimal, such as 2 or 2.5%"),
        ("CostOrder=work\nroughworktolerance=5\nRoughWorkTolerance=2", "f:3:1: 'RoughWorkTolerance' is already set on line 2"),
        ("PreemptorClass=a Partitions=p RoughWorkTolerance=101", "f:1:50: '101' for RoughWorkTolerance must be a percentage from 0 to 100 with at most one decimal, such as 2 or 2.5%"),
        ("PreemptorClass=a Partitions=p RoughWorkTolerance=1 RoughWorkTolerance=2", "f:1:52: 'RoughWorkTolerance' appears twice on this line"),
        ("PreemptibleClass=b Partitions=p RoughWorkTolerance=5", "f:1:33: 'RoughWorkTolerance' applies to PreemptorClass lines only: it orders the plans of a preemptor"),
        ("PreemptorClass=a Partitions=p Partitions=q", "f:1:31: 'Partitions' appears twice on this line"),
        ("PreemptorClass=a Partitions=p,,q", "f:1:31: empty partition name"),
        ("PreemptorClass=a Partitions=p,q/r", "f:1:31: invalid partition name 'q/r' (letters, digits, '_', '-', '.', '+' only)"),
        ("PreemptorClass= Partitions=p", "f:1:16: empty class name"),
        ("DefaultMode=guaranteed PreemptorClass=a QOS=q", "f:1:24: 'PreemptorClass' must start its own line"),
        ("Partitions=p", "f:1:1: 'Partitions' belongs on a PreemptorClass= or PreemptibleClass= line"),
    ])
    func errorsNameFileLineAndColumn(text: String, expected: String) {
        do {
            _ = try TopoAwareConfig.parse(text, file: "f")
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.description == expected)
        }
    }

    @Test func warnsAboutShadowedClassesAndMissingPreemptors() throws {
        let parsed = try TopoAwareConfig.parse("""
            PreemptibleClass=all-batch Partitions=batch
            PreemptibleClass=batch-low Partitions=batch QOS=low
            """, file: "f")
        #expect(parsed.warnings.map(\.description) == [
            "f:2:1: class 'batch-low' never matches: class 'all-batch' on line 1 matches every job it would",
            "f:1:1: no PreemptorClass line: no job will be treated as a preemptor",
        ])
    }

    @Test func rejectsOversizedFiles() {
        let text = String(repeating: "#", count: TopoAwareConfig.maxFileSize + 1)
        #expect(throws: TextDiagnostic.self) { try TopoAwareConfig.parse(text, file: "f") }
    }

    @Test func shippedExampleParsesWithoutWarnings() throws {
        let text = try exampleConfigText()
        let parsed = try TopoAwareConfig.parse(text, file: "etc/topo_aware.conf")
        #expect(parsed.warnings.isEmpty)
        #expect(parsed.config.classes.contains { $0.name == "inference" })
    }

    /// Random edits of a valid file never crash the parser: each either parses or names a line
    /// within the file.
    @Test func mutatedConfigsNeverCrash() {
        var rng = SplitMix64(seed: 2026)
        let base = Array(Self.sample.utf8)
        let alphabet = Array("=#\" \t\n\\,:abcPQ-_0\u{0}".utf8) + [0xFF, 0xC3]
        for _ in 0..<5_000 {
            var bytes = base
            for _ in 0..<Int(rng.next() % 6 + 1) {
                let position = Int(rng.next() % UInt64(bytes.count + 1))
                switch rng.next() % 3 {
                case 0 where position < bytes.count: bytes.remove(at: position)
                case 1: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: position)
                default:
                    if position < bytes.count { bytes[position] = alphabet[Int(rng.next() % UInt64(alphabet.count))] }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
            do {
                _ = try TopoAwareConfig.parse(text, file: "f")
            } catch {
                #expect(error.location.line >= 1 && error.location.line <= lineCount)
            }
        }
    }
}


/// etc/topo_aware.conf from the repository.
func exampleConfigText() throws -> String {
    let here = #filePath
    var root = here
    for _ in 0..<3 { root = String(root[..<(root.lastIndex(of: "/") ?? root.startIndex)]) }
    return try String(contentsOfFile: root + "/etc/topo_aware.conf", encoding: .utf8)
}
