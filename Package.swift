// swift-tools-version:6.0
//
// TopoPreempt: topology-aware GPU preemption for Slurm.
//
// Dependency direction: plugin identity (C) / CLI -> SlurmBridge -> TopoEngine.
// Only SlurmBridge imports CSlurmShim; TopoEngine is pure Swift (no Foundation) because it is
// linked into plugins that run inside slurmctld.
import PackageDescription

let package = Package(
    name: "TopoPreempt",
    products: [
        // Built with `-Xswiftc -static-stdlib` by scripts/build-plugins and installed as
        // job_submit_topo_aware.so (Slurm derives the file name from `JobSubmitPlugins=topo_aware`).
        .library(name: "job_submit_topo_aware", type: .dynamic, targets: ["JobSubmitTopoAware"]),
        .executable(name: "topo-preempt", targets: ["topo-preempt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C: Slurm plugin entry points, logger wrappers, xmalloc helpers. No policy.
        .target(
            name: "CSlurmShim",
            path: "CSlurmShim",
            exclude: ["plugins"],
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
        .target(
            name: "SlurmBridge",
            dependencies: ["CSlurmShim", "TopoEngine"]
        ),
        .target(name: "TopoEngine"),
        .executableTarget(
            name: "topo-preempt",
            dependencies: [
                "TopoEngine",
                "SlurmBridge",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The live-cluster commands (plan --job, audit) call libslurm's client API.
            linkerSettings: [.linkedLibrary("slurm")]
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
        .testTarget(name: "SlurmBridgeTests", dependencies: ["SlurmBridge", "CSlurmShim", "CSlurmMock"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TopoEngine"]),
    ]
)
