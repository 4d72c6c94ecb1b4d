import CSlurmMock
import CSlurmShim
import Foundation
import Testing

/// One test's view of the mocked Slurm: a fresh mock, a topo_aware.conf in a temporary
/// directory, and checks that nothing leaked when the test ends.
struct MockSlurm {
    let directory: String
    let configPath: String

    enum Outcome: Equatable {
        case clean
        case leaked(liveAllocations: Int, badFrees: Int)
    }

    /// `config` nil leaves the file absent. `viaEnvironment` points $TOPO_AWARE_CONF at it;
    /// otherwise Slurm's "beside slurm.conf" lookup (mocked) finds it.
    init(config: String?, viaEnvironment: Bool = true, initialize: Bool = false) throws {
        CSlurmMock_reset()
        directory = NSTemporaryDirectory() + "topo-preempt-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configPath = directory + "/topo_aware.conf"
        if let config { try config.write(toFile: configPath, atomically: true, encoding: .utf8) }
        if viaEnvironment {
            setenv("TOPO_AWARE_CONF", configPath, 1)
        } else {
            unsetenv("TOPO_AWARE_CONF")
            CSlurmMock_set_conf_dir(directory)
        }
        if initialize {
            try #require(CSlurmShim_job_submit_init() == SLURM_SUCCESS, "init failed: \(logs)")
            CSlurmMock_reset()  // forget init's lines and allocations; keep the files
            CSlurmMock_set_conf_dir(viaEnvironment ? nil : directory)
        }
    }

    /// Every line the plugin wrote to Slurm's log since the last reset.
    var logs: [String] {
        (0..<CSlurmMock_log_count()).compactMap { CSlurmMock_log_line($0).map { String(cString: $0) } }
    }

    /// Replaces the config file (a new inode, as editors and config management do).
    func rewrite(_ text: String) throws {
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Unloads the plugin and reports leaked or wrongly freed Slurm allocations.
    func finish(fini: Bool = true) -> Outcome {
        if fini { _ = CSlurmShim_job_submit_fini() }
        unsetenv("TOPO_AWARE_CONF")
        try? FileManager.default.removeItem(atPath: directory)
        let live = CSlurmMock_live_allocations()
        let bad = CSlurmMock_bad_frees()
        return live == 0 && bad == 0 ? .clean : .leaked(liveAllocations: live, badFrees: Int(bad))
    }
}

/// A job_desc_msg_t as slurmctld hands it to job_submit: string fields from Slurm's allocator.
final class JobDesc {
    let desc: UnsafeMutablePointer<job_desc_msg_t>
    let errMsgSlot: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private var environment: [UnsafeMutablePointer<CChar>?] = []
    private let environmentArray: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

    init(partition: String?, qos: String? = nil, adminComment: String? = nil,
         spankEnv: [String] = [], errMsg: String? = nil, name: String = "test",
         tresPerNode: String? = nil, tresPerSocket: String? = nil) {
        desc = .allocate(capacity: 1)
        desc.initialize(to: job_desc_msg_t())
        desc.pointee.job_id = UInt32.max - 1  // NO_VAL: not assigned yet at submission
        // Not set, as slurm_init_job_desc_msg() leaves them.
        desc.pointee.min_nodes = UInt32(NO_VAL)
        desc.pointee.max_nodes = UInt32(NO_VAL)
        desc.pointee.sockets_per_node = UInt16(NO_VAL16)
        desc.pointee.tres_per_node = tresPerNode.flatMap { CSlurmMock_xstrdup($0) }
        desc.pointee.tres_per_socket = tresPerSocket.flatMap { CSlurmMock_xstrdup($0) }
        desc.pointee.partition = partition.flatMap { CSlurmMock_xstrdup($0) }
        desc.pointee.qos = qos.flatMap { CSlurmMock_xstrdup($0) }
        desc.pointee.admin_comment = adminComment.flatMap { CSlurmMock_xstrdup($0) }
        desc.pointee.name = CSlurmMock_xstrdup(name)
        environment = spankEnv.map { strdup($0) }
        if environment.isEmpty {
            environmentArray = nil
        } else {
            let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: environment.count)
            array.initialize(from: environment, count: environment.count)
            environmentArray = array
        }
        desc.pointee.spank_job_env = environmentArray
        desc.pointee.spank_job_env_size = UInt32(environment.count)
        errMsgSlot = .allocate(capacity: 1)
        errMsgSlot.initialize(to: errMsg.flatMap { CSlurmMock_xstrdup($0) })
    }

    func submit(uid: UInt32 = 1000) -> Int32 {
        CSlurmShim_job_submit(desc, uid, errMsgSlot)
    }

    var adminComment: String? { desc.pointee.admin_comment.map { String(cString: $0) } }
    var tresPerNode: String? { desc.pointee.tres_per_node.map { String(cString: $0) } }
    var tresPerSocket: String? { desc.pointee.tres_per_socket.map { String(cString: $0) } }
    var errMsg: String? { errMsgSlot.pointee.map { String(cString: $0) } }

    /// Frees what slurmctld would free after the call (the mock counts these).
    func release() {
        CSlurmMock_xfree(&desc.pointee.partition)
        CSlurmMock_xfree(&desc.pointee.qos)
        CSlurmMock_xfree(&desc.pointee.admin_comment)
        CSlurmMock_xfree(&desc.pointee.name)
        CSlurmMock_xfree(&desc.pointee.tres_per_node)
        CSlurmMock_xfree(&desc.pointee.tres_per_socket)
        CSlurmMock_xfree(errMsgSlot)
    }

    deinit {
        environment.forEach { free($0) }
        environmentArray?.deallocate()
        desc.deallocate()
        errMsgSlot.deallocate()
    }
}

/// Suites that drive the plugin against the mocked Slurm are nested here and run one at a time:
/// the mock's state (log, allocations, configuration directory) is global.
@Suite(.serialized) enum MockedSlurm {}
