import Glibc
import TopoEngine

#if TOPO_FUZZ_LIBFUZZER
// Coverage-guided: built by scripts/fuzz with -sanitize=fuzzer,address; libFuzzer owns main().
nonisolated(unsafe) private var ready = false

@_cdecl("LLVMFuzzerTestOneInput")
public func topoPreemptFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    if !ready {
        Harness.setUp()
        ready = true
    }
    Harness.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

// SwiftPM links executables with main renamed to <module>_main; hand libFuzzer's driver the
// callback from there (LLVMFuzzerRunDriver is libFuzzer's documented entry for own mains).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("topo_preempt_fuzz_main")
public func topoPreemptFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector, topoPreemptFuzzOne)
}
#else
/// topo-preempt-fuzz: the plugin hooks fed generated inputs (see Harness), or the files given
/// (a libFuzzer corpus or a crash input) replayed.
///
///   topo-preempt-fuzz [--inputs N] [--seed S] [--max-seconds T] [FILE...]
@main
struct FuzzMain {
    static func main() {
        var inputs = 100_000
        var seed: UInt64 = 20_261_125
        var maxSeconds = 0.0
        var files: [String] = []
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--inputs":
                guard let value = arguments.next().flatMap(Int.init) else { usage() }
                inputs = value
            case "--seed":
                guard let value = arguments.next().flatMap(UInt64.init) else { usage() }
                seed = value
            case "--max-seconds":
                guard let value = arguments.next().flatMap(Double.init) else { usage() }
                maxSeconds = value
            case "-h", "--help": usage(status: 0)
            default: files.append(argument)
            }
        }
        Harness.setUp()
        let start = seconds()
        if !files.isEmpty {
            for file in files {
                guard let bytes = read(file) else { Harness.printError("topo-preempt-fuzz: cannot read \(file)"); exit(2) }
                Harness.run(bytes)
            }
            print("topo-preempt-fuzz: \(files.count) files replayed, no failure")
            return
        }
        var generator = InputGenerator(rng: SplitMix64(seed: seed))
        var done = 0
        var slowest = 0.0
        while done < inputs {
            let input = generator.next()
            let t0 = seconds()
            Harness.run(input)
            let took = seconds() - t0
            slowest = max(slowest, took)
            if took > 10 {  // a hang in slurmctld terms: report the input that caused it
                Harness.printError("topo-preempt-fuzz: input \(done) took \(took) s")
                abort()
            }
            done += 1
            if maxSeconds > 0 && seconds() - start > maxSeconds { break }
        }
        let elapsed = seconds() - start
        let rss = peakRSSMegabytes()
        let byKind = zip(["submit", "modify", "preempt", "preempt", "reconfigure"], Harness.counts)
            .reduce(into: [String: Int]()) { $0[$1.0, default: 0] += $1.1 }
        print("topo-preempt-fuzz: \(done) inputs (seed \(seed)) in \(format(elapsed)) s, \(Int(Double(done) / max(elapsed, 1e-9))) inputs/s, "
              + "slowest \(format(slowest * 1000)) ms, peak RSS \(rss) MB; submit \(byKind["submit"] ?? 0), modify \(byKind["modify"] ?? 0), "
              + "preempt \(byKind["preempt"] ?? 0), reconfigure \(byKind["reconfigure"] ?? 0); no crash, leak or bad decision")
    }

    static func usage(status: Int32 = 2) -> Never {
        print("usage: topo-preempt-fuzz [--inputs N] [--seed S] [--max-seconds T] [FILE...]")
        exit(status)
    }

    static func seconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func format(_ value: Double) -> String {
        let scaled = Int((value * 10).rounded())
        return "\(scaled / 10).\(scaled % 10)"
    }

    static func peakRSSMegabytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss / 1024
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return bytes
    }
}
#endif
