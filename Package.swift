// swift-tools-version:6.0
//
// TopoPreempt: topology-aware GPU preemption for Slurm.
//
// Dependency direction: plugin identity (C) -> SlurmBridge -> TopoEngine (what runs inside
// slurmctld), CLI -> SlurmClient -> TopoEngine (libslurm's client API, never in a plugin).
// Only SlurmBridge imports CSlurmShim, only SlurmClient imports CSlurmClient; TopoEngine is
// pure Swift (no Foundation) because it is linked into plugins that run inside slurmctld.
import PackageDescription

let package = Package(
    name: "TopoPreempt",
    products: [
        // Built with `-Xswiftc -static-stdlib` by scripts/build-plugins and installed as
        // job_submit_topo_aware.so (Slurm derives the file name from `JobSubmitPlugins=topo_aware`).
        .library(name: "job_submit_topo_aware", type: .dynamic, targets: ["JobSubmitTopoAware"]),
        .executable(name: "topo-preempt", targets: ["topo-preempt"]),
        // The Prometheus exporter: decision records and `topo-preempt fragmentation` as metrics.
        // No libslurm: it runs the release's topo-preempt for the cluster's state.
        .executable(name: "topo-preempt-exporter", targets: ["topo-preempt-exporter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C: Slurm plugin entry points, logger wrappers, xmalloc helpers. No policy.
        .target(
            name: "CSlurmShim",
            path: "CSlurmShim",
            exclude: ["plugins", "client", "compat"],
            sources: ["src"],
            publicHeadersPath: "include"
        ),
        // C: the exported symbols that make the .so a `job_submit/topo_aware` plugin.
        .target(
            name: "JobSubmitTopoAware",
            dependencies: ["SlurmBridge", "CSlurmShim"],
            path: "CSlurmShim/plugins/job_submit_topo_aware",
            publicHeadersPath: "."
        ),
        // Swift inside slurmctld: the plugins' hooks, their configuration and topology stores.
        .target(
            name: "SlurmBridge",
            dependencies: ["CSlurmShim", "SlurmStrings", "TopoEngine"]
        ),
        // Bounded reads of C strings out of Slurm's structs (both sides).
        .target(name: "SlurmStrings"),
        // C for the CLI's libslurm client: node state flags, QOS records (Slurm lists, bitmaps).
        .target(name: "CSlurmClient", path: "CSlurmShim/client", publicHeadersPath: "include"),
        // The CLI's reader of the live cluster (libslurm's client API). No plugin links it.
        .target(
            name: "SlurmClient",
            dependencies: ["CSlurmClient", "SlurmStrings", "TopoEngine"]
        ),
        .target(name: "TopoEngine"),
        .executableTarget(
            name: "topo-preempt",
            dependencies: [
                "TopoEngine",
                "SlurmClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The live-cluster commands (plan --job, audit) call libslurm's client API.
            linkerSettings: [.linkedLibrary("slurm")]
        ),
        // The exporter's parts: the decision log followed across rotation, records turned into
        // Prometheus metrics (swift-prometheus), the cluster's gauges, the HTTP endpoint (SwiftNIO).
        .target(
            name: "ExporterCore",
            dependencies: [
                "TopoEngine",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "topo-preempt-exporter",
            dependencies: ["ExporterCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Test-only C target: the slurm_* symbols the shim reaches, with recorded calls.
        .target(name: "CSlurmMock", path: "Tests/CSlurmMock", publicHeadersPath: "include"),
        // The hooks fuzzed against the mocked Slurm API: a generator of its own (this build), or
        // libFuzzer (scripts/fuzz builds it with -sanitize=fuzzer,address -DTOPO_FUZZ_LIBFUZZER).
        .executableTarget(
            name: "topo-preempt-fuzz",
            dependencies: ["SlurmBridge", "CSlurmShim", "CSlurmMock", "TopoEngine"],
            path: "Fuzz"
        ),
        .testTarget(name: "TopoEngineTests", dependencies: ["TopoEngine"], exclude: ["Fixtures"]),
        // Both Swift modules that call Slurm's C API, against one mocked Slurm API (global state:
        // its suites run serialized, so they share a target).
        .testTarget(name: "SlurmBridgeTests",
                    dependencies: ["SlurmBridge", "CSlurmShim", "SlurmClient", "CSlurmClient", "CSlurmMock"]),
        .testTarget(name: "ExporterTests", dependencies: ["ExporterCore", "TopoEngine"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TopoEngine"]),
    ]
)
