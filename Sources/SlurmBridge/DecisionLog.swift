import CSlurmShim
import Glibc
import TopoEngine

/// The decision log (`DecisionLog=` in topo_aware.conf) inside slurmctld: the hooks queue
/// records (a lock held for an array append) and a thread of this .so writes them, so a slow,
/// full or missing file system never stalls a scheduling pass.
///
/// - Bounded: at most `maxQueuedBytes` wait; beyond that records are counted as lost, and the
///   count is written as a `records-lost` record once the file takes lines again.
/// - Errors (missing directory, full disk, permissions) are logged once, with the path and the
///   system's reason; the writer tries again with the next records and logs once when it can
///   write again. slurmctld never waits for it.
/// - Rotation: when the file reaches DecisionLogMaxSize it becomes `FILE.1` (`.1` becomes `.2`,
///   ..., the oldest beyond DecisionLogKeep is removed) and a new FILE is opened. A reader that
///   keeps its descriptor open reads the renamed file to its end and then opens FILE again:
///   nothing is lost between them (`topo-preempt` follows the log this way).
/// - A file moved away or removed under it (logrotate, an administrator) is noticed at the next
///   records, which go to a new file at the configured path.
/// - Every line carries `seq`, counting from 1 at each start of the writer.
final class DecisionLog: @unchecked Sendable {
    struct Settings: Equatable {
        var path: String
        var maxBytes: Int64
        var keep: Int
    }

    static let shared = DecisionLog()
    static let maxQueuedBytes = 8 << 20

    /// Everything below is guarded by `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let idle: UnsafeMutablePointer<pthread_cond_t>
    private var settings: Settings?
    private var queue: [String] = []
    private var queuedBytes = 0
    private var lost: UInt64 = 0
    private var writing = false
    /// The settings changed: the writer lets go of the old file at once (not at the next record),
    /// so an old directory can be removed or unmounted after a reconfiguration.
    private var changed = false
    private var threadStarted = false
    private var lostSince: Int64 = 0
    // Writer thread only.
    private var fd: Int32 = -1
    private var openPath: String?
    private var size: Int64 = 0
    private var sequence: UInt64 = 0
    private var failing: String?

    /// How the writer reports (slurmctld's log; tests record).
    var report: @Sendable (_ error: Bool, _ line: String) -> Void = { error, line in
        if error { SlurmLog.error(line) } else { SlurmLog.info(line) }
    }

    init() {
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        idle = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(idle, nil)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The file in force (nil: none; records are then dropped silently). Cheap when unchanged.
    func configure(_ new: Settings?) {
        let start: Bool = locked {
            if settings != new {
                settings = new
                changed = true
                pthread_cond_signal(wake)
            }
            guard new != nil, !threadStarted else { return false }
            threadStarted = true
            return true
        }
        if start && !startThread() {
            locked { threadStarted = false }
            report(true, "preempt/topo_aware: cannot start the decision log's writer thread; no decision records")
        }
    }

    /// Queues the records; never blocks on the file.
    func append(_ records: [DecisionRecord]) {
        guard !records.isEmpty else { return }
        locked {
            guard settings != nil, threadStarted else { return }
            for record in records {
                let line = record.jsonLine()
                if queuedBytes + line.utf8.count > Self.maxQueuedBytes {
                    if lost == 0 { lostSince = record.time }
                    lost += 1
                    continue
                }
                queuedBytes += line.utf8.count
                queue.append(line)
            }
            pthread_cond_signal(wake)
        }
    }

    /// Waits until what is queued is written (or `seconds` pass): plugin fini and tests.
    @discardableResult
    func flush(seconds: Int = 2) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += seconds
        return locked {
            while threadStarted && (!queue.isEmpty || writing || changed) {
                if pthread_cond_timedwait(idle, mutex, &deadline) == ETIMEDOUT { return false }
            }
            return true
        }
    }

    // MARK: - The writer thread

    private func startThread() -> Bool {
        // The thread runs code of this .so: pin it, so that no dlclose() can unmap it.
        pinImage()
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let log = Unmanaged<DecisionLog>.fromOpaque(raw).takeRetainedValue()
            log.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<DecisionLog>.fromOpaque(context).release()
            return false
        }
        pthread_detach(thread)
        return true
    }

    private func run() {
        while true {
            var batch: [String] = []
            var current: Settings?
            var dropped: UInt64 = 0
            var since: Int64 = 0
            pthread_mutex_lock(mutex)
            while queue.isEmpty && lost == 0 && !changed { pthread_cond_wait(wake, mutex) }
            let reconfigured = changed
            changed = false
            swap(&batch, &queue)
            queuedBytes = 0
            current = settings
            dropped = lost
            since = lostSince
            lost = 0
            writing = true
            pthread_mutex_unlock(mutex)

            if reconfigured && current?.path != openPath { closeFile() }
            let unwritten = batch.isEmpty && dropped == 0 ? 0 : write(batch, lost: dropped, since: since, settings: current)

            pthread_mutex_lock(mutex)
            if unwritten > 0 {
                if lost == 0 { lostSince = since != 0 ? since : Int64(time(nil)) }
                lost += unwritten
            }
            writing = false
            pthread_cond_broadcast(idle)
            if unwritten > 0 && queue.isEmpty {
                // Nothing new to write: wait for the next records before trying again.
                pthread_cond_wait(wake, mutex)
            }
            pthread_mutex_unlock(mutex)
        }
    }

    /// Writes the batch (after a `records-lost` line when records were dropped); returns how
    /// many records did not reach the file.
    private func write(_ batch: [String], lost: UInt64, since: Int64, settings: Settings?) -> UInt64 {
        guard let settings else {
            closeFile()
            return 0
        }
        if openPath != settings.path || !stillAtPath(settings.path) { closeFile() }
        guard fd >= 0 || openFile(settings.path) else { return lost + UInt64(batch.count) }
        var text = ""
        if lost > 0 {
            sequence += 1
            var record = DecisionRecord(.recordsLost, time: Int64(time(nil)), job: 0,
                                        message: "\(lost) decision record(s) could not be written since \(since)")
            record.count = lost
            text += record.jsonLine(sequence: sequence) + "\n"
        }
        for line in batch {
            sequence += 1
            // Each line is the record's JSON with the sequence number put first.
            text += "{\"seq\":\(sequence)," + line.dropFirst() + "\n"
        }
        let failure = text.utf8.withContiguousStorageIfAvailable { writeAll($0) } ?? writeAll(Array(text.utf8)[...])
        if let failure {
            fail("cannot write \(settings.path): \(failure)")
            closeFile()
            return lost + UInt64(batch.count)
        }
        size += Int64(text.utf8.count)
        recovered(settings.path)
        if size >= settings.maxBytes { rotate(settings) }
        return 0
    }

    private func writeAll(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var offset = 0
        while offset < bytes.count {
            guard let base = bytes.baseAddress else { return nil }
            let n = Glibc.write(fd, base + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return String(cString: strerror(errno))
            }
            offset += n
        }
        return nil
    }

    private func writeAll(_ bytes: ArraySlice<UInt8>) -> String? {
        bytes.withUnsafeBufferPointer { writeAll($0) }
    }

    private func openFile(_ path: String) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            fail("cannot open \(path): \(String(cString: strerror(errno)))")
            return false
        }
        var st = stat()
        size = fstat(descriptor, &st) == 0 ? Int64(st.st_size) : 0
        fd = descriptor
        openPath = path
        return true
    }

    /// The open file is still the one at `path` (not moved away by logrotate, removed, or
    /// under a directory mounted over since): else the next lines go to a new file at `path`.
    private func stillAtPath(_ path: String) -> Bool {
        guard fd >= 0 else { return true }
        var named = stat(), open = stat()
        guard stat(path, &named) == 0, fstat(fd, &open) == 0 else { return false }
        return named.st_ino == open.st_ino && named.st_dev == open.st_dev
    }

    private func closeFile() {
        if fd >= 0 { close(fd) }
        fd = -1
        openPath = nil
    }

    /// FILE.(k) -> FILE.(k+1) from the oldest kept, FILE -> FILE.1, then a new FILE.
    private func rotate(_ settings: Settings) {
        closeFile()
        let path = settings.path
        unlink("\(path).\(settings.keep)")
        var k = settings.keep - 1
        while k >= 1 {
            rename("\(path).\(k)", "\(path).\(k + 1)")
            k -= 1
        }
        if rename(path, "\(path).1") != 0 {
            fail("cannot rotate \(path): \(String(cString: strerror(errno)))")
        }
        _ = openFile(path)
    }

    private func fail(_ message: String) {
        guard failing == nil else { return }
        failing = message
        report(true, "preempt/topo_aware: decision log: \(message); decision records are counted as lost until it can be written (slurmctld is not affected)")
    }

    private func recovered(_ path: String) {
        guard failing != nil else { return }
        failing = nil
        report(false, "preempt/topo_aware: decision log: writing \(path) again")
    }

    private func pinImage() {
        _ = CSlurmShim_pin_image()
    }
}
