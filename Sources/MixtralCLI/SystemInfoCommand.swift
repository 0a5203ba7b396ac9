import ArgumentParser
import Foundation
import MixtralKernels

/// The version `mixtral --version` prints.
let mixtralVersion = "0.12.0"

struct SystemInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "system-info",
        abstract: "Print the CPU's features and the kernel level in use.",
        discussion: """
        Kernels exist for three levels: generic (any CPU), avx2 (AVX2 + FMA + F16C) and avx512 \
        (AVX-512 F/BW/DQ/VL, with VNNI, BF16 and VBMI used where present). The highest level the \
        CPU runs is used; the environment variable MIXTRAL_CPU=generic|avx2|avx512 caps it.
        """)

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func run() throws {
        let kernels = try KernelTable.checkedDefault()
        if json {
            var object = cpuDescription(kernels)
            object["version"] = mixtralVersion
            object["threads"] = ProcessInfo.processInfo.activeProcessorCount
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        let cpu = CPUInfo.current
        let requested = ProcessInfo.processInfo.environment["MIXTRAL_CPU"].map { " (MIXTRAL_CPU=\($0))" } ?? ""
        print("swift-mixtral \(mixtralVersion)")
        print("CPU: \(cpu.brand.isEmpty ? "unknown" : cpu.brand)")
        print("features: \(cpu.features.isEmpty ? "none beyond the baseline" : cpu.features.joined(separator: " "))")
        print("CPU level: \(cpu.level)")
        print("kernels in use: \(kernels.summary)\(requested)")
        print("threads: \(ProcessInfo.processInfo.activeProcessorCount) (one per core)")
    }
}

/// The CPU and kernel level, for `system-info --json` and `bench --json`.
func cpuDescription(_ kernels: KernelTable) -> [String: Any] {
    let cpu = CPUInfo.current
    return ["cpu": cpu.brand, "features": cpu.features, "cpu_level": cpu.level.description,
            "kernel_level": kernels.level.description, "kernels": kernels.summary]
}

extension KernelTable {
    /// The default table, after checking MIXTRAL_CPU (an unknown value is an error here).
    static func checkedDefault() throws -> KernelTable {
        _ = try CPUInfo.requestedLevel()
        return .default
    }
}
