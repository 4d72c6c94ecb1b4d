import Glibc

/// Follows the decision log (`DecisionLog=` of topo_aware.conf) as preempt/topo_aware writes and
/// rotates it, line by line, losing nothing to rotation: the plugin renames FILE to FILE.1 and
/// starts a new FILE, so the follower keeps reading the file it has open until its end, then
/// moves to the new FILE from its start. A file cut short (truncated) is read again from its
/// start. A missing file is waited for.
public struct RecordFollower {
    public let path: String
    /// Longest line taken; a longer one is skipped and counted as bad.
    public static let maxLine = 1 << 20
    private var fd: Int32 = -1
    private var identity: (dev: UInt64, ino: UInt64)?
    private var offset: Int64 = 0
    private var partial: [UInt8] = []
    private var skipping = false
    private var startAtEnd: Bool
    /// Lines too long to take, and rotations seen.
    public private(set) var overlong: UInt64 = 0
    public private(set) var rotations: UInt64 = 0
    /// The last error opening the file (nil when it is open).
    public private(set) var openError: String?

    /// `fromStart`: read what the file holds already; else begin at its current end.
    public init(path: String, fromStart: Bool) {
        self.path = path
        startAtEnd = !fromStart
    }

    /// Reads every complete line written since the last call, through a rotation if one
    /// happened, and hands each to `body` (without its newline).
    public mutating func poll(_ body: (ArraySlice<UInt8>) -> Void) {
        var rounds = 0
        while rounds < 4 {
            rounds += 1
            if fd < 0, !open() {
                // Not there at the start: all it will hold is new.
                startAtEnd = false
                return
            }
            drain(body)
            // At the end of what is open: has FILE been rotated or cut short?
            var st = stat()
            guard stat(path, &st) == 0 else { return }  // moved away, not yet replaced: keep reading the open file
            let now = (UInt64(st.st_dev), UInt64(st.st_ino))
            if let identity, identity != now {
                // Rotated: the open file is read to its end; the new FILE from its start.
                Glibc.close(fd)
                fd = -1
                partial = []
                skipping = false
                rotations += 1
                continue
            }
            if Int64(st.st_size) < offset {
                // Cut short (truncated in place): read again from the start.
                _ = lseek(fd, 0, SEEK_SET)
                offset = 0
                partial = []
                skipping = false
                continue
            }
            return
        }
    }

    public mutating func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private mutating func open() -> Bool {
        let opened = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard opened >= 0 else {
            openError = "\(path): \(String(cString: strerror(errno)))"
            return false
        }
        var st = stat()
        guard fstat(opened, &st) == 0 else {
            Glibc.close(opened)
            return false
        }
        fd = opened
        openError = nil
        identity = (UInt64(st.st_dev), UInt64(st.st_ino))
        offset = 0
        if startAtEnd {
            offset = Int64(lseek(fd, 0, SEEK_END))
            if offset < 0 { offset = 0 }
            startAtEnd = false
        }
        return true
    }

    private mutating func drain(_ body: (ArraySlice<UInt8>) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            offset += Int64(n)
            var start = 0
            for i in 0..<n where buffer[i] == UInt8(ascii: "\n") {
                if skipping {
                    skipping = false
                } else if partial.count + (i - start) > Self.maxLine {
                    overlong += 1
                    partial = []
                } else if partial.isEmpty {
                    body(buffer[start..<i])
                } else {
                    partial.append(contentsOf: buffer[start..<i])
                    body(partial[...])
                    partial = []
                }
                start = i + 1
            }
            if start < n, !skipping {
                partial.append(contentsOf: buffer[start..<n])
                if partial.count > Self.maxLine {
                    partial = []
                    skipping = true
                    overlong += 1
                }
            }
        }
    }
}
