import CSlurmMock
import CSlurmShim
import Foundation
import CSlurmClient
import SlurmBridge
import SlurmClient
import Testing
import TopoEngine

/// libslurm messages built by hand, as slurm_load_* return them; freed by the test.
final class ClientMessages {
    var strings: [UnsafeMutablePointer<CChar>] = []
    var buffers: [UnsafeMutableRawPointer] = []
    let jobs = UnsafeMutablePointer<job_info_msg_t>.allocate(capacity: 1)
    let nodes = UnsafeMutablePointer<node_info_msg_t>.allocate(capacity: 1)
    let partitions = UnsafeMutablePointer<partition_info_msg_t>.allocate(capacity: 1)
    let conf = UnsafeMutablePointer<slurm_conf_t>.allocate(capacity: 1)

    func c(_ text: String?) -> UnsafeMutablePointer<CChar>? {
        guard let text else { return nil }
        let copy = strdup(text)!
        strings.append(copy)
        return copy
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(1, values.count))
        pointer.initialize(from: values, count: values.count)
        buffers.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    init() {
        var nodeRecords: [node_info_t] = []
        for (name, state, used) in [("node1", UInt32(NODE_STATE_MIXED.rawValue), "gpu:2(IDX:0-1)"),
                                    ("node2", UInt32(NODE_STATE_DOWN.rawValue), "gpu:0(IDX:N/A)")] {
            var node = node_info_t()
            node.name = c(name)
            node.node_state = state
            node.gres = c("gpu:8(S:0-1)")
            node.gres_used = c(used)
            nodeRecords.append(node)
        }
        conf.initialize(to: slurm_conf_t())
        conf.pointee.preempt_mode = UInt16(PREEMPT_MODE_REQUEUE | PREEMPT_MODE_GANG)
        conf.pointee.preempt_exempt_time = UInt32(INFINITE)
        conf.pointee.slurm_user_id = 64030
        conf.pointee.version = c("24.11.5")
        nodes.initialize(to: node_info_msg_t())
        nodes.pointee.record_count = 2
        nodes.pointee.node_array = array(nodeRecords)

        var batch = partition_info_t()
        batch.name = c("batch")
        batch.priority_tier = 1
        batch.preempt_mode = UInt16(PREEMPT_MODE_REQUEUE)
        batch.node_inx = array([Int32(0), 1, -1])
        var infer = partition_info_t()
        infer.name = c("infer")
        infer.priority_tier = 10
        infer.preempt_mode = UInt16(PREEMPT_MODE_OFF)
        infer.node_inx = array([Int32(0), 1, -1])
        partitions.initialize(to: partition_info_msg_t())
        partitions.pointee.record_count = 2
        partitions.pointee.partition_array = array([batch, infer])

        var running = slurm_job_info_t()
        running.job_id = 11
        running.name = c("train")
        running.job_state = UInt32(JOB_RUNNING.rawValue)
        running.partition = c("batch")
        running.admin_comment = c("topo_aware:preemptible=batch")
        running.start_time = 1000
        running.priority = 7
        running.qos = c("normal")
        running.preempt_time = 0
        running.node_inx = array([Int32(0), 0, -1])
        running.gres_detail_cnt = 1
        running.gres_detail_str = array([c("gpu:2(IDX:0-1)")])
        running.num_nodes = 1
        running.num_cpus = 1
        var pending = slurm_job_info_t()
        pending.job_id = 12
        pending.job_state = UInt32(JOB_PENDING.rawValue)
        pending.partition = c("infer")
        pending.admin_comment = c("topo_aware:preemptor=inference,level=nvlink,mode=guaranteed")
        pending.tres_per_node = c("gres:gpu:4")
        pending.sockets_per_node = UInt16(NO_VAL16)
        pending.node_inx = array([Int32(-1)])
        pending.req_node_inx = array([Int32(0), 0, -1])
        pending.exc_node_inx = array([Int32(1), 1, -1])
        pending.num_nodes = 1
        pending.num_cpus = 2
        jobs.initialize(to: job_info_msg_t())
        jobs.pointee.record_count = 2
        jobs.pointee.job_array = array([running, pending])
    }

    deinit {
        strings.forEach { free($0) }
        buffers.forEach { $0.deallocate() }
        jobs.deallocate()
        nodes.deallocate()
        partitions.deallocate()
        conf.deallocate()
    }
}

extension MockedSlurm {
    /// SlurmClient (the CLI's live reader) against the mocked client API.
    @Suite struct SlurmClientTests {
        @Test func copiesJobsNodesPartitionsAndSettings() throws {
            CSlurmMock_reset()
            let messages = ClientMessages()
            CSlurmMock_set_client_data(messages.jobs, messages.nodes, messages.partitions, 0)
            CSlurmMock_set_client_conf(messages.conf)
            let reading = try SlurmClient.load(qos: false)
            let state = reading.state
            #expect(reading.warnings.isEmpty && reading.slurmUserID == 64030)
            // The release slurmctld reports is the one modelled (its GPU pick).
            #expect(state.slurm == SlurmRelease(24, 11, 5))
            #expect(CSlurmMock_client_inits() == 1)
            #expect(CSlurmMock_client_loads() == 4)
            #expect(CSlurmMock_client_frees() == 4)
            #expect(state.nodes == [.init(name: "node1", available: true, gpuCount: 8, allocated: GPUSet(0...1)),
                                    .init(name: "node2", available: false, gpuCount: 8, allocated: GPUSet())])
            #expect(state.partitions == [.init(name: "batch", priorityTier: 1, preemptMode: .init(.requeue), nodeIndices: [0, 1]),
                                         .init(name: "infer", priorityTier: 10, preemptMode: .init(.off), nodeIndices: [0, 1])])
            #expect(state.preemptMode == .init(.requeue) && state.exemptSeconds == 0 && state.qos.isEmpty)
            #expect(state.jobs.count == 2)
            let running = state.jobs[0]
            #expect(running.id == 11 && running.state == .running && running.nodeIndices == [0])
            #expect(running.gresDetail == ["gpu:2(IDX:0-1)"] && running.priority == 7 && running.qos == "normal" && !running.preempted)
            let pending = state.jobs[1]
            #expect(pending.state == .pending && pending.tresPerNode == "gres:gpu:4" && pending.socketsPerNode == nil)
            #expect(pending.requiredNodeIndices == [0] && pending.excludedNodeIndices == [1] && pending.numCPUs == 2)
            // And the snapshot preempt/topo_aware would take for the pending job.
            let snapshot = try ControllerSnapshot(live: state, preemptor: 12, basePolicy: .partitionPriority)
            #expect(snapshot.preemptor.gpusPerNode == 4 && snapshot.preemptor.basePriority == 10 << 16)
            #expect(snapshot.preemptor.candidateNodes == [0] && snapshot.preemptor.cpusPerNode == 2)
            #expect(snapshot.jobs == [.init(id: 11, basePriority: 1 << 16 | 1, eligible: true, startTime: 1000,
                                            allocations: [.init(node: 0, gpus: GPUSet(0...1))])])
        }

        @Test func aFailedLoadNamesTheCall() {
            CSlurmMock_reset()
            let messages = ClientMessages()
            CSlurmMock_set_client_data(nil, messages.nodes, messages.partitions, 1)
            CSlurmMock_set_client_conf(messages.conf)
            #expect(throws: SlurmClient.Failure.self) { try SlurmClient.load(qos: false) }
            do {
                _ = try SlurmClient.load(qos: false)
                Issue.record("the load did not fail")
            } catch {
                #expect(error.description == "slurm_load_jobs: mock failure")
            }
            #expect(CSlurmMock_client_frees() == 6)  // what was loaded is freed on the error path too
        }

        /// A node sent without GresUsed (slurmctld packs it only for SHOW_DETAIL) is not read as
        /// "nothing allocated": its running jobs' GPUs are, with a warning.
        @Test func nodeWithoutGresUsedTakesItsJobsGPUs() throws {
            CSlurmMock_reset()
            let messages = ClientMessages()
            messages.nodes.pointee.node_array[0].gres_used = nil
            CSlurmMock_set_client_data(messages.jobs, messages.nodes, messages.partitions, 0)
            CSlurmMock_set_client_conf(messages.conf)
            let reading = try SlurmClient.load(qos: false)
            #expect(reading.state.nodes[0].allocated == GPUSet(0...1))
            #expect(reading.warnings == ["node node1: slurmctld sent no GresUsed; allocated GPUs taken from its running jobs"])
        }

        /// A version slurmctld reports that does not read as a release: the tool's own build
        /// release is modelled, with a warning.
        @Test func unreadableVersionFallsBackToTheBuildRelease() throws {
            CSlurmMock_reset()
            let messages = ClientMessages()
            messages.conf.pointee.version = messages.c("twenty-six")
            CSlurmMock_set_client_data(messages.jobs, messages.nodes, messages.partitions, 0)
            CSlurmMock_set_client_conf(messages.conf)
            let reading = try SlurmClient.load(qos: false)
            #expect(reading.state.slurm == SlurmClient.built)
            #expect(reading.warnings == ["slurmctld reports no readable version ('twenty-six'); modelling Slurm \(SlurmClient.built), this tool's build"])
        }

        /// Without slurmdbd (the mock's connection fails) the QOS read says so.
        @Test func qosWithoutSlurmdbdIsAnError() {
            CSlurmMock_reset()
            let messages = ClientMessages()
            CSlurmMock_set_client_data(messages.jobs, messages.nodes, messages.partitions, 0)
            CSlurmMock_set_client_conf(messages.conf)
            do {
                _ = try SlurmClient.load(qos: true)
                Issue.record("the load did not fail")
            } catch {
                #expect(error.description == "QOS records from slurmdbd: mock failure")
            }
        }

        @Test func jobSubmitHooksNeverCallTheClientAPI() throws {
            let mock = try MockSlurm(config: MockedSlurm.JobSubmitShimTests.config, initialize: true)
            let job = JobDesc(partition: "infer", tresPerNode: "gres:gpu:4")
            _ = job.submit()
            job.release()
            #expect(CSlurmMock_client_loads() == 0 && CSlurmMock_client_inits() == 0)
            #expect(mock.finish() == .clean)
        }
    }
}
