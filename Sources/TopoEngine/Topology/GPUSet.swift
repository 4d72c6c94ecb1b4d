/// A set of GPU indices on one node (0..<64), as a bit mask: cheap to copy, hash and compare.
///
/// Slurm nodes with more than 64 GPUs of one type do not exist in practice; parsers reject
/// larger indices with an error rather than trapping.
public struct GPUSet: Sendable, Hashable, Comparable, Sequence, CustomStringConvertible {
    public static let capacity = 64

    public private(set) var mask: UInt64

    public init(mask: UInt64 = 0) { self.mask = mask }

    /// The set of the given indices; indices outside 0..<64 are ignored (callers validate first).
    public init<S: Sequence>(_ indices: S) where S.Element == Int {
        mask = 0
        for index in indices { insert(index) }
    }

    /// GPUs 0..<count.
    public static func first(_ count: Int) -> GPUSet {
        if count <= 0 { return GPUSet() }
        if count >= capacity { return GPUSet(mask: .max) }
        return GPUSet(mask: (UInt64(1) << UInt64(count)) &- 1)
    }

    public var count: Int { mask.nonzeroBitCount }
    public var isEmpty: Bool { mask == 0 }

    public func contains(_ index: Int) -> Bool {
        guard index >= 0, index < Self.capacity else { return false }
        return mask & (UInt64(1) << UInt64(index)) != 0
    }

    public mutating func insert(_ index: Int) {
        guard index >= 0, index < Self.capacity else { return }
        mask |= UInt64(1) << UInt64(index)
    }

    public mutating func remove(_ index: Int) {
        guard index >= 0, index < Self.capacity else { return }
        mask &= ~(UInt64(1) << UInt64(index))
    }

    public func union(_ other: GPUSet) -> GPUSet { GPUSet(mask: mask | other.mask) }
    public func intersection(_ other: GPUSet) -> GPUSet { GPUSet(mask: mask & other.mask) }
    public func subtracting(_ other: GPUSet) -> GPUSet { GPUSet(mask: mask & ~other.mask) }
    public func isSubset(of other: GPUSet) -> Bool { mask & ~other.mask == 0 }
    public func isDisjoint(with other: GPUSet) -> Bool { mask & other.mask == 0 }

    /// Indices in increasing order.
    public var indices: [Int] { Array(self) }

    public func makeIterator() -> Iterator { Iterator(remaining: mask) }

    public struct Iterator: IteratorProtocol {
        var remaining: UInt64
        public mutating func next() -> Int? {
            guard remaining != 0 else { return nil }
            let index = remaining.trailingZeroBitCount
            remaining &= remaining &- 1
            return index
        }
    }

    /// Orders by size, then by the lowest differing index (so `0-3` sorts before `4-7`).
    public static func < (lhs: GPUSet, rhs: GPUSet) -> Bool {
        if lhs.count != rhs.count { return lhs.count < rhs.count }
        return lhs.mask.bitReversedLess(than: rhs.mask)
    }

    /// Slurm's index-list form: `0-1,4-5`; `""` when empty.
    public var description: String { RangeList.format(indices) }
}

extension UInt64 {
    /// Compares as if bit 0 were the most significant: the set holding the smaller lowest
    /// differing index comes first.
    fileprivate func bitReversedLess(than other: UInt64) -> Bool {
        let differing = self ^ other
        guard differing != 0 else { return false }
        let lowest = differing & (0 &- differing)
        return self & lowest != 0
    }
}

/// Slurm-style integer lists: `0-3,8,10-11` (as in `IDX:`, `Cores=`, `CPU Affinity`).
public enum RangeList {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case empty
        case badNumber(String)
        case reversed(String)
        case tooLarge(Int)
        case tooMany(Int)

        public var description: String {
            switch self {
            case .empty: "empty list"
            case let .badNumber(text): "'\(printable(text))' is not a number or range"
            case let .reversed(text): "range '\(printable(text))' ends before it starts"
            case let .tooLarge(limit): "a value is larger than \(limit)"
            case let .tooMany(limit): "more than \(limit) values"
            }
        }
    }

    /// Parses `a-b,c,...` into sorted, de-duplicated values in 0...maxValue, at most maxCount.
    public static func parse(_ text: String, maxValue: Int, maxCount: Int = 65_536) throws(Failure) -> [Int] {
        guard !text.isEmpty else { throw .empty }
        var values: [Int] = []
        var sorted = true
        for part in text.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let dash = part.firstIndex(of: UInt8(ascii: "-"))
            let lowText = dash.map { part[..<$0] } ?? part[...]
            let highText = dash.map { part[part.index(after: $0)...] }
            let low = try bound(lowText, part, maxValue)
            let high = try highText.map { text throws(Failure) in try bound(text, part, maxValue) } ?? low
            guard low <= high else { throw .reversed(String(decoding: part, as: UTF8.self)) }
            guard values.count + (high - low + 1) <= maxCount else { throw .tooMany(maxCount) }
            if let last = values.last, low <= last { sorted = false }
            values.append(contentsOf: low...high)
        }
        if !sorted {
            values.sort()
            var unique: [Int] = []
            unique.reserveCapacity(values.count)
            for value in values where value != unique.last { unique.append(value) }
            values = unique
        }
        return values
    }

    private static func bound(_ digits: Substring.UTF8View.SubSequence, _ part: Substring.UTF8View.SubSequence,
                              _ maxValue: Int) throws(Failure) -> Int {
        guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ (48...57).contains($0) }) else {
            throw .badNumber(String(decoding: part, as: UTF8.self))
        }
        var n = 0
        for digit in digits { n = n * 10 + Int(digit - 48) }
        guard n <= maxValue else { throw .tooLarge(maxValue) }
        return n
    }

    /// `[0,1,2,4]` → `0-2,4`.
    public static func format<S: Sequence>(_ values: S) -> String where S.Element == Int {
        let sorted = Array(Set(values)).sorted()
        var parts: [String] = []
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count, sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// A decimal number of at most 9 digits in 0...max, else nil.
    static func number(_ text: Substring, max: Int) -> Int? {
        guard let n = digitsOnly(text), n <= max else { return nil }
        return n
    }

    static func digitsOnly(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ (48...57).contains($0) }) else { return nil }
        return Int(text)
    }
}

/// Slurm host lists and bracket ranges: `node[1-3,5]`, `/dev/nvidia[0-3]`, `gpu[00-07]`.
public enum BracketList {
    /// Names one host list may hold: Slurm's own bound (64K hosts, MAX_RANGE of hostlist.c), so
    /// that any NodeName= slurmctld accepts (`gpu[00001-10000]`) is read here too.
    public static let hostLimit = 65_536

    /// Expands every `[...]` group (zero padding kept); at most `limit` names.
    public static func expand(_ text: String, limit: Int = 4096) throws(RangeList.Failure) -> [String] {
        var results = [""]
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "[") {
            let prefix = rest[..<open]
            guard let close = rest[open...].firstIndex(of: "]") else { throw .badNumber(String(rest[open...])) }
            let body = rest[rest.index(after: open)..<close]
            var items: [String] = []
            for part in body.split(separator: ",", omittingEmptySubsequences: false) {
                let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
                guard let low = RangeList.digitsOnly(bounds[0]) else { throw .badNumber(String(part)) }
                let high = bounds.count == 2 ? RangeList.digitsOnly(bounds[1]) : low
                guard let high else { throw .badNumber(String(part)) }
                guard low <= high else { throw .reversed(String(part)) }
                guard high - low < limit, items.count + (high - low + 1) <= limit else { throw .tooMany(limit) }
                let width = bounds[0].count
                for n in low...high { items.append(zeroPadded(n, width: width)) }
            }
            guard results.count * items.count <= limit else { throw .tooMany(limit) }
            results = results.flatMap { base in items.map { base + prefix + $0 } }
            rest = rest[rest.index(after: close)...]
        }
        if rest.contains("]") { throw .badNumber(String(rest)) }
        return results.map { $0 + rest }
    }

    /// A comma-separated list of host-list items, each expanded: `a[1-2],b` → a1 a2 b.
    public static func expandList(_ text: String, limit: Int = 4096) throws(RangeList.Failure) -> [String] {
        var names: [String] = []
        for part in GresConf.splitOutsideBrackets(text) where !part.isEmpty {
            names += try expand(part, limit: limit)
            guard names.count <= limit else { throw .tooMany(limit) }
        }
        return names
    }

    static func zeroPadded(_ n: Int, width: Int) -> String {
        let digits = String(n)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
