// swift-tools-version: 6.1
import PackageDescription
import Foundation

// The default build is portable: it runs on any x86-64 (or aarch64) CPU, and the kernels
// for AVX2 and AVX-512 are chosen at run time (MixtralCKernels/KernelTable.c). No target
// uses unsafe flags, so the package can be a versioned dependency.
//
// Opt-in: MIXTRAL_TARGET_CPU=native (or a CPU name such as x86-64-v3) compiles the Swift
// code for that CPU as well; the binary then runs only there. The hot loops are all in the
// kernel table, so this is not measurably faster (BENCHMARKS.md, "Portable build against a
// native one").
//
// Trait MPI (`swift build -c release --traits MPI`): tensor parallelism over MPI
// (`mpiexec -n N mixtral generate|score|bench ...`), linking MPICH (Debian: libmpich-dev)
// through the CMPI system library. Without the trait nothing needs MPI.
let targetCPU = ProcessInfo.processInfo.environment["MIXTRAL_TARGET_CPU"]
let swiftSettings: [SwiftSetting] = targetCPU.map { [.unsafeFlags(["-target-cpu", $0])] } ?? []

let package = Package(
    name: "swift-mixtral",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Mixtral", targets: ["Mixtral"]),
        .library(name: "MixtralTokenizers", targets: ["MixtralTokenizers"]),
        .executable(name: "mixtral", targets: ["MixtralCLI"]),
        .executable(name: "mixtral-fuzz", targets: ["MixtralFuzz"]),
    ],
    traits: [
        .trait(name: "MPI", description: "Tensor-parallel inference over MPI (MPICH: libmpich-dev, mpiexec)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
    ],
    targets: [
        // The Swift side of the kernels: matrix products, attention, norms, the CPU level and
        // the thread pool.
        .target(name: "MixtralKernels", dependencies: ["MixtralCKernels"], swiftSettings: swiftSettings),
        // The kernels themselves, one table per CPU level (generic, AVX2, AVX-512), chosen at
        // run time.
        .target(name: "MixtralCKernels"),
        // Text <-> token ids: SentencePiece, tokenizer.json, chat templates.
        .target(name: "MixtralTokenizers"),
        // Files -> tensors -> model -> logits -> sampling -> generation.
        .target(name: "Mixtral", dependencies: ["MixtralKernels", "MixtralTokenizers"], swiftSettings: swiftSettings),
        // The OpenAI-compatible HTTP server with continuous batching.
        .target(
            name: "MixtralServer",
            dependencies: [
                "Mixtral",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // MPI's C interface (MPICH, found with pkg-config), used only with the MPI trait.
        .systemLibrary(name: "CMPI", pkgConfig: "mpich", providers: [.apt(["libmpich-dev"])]),
        // The MPI communicator of tensor-parallel runs and the ranks' start; without the MPI
        // trait it only refuses to run under mpiexec with several ranks.
        .target(name: "MixtralMPI", dependencies: ["Mixtral", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        // The `mixtral` command-line tool.
        .executableTarget(
            name: "MixtralCLI",
            dependencies: ["Mixtral", "MixtralServer", "MixtralMPI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        // Fuzz targets for every parser of untrusted input (scripts/fuzz/run.sh); in a normal
        // build, a tool that replays their corpora.
        .executableTarget(name: "MixtralFuzz", dependencies: ["Mixtral", "MixtralServer"]),
        .testTarget(name: "MixtralTests", dependencies: ["Mixtral"], exclude: ["Fixtures"]),
        .testTarget(name: "MixtralTokenizersTests", dependencies: ["MixtralTokenizers"], exclude: ["Fixtures"]),
        .testTarget(name: "MixtralServerTests", dependencies: ["MixtralServer"]),
        .testTarget(name: "MixtralKernelsTests", dependencies: ["MixtralKernels"]),
    ],
    swiftLanguageModes: [.v6]
)
