import Testing
@testable import TopoEngine

@Suite struct TopologyPolicyTests {
    static func summary(_ gres: String = GresConfTests.islands, coresPerSocket: Int? = 8) throws -> TopologySummary {
        let nodes = [SlurmNodeSpec(line: 1, names: ["node1", "node2"], gres: try GresString.parse("gpu:8"),
                                   sockets: 2, coresPerSocket: coresPerSocket)]
        return TopologySummary.build(slurmNodes: nodes, gresConf: try GresConf.parse(gres, file: "g")).summary
    }

    static let nvlink = JobClassification.preemptor(className: "inference", level: .nvlink, mode: .guaranteed, userOverride: false)

    @Test func summaryOfTheIslandsCluster() throws {
        let summary = try Self.summary()
        #expect(summary.nodeCount == 2)
        #expect(summary.largestGroup == [4, 4, 4, 4, 4, 8])
        #expect(summary.socketLevel == [true, true, true, true, true, false])
        #expect(summary.exampleGroups[0] == "{0-3} {4-7}")
    }

    @Test func socketsMustComeFromTheSlurmLayout() throws {
        // Without CoresPerSocket, Slurm's socket of each GPU is not known: no shaping.
        let summary = try Self.summary(coresPerSocket: nil)
        #expect(summary.socketLevel.allSatisfy { !$0 })
        let decision = TopologyPolicy(summary: summary, shapeRequests: true, tresSyntax: .colon).decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:4"))
        #expect(decision == .unchanged)
    }

    @Test(arguments: [
        (GPURequest(tresPerNode: "gres:gpu:4"), 4),
        (GPURequest(tresPerNode: "gres:gpu:a100:2,gres:mps:10"), 2),
        (GPURequest(tresPerJob: "gres:gpu:4"), nil),
        (GPURequest(tresPerJob: "gres:gpu:4", maxNodes: 1), 4),
        (GPURequest(tresPerSocket: "gres:gpu:2"), nil),
        (GPURequest(tresPerSocket: "gres:gpu:2", socketsPerNode: 1), 2),
        (GPURequest(tresPerNode: "gres:gpu:2", tresPerTask: "gres:gpu:1"), nil),
        (GPURequest(), 0),
    ] as [(GPURequest, Int?)])
    func gpusPerNode(_ request: GPURequest, _ expected: Int?) throws {
        #expect(try request.gpusPerNode() == expected)
    }

    @Test func decisions() throws {
        let policy = TopologyPolicy(summary: try Self.summary(), shapeRequests: true, tresSyntax: .colon)
        guard case let .shape(shaped) = policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:3")) else {
            Issue.record("not shaped")
            return
        }
        #expect(shaped.tresPerSocket == "gres:gpu:3" && shaped.tresPerNode == nil && shaped.socketsPerNode == 1)
        #expect(shaped.tag == "gpus-per-socket:3")
        // Too many for a group: rejected, naming the largest group and what would fit.
        guard case let .reject(message) = policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:5")) else {
            Issue.record("not rejected")
            return
        }
        #expect(message.contains("the largest nvlink group has 4 GPUs ({0-3} {4-7} on each node)"))
        #expect(message.contains("--gpu-affinity=node"))
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:9"))
            == .reject(message: "topo_aware: 9 GPUs per node: no node of this cluster has more than 8 GPUs"))
        // Best-effort, preemptible, unmanaged, unreadable or user-shaped requests: unchanged.
        let bestEffort = JobClassification.preemptor(className: "i", level: .nvlink, mode: .bestEffort, userOverride: true)
        #expect(policy.decide(bestEffort, GPURequest(tresPerNode: "gres:gpu:6")) == .unchanged)
        #expect(policy.decide(.preemptible(className: "b"), GPURequest(tresPerNode: "gres:gpu:8")) == .unchanged)
        #expect(policy.decide(.unmanaged, GPURequest(tresPerNode: "gres:gpu:8")) == .unchanged)
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:a:b:c")) == .unchanged)
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres/gpu:1:2:3")) == .unchanged)
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres/gpu")) == .unchanged)
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerSocket: "gres:gpu:4", socketsPerNode: 1)) == .unchanged)
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:4", socketsPerNode: 2)) == .unchanged)
        let noShaping = TopologyPolicy(summary: try Self.summary(), shapeRequests: false, tresSyntax: .colon)
        #expect(noShaping.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:4")) == .unchanged)
    }

    /// Slurm 23.02+ writes GRES in TRES strings as `gres/gpu:N` and parses only that form after a
    /// message is unpacked: the shaped request is written in the running release's form, and
    /// requests in either form are read.
    @Test(arguments: [(TRESSyntax.colon, "gres:gpu:4", "gres:mps:10"), (.slash, "gres/gpu:4", "gres/mps:10")])
    func shapedRequestsAreWrittenInTheReleasesTRESForm(_ syntax: TRESSyntax, _ expected: String, _ other: String) throws {
        let policy = TopologyPolicy(summary: try Self.summary(), shapeRequests: true, tresSyntax: syntax)
        for request in ["gres:gpu:4", "gres/gpu:4"] {
            guard case let .shape(shaped) = policy.decide(Self.nvlink, GPURequest(tresPerNode: "\(request),\(other)")) else {
                Issue.record("\(request) not shaped")
                continue
            }
            #expect(shaped.tresPerSocket == expected)
            #expect(shaped.tresPerNode == other)
        }
        // Slurm 23.02+ records `-c 2` as tres_per_task `cpu=2`: still shaped; GPUs per task are not.
        let withCPUs = policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres/gpu:4", tresPerTask: "cpu=2"))
        if case .shape = withCPUs {} else { Issue.record("cpu=2 per task kept the request from being shaped: \(withCPUs)") }
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres/gpu:4", tresPerTask: "cpu=2,gres/gpu:1")) == .unchanged)
        #expect(TRESSyntax(gresPrefix: syntax.gresPrefix) == syntax)
        #expect(TRESSyntax(gresPrefix: "gres") == nil)
    }

    @Test func pairsAreFinerThanASocketSoNothingIsShaped() throws {
        let pairs = (0..<8).map { g in
            let links = (0..<8).map { p in p == g ? "-1" : (p / 2 == g / 2 ? "2" : "0") }.joined(separator: ",")
            return "NodeName=node[1-2] Name=gpu File=/dev/nvidia\(g) Cores=\(g < 4 ? "0-7" : "8-15") Links=\(links)"
        }.joined(separator: "\n")
        let summary = try Self.summary(pairs)
        #expect(summary.socketLevel[AffinityLevel.nvlink.rawValue] == false)
        #expect(summary.socketLevel[AffinityLevel.socket.rawValue] == true)
        let policy = TopologyPolicy(summary: summary, shapeRequests: true, tresSyntax: .colon)
        #expect(policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:2")) == .unchanged)
        if case .reject = policy.decide(Self.nvlink, GPURequest(tresPerNode: "gres:gpu:3")) {} else {
            Issue.record("3 GPUs cannot be nvlink-aligned on NVLink pairs")
        }
    }

    @Test func adminCommentTagWithShapeRoundTrips() {
        let tag = AdminCommentTag.format(Self.nvlink, shape: "gpus-per-socket:4")
        #expect(tag == "topo_aware:preemptor=inference,level=nvlink,mode=guaranteed,shape=gpus-per-socket:4")
        #expect(AdminCommentTag.parse(adminComment: tag) == Self.nvlink)
    }
}
