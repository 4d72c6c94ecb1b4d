import CSlurmShim
import SlurmStrings
import TopoEngine

/// job_submit/topo_aware, Swift side: classifies each submission, records the class in the
/// job's AdminComment, and rejects malformed `--gpu-affinity` values with a clear message.
/// Called from CSlurmShim's C entry points with Slurm's locks held; every path returns a Slurm
/// code and nothing here traps on data.
enum JobSubmitPlugin {
    static let type = "job_submit/topo_aware"

    static func initialize() -> Int32 {
        let paths = PluginPaths.current()
        do {
            let parsed = try PluginImage.config.load(path: paths.topoAwareConf)
            SlurmLog.info("\(type): init: loaded \(paths.topoAwareConf): \(ConfigStore.summary(parsed.config))")
            for warning in parsed.warnings { SlurmLog.info("\(type): init: warning: \(warning)") }
            PluginImage.topology.load(slurmConf: paths.slurmConf, gresConf: paths.gresConf, logPrefix: type)
            PluginImage.join(type)
            return SLURM_SUCCESS
        } catch {
            SlurmLog.error("\(type): init: \(error)")
            return SLURM_ERROR
        }
    }

    static func submit(_ desc: UnsafeMutablePointer<job_desc_msg_t>, uid: UInt32,
                       errMsg: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
        guard PluginImage.isJoined(type), let current = PluginImage.config.current(logPrefix: type) else {
            SlurmLog.error("\(type): job_submit: no configuration loaded; job let through unclassified")
            return SLURM_SUCCESS
        }
        let job = JobDescription.read(desc)
        let verdict = SubmitPolicy(config: current).evaluate(job.submitted)
        switch verdict {
        case let .accept(classification, notice):
            var shape: String?
            var notices = notice.map { [$0] } ?? []
            if case .preemptor = classification, let summary = PluginImage.topology.current(logPrefix: type) {
                let policy = TopologyPolicy(summary: summary, shapeRequests: current.shapeRequests,
                                            tresSyntax: PluginImage.tresSyntax)
                switch policy.decide(classification, job.request) {
                case .unchanged:
                    break
                case let .reject(message):
                    append(message, to: errMsg)
                    SlurmLog.info("\(type): job_submit: rejected uid=\(uid) name=\(job.name ?? "-") \(job.scope): \(message)")
                    return SubmitRejection.topology.slurmCode
                case let .shape(shaped):
                    apply(shaped, to: desc)
                    shape = shaped.tag
                    notices.append(shaped.notice)
                    SlurmLog.verbose("\(type): job_submit: uid=\(uid) name=\(job.name ?? "-") shaped to tres_per_socket=\(shaped.tresPerSocket) sockets_per_node=1")
                }
            }
            let merged = AdminCommentTag.merge(existing: job.adminComment,
                                               tag: AdminCommentTag.format(classification, shape: shape))
            if merged != job.adminComment {
                if let merged {
                    merged.withCString { CSlurmShim_set_string(&desc.pointee.admin_comment, $0) }
                } else {
                    CSlurmShim_set_string(&desc.pointee.admin_comment, nil)
                }
            }
            for line in notices { append(line, to: errMsg) }
            SlurmLog.debug("\(type): job_submit: uid=\(uid) name=\(job.name ?? "-") \(job.scope) -> \(classification.summary)")
            return SLURM_SUCCESS
        case let .reject(reason, message):
            append(message, to: errMsg)
            SlurmLog.info("\(type): job_submit: rejected uid=\(uid) name=\(job.name ?? "-") \(job.scope): \(message)")
            return reason.slurmCode
        }
    }

    static func modify(_ desc: UnsafeMutablePointer<job_desc_msg_t>, uid: UInt32) -> Int32 {
        // A job's class follows its partition and QOS. AdminComment records the class given at
        // submission (only administrators may rewrite it); the preempt plugin classifies from
        // the job's current partition and QOS, so an update needs no action here beyond a trace.
        guard PluginImage.isJoined(type), let current = PluginImage.config.current(logPrefix: type) else { return SLURM_SUCCESS }
        let update = JobDescription.read(desc)
        if desc.pointee.partition != nil || desc.pointee.qos != nil {
            let after = SubmitPolicy(config: current).evaluate(update.submitted)
            if case let .accept(classification, _) = after {
                SlurmLog.verbose("\(type): job_modify: JobId=\(CSlurmShim_job_desc_job_id(desc)) uid=\(uid) \(update.scope) -> \(classification.summary)")
            }
        }
        return SLURM_SUCCESS
    }

    /// Rewrites the request as `shaped` says (strings through Slurm's allocator).
    private static func apply(_ shaped: ShapedRequest, to desc: UnsafeMutablePointer<job_desc_msg_t>) {
        if let node = shaped.tresPerNode {
            node.withCString { CSlurmShim_set_string(&desc.pointee.tres_per_node, $0) }
        } else {
            CSlurmShim_set_string(&desc.pointee.tres_per_node, nil)
        }
        shaped.tresPerSocket.withCString { CSlurmShim_set_string(&desc.pointee.tres_per_socket, $0) }
        desc.pointee.sockets_per_node = UInt16(clamping: shaped.socketsPerNode)
    }

    private static func append(_ line: String, to errMsg: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard let errMsg else { return }
        line.withCString { CSlurmShim_append_message(errMsg, $0) }
    }
}

extension SubmitRejection {
    /// The Slurm error code sbatch reports after the plugin's message.
    var slurmCode: Int32 {
        switch self {
        case .invalidOverride: Int32(ESLURM_INVALID_GRES.rawValue)
        case .overrideNotAllowed: Int32(ESLURM_ACCESS_DENIED.rawValue)
        case .topology: Int32(ESLURM_REQUESTED_NODE_CONFIG_UNAVAILABLE.rawValue)
        }
    }
}

/// The fields of a `job_desc_msg_t` the plugin reads, copied into Swift values at once.
struct JobDescription {
    var submitted: SubmittedJob
    var name: String?
    var adminComment: String?
    var request: GPURequest

    static func read(_ desc: UnsafeMutablePointer<job_desc_msg_t>) -> JobDescription {
        let fields = desc.pointee
        var partitions = SubmittedJob.partitionList(CStrings.read(fields.partition))
        if fields.partition == nil, let fallback = CStrings.read(CSlurmShim_default_partition()) {
            partitions = [fallback]
        }
        let override = CStrings.environmentValue(
            AffinityOverride.spankVariable, in: fields.spank_job_env, count: fields.spank_job_env_size)
        return JobDescription(
            submitted: SubmittedJob(partitions: partitions, qos: CStrings.read(fields.qos),
                                    affinityOverride: override),
            name: CStrings.read(fields.name, limit: 256).map { printable($0) },
            adminComment: CStrings.read(fields.admin_comment),
            request: GPURequest(
                tresPerNode: CStrings.read(fields.tres_per_node), tresPerSocket: CStrings.read(fields.tres_per_socket),
                tresPerJob: CStrings.read(fields.tres_per_job), tresPerTask: CStrings.read(fields.tres_per_task),
                minNodes: count(fields.min_nodes), maxNodes: count(fields.max_nodes),
                socketsPerNode: fields.sockets_per_node == UInt16(NO_VAL16) || fields.sockets_per_node == 0
                    ? nil : Int(fields.sockets_per_node)))
    }

    /// A 32-bit count, nil for Slurm's "not set" values (0, NO_VAL, INFINITE).
    private static func count(_ value: UInt32) -> Int? {
        value == 0 || value == UInt32(NO_VAL) || value == UInt32(INFINITE) ? nil : Int(value)
    }

    /// `partition=infer qos=-` for log lines.
    var scope: String {
        "partition=\(submitted.partitions.isEmpty ? "-" : submitted.partitions.joined(separator: ",")) qos=\(submitted.qos.map { printable($0) } ?? "-")"
    }
}

// MARK: - C entry points (declared in CSlurmShim/src/swift_hooks.h)

@_cdecl("TopoAwareSwift_jobSubmitInit")
public func topoAwareSwiftJobSubmitInit() -> Int32 {
    JobSubmitPlugin.initialize()
}

@_cdecl("TopoAwareSwift_jobSubmitFini")
public func topoAwareSwiftJobSubmitFini() {
    PluginImage.leave(JobSubmitPlugin.type)
}

@_cdecl("TopoAwareSwift_jobSubmit")
public func topoAwareSwiftJobSubmit(
    _ desc: UnsafeMutablePointer<job_desc_msg_t>, _ uid: UInt32,
    _ errMsg: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    JobSubmitPlugin.submit(desc, uid: uid, errMsg: errMsg)
}

@_cdecl("TopoAwareSwift_jobModify")
public func topoAwareSwiftJobModify(_ desc: UnsafeMutablePointer<job_desc_msg_t>, _ uid: UInt32) -> Int32 {
    JobSubmitPlugin.modify(desc, uid: uid)
}
