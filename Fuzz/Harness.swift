import CSlurmMock
import CSlurmShim
import Glibc
import TopoEngine

/// Feeds one input to the plugin entry points slurmctld calls — job_submit, job_modify and the
/// preempt/topo_aware ABI (settings, preemptor test, decide, plan owners) — against the mocked
/// Slurm API, and checks what must hold whatever the input:
/// - no crash or trap (the process would die), no hang (libFuzzer's -timeout, the driver's clock);
/// - every Slurm allocation the plugin makes is released by what slurmctld frees (no leak, no
///   free of foreign memory);
/// - a decision's action is one of the four the C side knows, with at most 256 victims, and
///   every victim is a job the snapshot marked as preemptable by the base policy (the planner
///   never widens who can be preempted).
enum Harness {
    nonisolated(unsafe) static var directory = ""
    nonisolated(unsafe) static var baselineAllocations = 0
    nonisolated(unsafe) static var counts = [Int](repeating: 0, count: 5)

    static let goodConfig = """
        DefaultLevel=nvlink
        AllowUserOverride=yes
        ShapeRequests=yes
        PreemptorClass=inference Partitions=infer Level=nvlink Mode=guaranteed
        PreemptorClass=interactive Partitions=debug Level=socket Mode=best-effort
        PreemptibleClass=batch Partitions=batch

        """

    /// node1-2: two NVLink islands of four, one per socket; node3: NVLink pairs; node4: 4 GPUs,
    /// one asymmetric Links= pair.
    static let slurmConf = """
        ClusterName=fuzz
        NodeName=node[1-3] Sockets=2 CoresPerSocket=8 ThreadsPerCore=1 Gres=gpu:8
        NodeName=node4 Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 Gres=gpu:4
        PartitionName=infer Nodes=ALL
        PartitionName=batch Nodes=ALL Default=YES

        """

    static var gresConf: String {
        var lines: [String] = []
        for (node, group) in [("node[1-2]", 4), ("node3", 2)] {
            for g in 0..<8 {
                let links = (0..<8).map { p in p == g ? "-1" : (p / group == g / group ? "2" : "0") }.joined(separator: ",")
                lines.append("NodeName=\(node) Name=gpu File=/dev/nvidia\(g) Cores=\(g < 4 ? "0-7" : "8-15") Links=\(links)")
            }
        }
        for g in 0..<4 {
            let links = (0..<4).map { p in p == g ? "-1" : (g == 0 && p == 1 ? "2" : "0") }.joined(separator: ",")
            lines.append("NodeName=node4 Name=gpu File=/dev/nvidia\(g) Cores=0-7 Links=\(links)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes the configuration files into a private directory and initialises the plugin.
    static func setUp() {
        var template = Array("/tmp/topo-preempt-fuzz.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fail("cannot create a temporary directory") }
        directory = String(cString: made)
        write(goodConfig, to: "topo_aware.conf")
        write(slurmConf, to: "slurm.conf")
        write(gresConf, to: "gres.conf")
        unsetenv("TOPO_AWARE_CONF")
        CSlurmMock_reset()
        CSlurmMock_set_conf_dir(directory)
        guard CSlurmShim_job_submit_init() == SLURM_SUCCESS else { fail("init failed: \(logs())") }
        CSlurmMock_clear_log()
        baselineAllocations = CSlurmMock_live_allocations()
        atexit { Harness.tearDown() }
    }

    static func tearDown() {
        guard !directory.isEmpty else { return }
        for file in ["topo_aware.conf", "slurm.conf", "gres.conf", "topo_aware.conf.new"] {
            unlink(directory + "/" + file)
        }
        rmdir(directory)
        directory = ""
    }

    static func write(_ text: String, to name: String) {
        let path = directory + "/" + name
        guard let file = fopen(path + ".new", "w") else { fail("cannot write \(path)") }
        _ = text.utf8CString.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count - 1, file) }
        fclose(file)
        rename(path + ".new", path)  // a new inode, as editors and config management do
    }

    static func printError(_ line: String) {
        var bytes = Array((line + "\n").utf8)
        _ = Glibc.write(2, &bytes, bytes.count)
    }

    static func logs() -> [String] {
        (0..<CSlurmMock_log_count()).compactMap { CSlurmMock_log_line($0).map { String(cString: $0) } }
    }

    static func fail(_ message: String) -> Never {
        printError("topo-preempt-fuzz: FAILED: \(message)")
        abort()
    }

    /// One input: its first byte chooses the entry point.
    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        let kind = Int(input.byte() % 5)
        counts[kind] += 1
        switch kind {
        case 0: submit(&input, modify: false)
        case 1: submit(&input, modify: true)
        case 2, 3: preempt(&input)
        default: reconfigure(&input)
        }
        let live = CSlurmMock_live_allocations()
        if live != baselineAllocations || CSlurmMock_bad_frees() != 0 {
            fail("Slurm allocations \(live) (expected \(baselineAllocations)), bad frees \(CSlurmMock_bad_frees()); log: \(logs())")
        }
        CSlurmMock_clear_log()
    }

    // MARK: job_submit / job_modify

    /// A C copy of `bytes` (no NUL inside) made by `copy`: Slurm's xstrdup or malloc's strdup.
    static func cString(_ bytes: [UInt8], _ copy: (UnsafePointer<CChar>) -> UnsafeMutablePointer<CChar>?) -> UnsafeMutablePointer<CChar>? {
        (bytes + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { copy($0.baseAddress!) } }
    }

    /// A Slurm-allocated string from the input (what slurmctld puts in job_desc fields).
    static func slurmString(_ input: inout FuzzInput, percent: Int, tokens: Int = 6) -> UnsafeMutablePointer<CChar>? {
        guard input.chance(percent) else { return nil }
        return cString(input.text(tokens: tokens)) { CSlurmMock_xstrdup($0) }
    }

    static func submit(_ input: inout FuzzInput, modify: Bool) {
        let desc = UnsafeMutablePointer<job_desc_msg_t>.allocate(capacity: 1)
        desc.initialize(to: job_desc_msg_t())
        defer { desc.deallocate() }
        desc.pointee.job_id = input.interesting32()
        desc.pointee.min_nodes = input.interesting32()
        desc.pointee.max_nodes = input.interesting32()
        desc.pointee.sockets_per_node = input.pick([UInt16(NO_VAL16), 0, 1, 2, 3, UInt16.max, input.u16()])
        desc.pointee.partition = slurmString(&input, percent: 80, tokens: 3)
        desc.pointee.qos = slurmString(&input, percent: 30, tokens: 2)
        desc.pointee.admin_comment = slurmString(&input, percent: 30, tokens: 8)
        desc.pointee.name = slurmString(&input, percent: 50, tokens: 2)
        desc.pointee.tres_per_node = slurmString(&input, percent: 80)
        desc.pointee.tres_per_socket = slurmString(&input, percent: 20)
        desc.pointee.tres_per_job = slurmString(&input, percent: 15)
        desc.pointee.tres_per_task = slurmString(&input, percent: 10)
        // The --gpu-affinity option reaches job_submit in spank_job_env (malloc'd by Slurm's RPC layer).
        var environment: [UnsafeMutablePointer<CChar>?] = (0..<input.below(4)).map { _ in
            let prefix = input.chance(70) ? Array(AffinityOverride.spankVariable.utf8) + [UInt8(ascii: "=")] : []
            return cString(prefix + input.text(tokens: 3)) { strdup($0) }
        }
        defer { environment.forEach { free($0) } }
        let errMsg = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 1)
        errMsg.initialize(to: slurmString(&input, percent: 15, tokens: 2))
        defer { errMsg.deallocate() }
        CSlurmMock_set_default_partition(input.chance(50) ? input.pick(["infer", "batch", "debug", ""]) : nil)
        let uid = input.pick([0, 1000, input.u32()])
        let nullDescription = input.chance(2)
        environment.withUnsafeMutableBufferPointer { env in
            desc.pointee.spank_job_env = env.isEmpty ? nil : env.baseAddress
            desc.pointee.spank_job_env_size = UInt32(env.count)
            if modify {
                _ = CSlurmShim_job_modify(nullDescription ? nil : desc, nil, uid, nil)
            } else {
                _ = CSlurmShim_job_submit(nullDescription ? nil : desc, uid, errMsg)
            }
        }
        // What slurmctld frees after the call (the plugin may have replaced any of these).
        for field in [\job_desc_msg_t.partition, \.qos, \.admin_comment, \.name, \.tres_per_node,
                      \.tres_per_socket, \.tres_per_job, \.tres_per_task] {
            CSlurmMock_xfree(&desc.pointee[keyPath: field])
        }
        CSlurmMock_xfree(errMsg)
        CSlurmMock_set_default_partition(nil)
    }

    // MARK: preempt/topo_aware

    struct Job {
        var id: UInt32
        var basePriority: UInt32
        var eligible: Bool
        var start: Int64
        var allocations: [(node: UInt32, gpus: UInt64)]
    }

    static let partitionValues = ["infer", "batch", "debug", "infer,batch", "", "nope"]

    static func preempt(_ input: inout FuzzInput) {
        TopoAwareSwift_preemptReset()  // every input starts with no kept plans
        let names: [UnsafeMutablePointer<CChar>?] = (0..<input.below(7)).map { i in
            switch input.byte() % 8 {
            case 0: nil
            case 1: strdup("")
            case 2: cString(input.text(tokens: 2)) { strdup($0) }
            default: strdup("node\(i % 5 + 1)")
            }
        }
        defer { names.forEach { free($0) } }
        var nodes = names.map { name in
            topo_preempt_node_t(name: name, available: input.chance(90) ? 1 : 0,
                                gpu_count: input.pick([8, 8, 8, 4, 0, 6, 64, 65, input.u32()]), allocated: 0)
        }
        var jobs: [Job] = []
        var nextID: UInt32 = 1
        for _ in 0..<input.below(48) {
            nextID += UInt32(1 + input.below(3))
            let allocations = (0..<input.pick([1, 1, 1, 1, 2, 0, 3])).map { _ -> (node: UInt32, gpus: UInt64) in
                let node = UInt32(input.below(nodes.count + 1))  // sometimes past the end
                let gpus: UInt64 = input.chance(85)
                    ? ((1 << UInt64(1 + input.below(4))) - 1) << UInt64(input.below(8))
                    : input.u64()
                return (node, gpus)
            }
            jobs.append(Job(id: input.chance(97) ? nextID : input.u32(), basePriority: input.pick([1 << 16 | 1, 1 << 16 | 1, 10 << 16 | 1, input.u32()]),
                            eligible: input.chance(85), start: input.chance(90) ? Int64(input.below(7200)) : input.interesting64(),
                            allocations: allocations))
        }
        let owners = (0..<input.below(4)).map { _ in input.chance(50) ? UInt32(1000 + input.below(4)) : input.u32() }
        let preemptorID = UInt32(1000 + input.below(4))
        let admin = slurmPlain(&input, percent: 30, tokens: 8)
        let partition = input.chance(85) ? strdup(input.pick(partitionValues)) : slurmPlain(&input, percent: 50, tokens: 3)
        let qos = slurmPlain(&input, percent: 20, tokens: 2)
        defer { free(admin); free(partition); free(qos) }
        var request = topo_preempt_request_t()
        request.job_id = preemptorID
        request.base_prio = input.pick([10 << 16 | 1, 1 << 16 | 1, input.u32()])
        request.job_prio = input.u32()
        request.gpus_per_node = input.pick([1, 2, 4, 4, 8, 0, 3, 64, 65, input.u32()])
        request.node_count = input.pick([1, 1, 2, 0, input.u32()])
        request.per_socket = input.chance(20) ? 1 : 0
        request.cpus_per_node = input.pick([1, 4, 16, 0, input.u32()])
        request.admin_comment = UnsafePointer(admin)
        request.partition = UnsafePointer(partition)
        request.qos = UnsafePointer(qos)
        request.segment_size = input.chance(80) ? 0 : input.pick([1, 2, 3, 4, input.u32()])
        request.segment_flags = input.chance(80) ? 0 : input.pick([1, 2, 3, input.u32()])
        let required: [UInt32] = input.chance(80) ? [] : (0..<input.below(4)).map { _ in input.chance(95) ? UInt32(input.below(nodes.count + 1)) : input.u32() }
        let candidates: [UInt32]? = input.chance(30) ? nil : (0..<input.below(nodes.count + 2)).map { _ in UInt32(input.below(nodes.count + 1)) }
        var now = input.chance(90) ? Int64(3600 + input.below(3600)) : input.interesting64()
        let exempt = input.chance(80) ? 0 : input.interesting32()
        let abi = input.chance(98) ? TOPO_PREEMPT_ABI_VERSION : input.u32()
        // Slot snapshots (the whole cluster, the planner keeping its state): everything at first,
        // then honest updates (every slot and node listed, the next sequence) or lies (any
        // lists, indices, epochs and sequences: then only memory safety and a well-formed
        // answer are checked).
        let slots = input.chance(40)
        var epoch = UInt64(1 + input.below(3)), sequence: UInt64 = 0

        for round in 0..<(1 + input.below(4)) {
            // GPUs allocated on each node: what the jobs hold, plus some Slurm holds for others.
            for i in nodes.indices {
                nodes[i].allocated = jobs.reduce(0) { acc, job in
                    job.allocations.reduce(acc) { $1.node == UInt32(i) ? $0 | $1.gpus : $0 }
                } | (input.chance(10) ? input.u64() : 0)
            }
            var allocs: [topo_preempt_alloc_t] = []
            var flat: [topo_preempt_job_t] = []
            for job in jobs {
                let first = UInt32(allocs.count)
                allocs += job.allocations.map { topo_preempt_alloc_t(node: $0.node, reserved: 0, gpus: $0.gpus) }
                var entry = topo_preempt_job_t(job_id: job.id, base_prio: job.basePriority, eligible: job.eligible ? 1 : 0,
                                               alloc_count: UInt32(job.allocations.count), start_time: job.start,
                                               alloc_first: first, flags: input.chance(10) ? TOPO_PREEMPT_JOB_DRAINING : 0)
                if input.chance(1) { entry.alloc_first = input.interesting32() }
                if input.chance(1) { entry.alloc_count = input.interesting32() }
                flat.append(entry)
            }
            var decision = topo_preempt_decision_t()
            var rc: Int32
            if slots {
                sequence += 1
                let everything = round == 0 || input.chance(25)
                let honest = everything || input.chance(75)
                var update = SlotUpdate(epoch: epoch, sequence: sequence, jobs: everything ? nil : Array(0..<UInt32(flat.count)),
                                        nodes: everything ? nil : Array(0..<UInt32(nodes.count)))
                if !honest {
                    update.jobs = (0..<input.below(8)).map { _ in UInt32(input.below(flat.count + 3)) }
                    update.nodes = (0..<input.below(8)).map { _ in input.chance(90) ? UInt32(input.below(nodes.count + 2)) : input.u32() }
                    if input.chance(30) { update.epoch = UInt64(input.u32()) }
                    if input.chance(30) { update.sequence = UInt64(input.u32()) }
                }
                rc = decide(nodes: nodes, jobs: flat, allocs: allocs, owners: owners, candidates: candidates, required: required,
                            request: request, now: now, exempt: exempt, abi: abi, slots: update, into: &decision)
                if decision.flags & TOPO_PREEMPT_DECISION_RESYNC != 0 {
                    // As the C side does: at once again, with everything.
                    sequence += 1
                    decision = topo_preempt_decision_t()
                    rc = decide(nodes: nodes, jobs: flat, allocs: allocs, owners: owners, candidates: candidates, required: required,
                                request: request, now: now, exempt: exempt, abi: abi,
                                slots: SlotUpdate(epoch: epoch, sequence: sequence, jobs: nil, nodes: nil), into: &decision)
                    guard decision.flags & TOPO_PREEMPT_DECISION_RESYNC == 0 else { fail("a resync asked for after everything was given") }
                    check(decision, rc: rc, jobs: jobs)
                } else if honest {
                    check(decision, rc: rc, jobs: jobs)
                } else {
                    check(decision, rc: rc, jobs: nil)
                }
                if input.chance(5) { epoch += 1 }
            } else {
                rc = decide(nodes: nodes, jobs: flat, allocs: allocs, owners: owners, candidates: candidates, required: required,
                            request: request, now: now, exempt: exempt, abi: abi, into: &decision)
                check(decision, rc: rc, jobs: jobs)
            }
            // Victims stop (their GPUs free up) before the next pass, as they would in slurmctld;
            // time moves on, sometimes past PlanTimeout.
            let victims = Set(victimList(decision))
            if !victims.isEmpty && input.chance(70) { jobs.removeAll { victims.contains($0.id) } }
            now = now.addingReportingOverflow(Int64(input.pick([0, 5, 30, 301, 3600]))).partialValue
            if round > 0 && input.chance(20) { jobs.removeAll() }
        }
        var ids = [UInt32](repeating: 0, count: 8)
        _ = TopoAwareSwift_preemptPlanOwners(&ids, UInt32(input.below(9)))
        _ = TopoAwareSwift_preemptIsPreemptor(admin, partition, qos)
        var settings = topo_preempt_settings_t()
        _ = TopoAwareSwift_preemptSettings(&settings)
        if input.chance(2) { _ = TopoAwareSwift_preemptDecide(nil, nil) }
    }

    /// A malloc'd C string from the input (the C side owns the preemptor's strings).
    static func slurmPlain(_ input: inout FuzzInput, percent: Int, tokens: Int) -> UnsafeMutablePointer<CChar>? {
        guard input.chance(percent) else { return nil }
        return cString(input.text(tokens: tokens)) { strdup($0) }
    }

    /// A slot snapshot's protocol fields (nil lists: every slot or node).
    struct SlotUpdate {
        var epoch: UInt64
        var sequence: UInt64
        var jobs: [UInt32]?
        var nodes: [UInt32]?
    }

    static func decide(nodes: [topo_preempt_node_t], jobs: [topo_preempt_job_t], allocs: [topo_preempt_alloc_t],
                       owners: [UInt32], candidates: [UInt32]?, required: [UInt32] = [], request: topo_preempt_request_t, now: Int64,
                       exempt: UInt32, abi: UInt32, slots: SlotUpdate? = nil,
                       into decision: inout topo_preempt_decision_t) -> Int32 {
        let eligible = jobs.map { UInt8(truncatingIfNeeded: $0.eligible) }
        let priorities = jobs.map(\.base_prio)
        let dirtyJobs = slots?.jobs ?? [], dirtyNodes = slots?.nodes ?? []
        return nodes.withUnsafeBufferPointer { n in
            jobs.withUnsafeBufferPointer { j in
                allocs.withUnsafeBufferPointer { a in
                    owners.withUnsafeBufferPointer { o in
                        (candidates ?? []).withUnsafeBufferPointer { c in
                          required.withUnsafeBufferPointer { r in
                            var s = topo_preempt_snapshot_t()
                            s.abi_version = abi
                            s.exempt_seconds = exempt
                            s.now = now
                            s.node_count = UInt32(n.count)
                            s.nodes = n.baseAddress
                            s.job_count = UInt32(j.count)
                            s.jobs = j.baseAddress
                            s.alloc_count = UInt32(a.count)
                            s.allocs = a.baseAddress
                            s.owner_count = UInt32(o.count)
                            s.pending_owners = o.baseAddress
                            s.preemptor = request
                            s.preemptor.candidate_count = candidates == nil ? UInt32.max : UInt32(c.count)
                            s.preemptor.candidate_nodes = c.baseAddress
                            // Named nodes: the count as given (a lie past the list is the C
                            // side's to prevent; the adapter bounds it by node_count).
                            s.preemptor.required_count = UInt32(r.count)
                            s.preemptor.required_nodes = r.baseAddress
                            guard let slots else { return TopoAwareSwift_preemptDecide(&s, &decision) }
                            s.flags = TOPO_PREEMPT_SNAPSHOT_SLOTS
                            s.epoch = slots.epoch
                            s.sequence = slots.sequence
                            s.dirty_job_count = slots.jobs.map { UInt32($0.count) } ?? TOPO_PREEMPT_DIRTY_ALL
                            s.dirty_node_count = slots.nodes.map { UInt32($0.count) } ?? TOPO_PREEMPT_DIRTY_ALL
                            return eligible.withUnsafeBufferPointer { e in
                                priorities.withUnsafeBufferPointer { p in
                                    dirtyJobs.withUnsafeBufferPointer { dj in
                                        dirtyNodes.withUnsafeBufferPointer { dn in
                                            s.slot_eligible = e.baseAddress
                                            s.slot_base_prio = p.baseAddress
                                            s.dirty_jobs = dj.baseAddress
                                            s.dirty_nodes = dn.baseAddress
                                            return TopoAwareSwift_preemptDecide(&s, &decision)
                                        }
                                    }
                                }
                            }
                          }
                        }
                    }
                }
            }
        }
    }

    static func victimList(_ decision: topo_preempt_decision_t) -> [UInt32] {
        var copy = decision
        let count = Int(min(decision.victim_count, TOPO_PREEMPT_MAX_VICTIMS))
        return withUnsafeBytes(of: &copy.victims) { Array($0.bindMemory(to: UInt32.self).prefix(count)) }
    }

    /// `jobs` nil: the planner was lied to (any dirty lists), only the answer's form is checked.
    static func check(_ decision: topo_preempt_decision_t, rc: Int32, jobs: [Job]?) {
        let actions = [TOPO_PREEMPT_BASE_POLICY, TOPO_PREEMPT_ONLY_VICTIMS, TOPO_PREEMPT_VICTIMS_FIRST, TOPO_PREEMPT_NO_VICTIMS]
        guard actions.contains(Int(decision.action)) else { fail("unknown action \(decision.action)") }
        guard decision.victim_count <= TOPO_PREEMPT_MAX_VICTIMS else { fail("\(decision.victim_count) victims") }
        if rc != 0 && (decision.action != Int32(TOPO_PREEMPT_BASE_POLICY) || decision.victim_count != 0) {
            fail("error return with action \(decision.action) and \(decision.victim_count) victims")
        }
        guard let jobs else { return }
        let preemptable = Set(jobs.filter(\.eligible).map(\.id))
        let others = Set(jobs.filter { !$0.eligible }.map(\.id))
        for victim in victimList(decision) where !preemptable.contains(victim) || others.contains(victim) {
            fail("victim \(victim) is not preemptable under the base policy; log: \(logs())")
        }
    }

    // MARK: topo_aware.conf edited while running

    /// A topo_aware.conf edit (often broken) picked up by the next hooks; then the good file again.
    static func reconfigure(_ input: inout FuzzInput) {
        var lines: [String] = goodConfig.split(separator: "\n").map(String.init)
        for _ in 0..<(1 + input.below(4)) {
            let garbage = String(decoding: input.text(tokens: 6), as: UTF8.self)
            if input.chance(50) || lines.isEmpty {
                lines.insert(garbage, at: input.below(lines.count + 1))
            } else {
                lines[input.below(lines.count)] = garbage
            }
        }
        write(lines.joined(separator: "\n") + "\n", to: "topo_aware.conf")
        var settings = topo_preempt_settings_t()
        _ = TopoAwareSwift_preemptSettings(&settings)
        submit(&input, modify: false)
        write(goodConfig, to: "topo_aware.conf")
        _ = TopoAwareSwift_preemptSettings(&settings)
    }
}
