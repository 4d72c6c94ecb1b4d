import Glibc

/// Reading strings Slurm hands over. Every read is bounded: a missing terminator or a huge
/// field in a request must not make the hook scan or copy without limit.
public enum CStrings {
    /// Longest string read from a job description field.
    public static let maxFieldLength = 64 * 1024
    /// Most entries read from a job's SPANK environment.
    public static let maxEnvironmentEntries = 4096

    /// The string at `pointer`, or nil when the pointer is NULL or the text is longer than
    /// `limit` bytes (such a field is treated as absent and logged by the caller).
    public static func read(_ pointer: UnsafePointer<CChar>?, limit: Int = maxFieldLength) -> String? {
        guard let pointer else { return nil }
        let length = strnlen(pointer, limit + 1)
        guard length <= limit else { return nil }
        return decode(pointer, count: length)
    }

    /// At most the first `limit` bytes of the string at `pointer` (nil for NULL).
    public static func readPrefix(_ pointer: UnsafePointer<CChar>?, limit: Int) -> String? {
        guard let pointer else { return nil }
        return decode(pointer, count: strnlen(pointer, limit))
    }

    private static func decode(_ pointer: UnsafePointer<CChar>, count: Int) -> String {
        pointer.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
    }

    /// The value of `name` in a `NAME=value` array such as `job_desc_msg_t.spank_job_env`; the
    /// last entry wins, as in a process environment. nil when absent. A value longer than
    /// `valueLimit` is cut there rather than dropped, so its parser still sees (and refuses) it.
    public static func environmentValue(
        _ name: String, in array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, count: UInt32,
        valueLimit: Int = 4096
    ) -> String? {
        guard let array else { return nil }
        let prefix = name + "="
        let prefixLength = prefix.utf8.count
        var found: String? = nil
        for index in 0..<min(Int(count), maxEnvironmentEntries) {
            guard let entry = readPrefix(array[index], limit: prefixLength + valueLimit),
                  entry.utf8.starts(with: prefix.utf8)
            else { continue }
            found = String(decoding: entry.utf8.dropFirst(prefixLength), as: UTF8.self)
        }
        return found
    }
}
