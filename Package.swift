// swift-tools-version: 6.0
import PackageDescription
import Foundation

// Kernels are compiled for the build machine's CPU (like llama.cpp's GGML_NATIVE):
// with a target CPU, SIMD16<Float> lowers to AVX-512/AVX2 instead of scalar libm calls.
// Set MIXTRAL_TARGET_CPU to build for another CPU (e.g. "x86-64-v3"), or "generic".
let targetCPU = ProcessInfo.processInfo.environment["MIXTRAL_TARGET_CPU"] ?? "native"
let cpuFlags: [String] = targetCPU == "generic" ? [] : ["-target-cpu", targetCPU]
let fastSwift: [SwiftSetting] = [
    .unsafeFlags(cpuFlags + ["-enforce-exclusivity=unchecked"]),
]

let package = Package(
    name: "swift-mixtral",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Mixtral", targets: ["Mixtral"]),
        .library(name: "MixtralTokenizers", targets: ["MixtralTokenizers"]),
        .executable(name: "mixtral", targets: ["MixtralCLI"]),
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
        // Compute kernels (matrix-vector, matrix-matrix, attention, norms) and the thread pool.
        .target(name: "MixtralKernels", dependencies: ["MixtralCKernels"], swiftSettings: fastSwift),
        // AVX512-BF16 micro-kernels (instructions Swift cannot emit), selected at run time.
        .target(name: "MixtralCKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Text <-> token ids: SentencePiece, tokenizer.json, chat templates.
        .target(name: "MixtralTokenizers"),
        // Files -> tensors -> model -> logits -> sampling -> generation.
        .target(name: "Mixtral", dependencies: ["MixtralKernels", "MixtralTokenizers"], swiftSettings: fastSwift),
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
        // The `mixtral` command-line tool.
        .executableTarget(
            name: "MixtralCLI",
            dependencies: ["Mixtral", "MixtralServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "MixtralTests", dependencies: ["Mixtral"], exclude: ["Fixtures"]),
        .testTarget(name: "MixtralTokenizersTests", dependencies: ["MixtralTokenizers"], exclude: ["Fixtures"]),
        .testTarget(name: "MixtralServerTests", dependencies: ["MixtralServer"]),
        .testTarget(name: "MixtralKernelsTests", dependencies: ["MixtralKernels"], swiftSettings: fastSwift),
    ],
    swiftLanguageModes: [.v6]
)
