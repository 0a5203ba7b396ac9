import Foundation
import MixtralCKernels

/// The instruction-set levels the kernels are built for.
public enum CPULevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// Any CPU: x86-64's baseline SSE2, or aarch64.
    case generic = 0
    /// AVX2 with FMA and F16C (Intel Haswell, AMD Zen 1 and later).
    case avx2 = 1
    /// The AVX2 level plus AVX-512 F/BW/DQ/VL (Skylake-X, AMD Zen 4 and later).
    case avx512 = 2

    public var description: String {
        switch self {
        case .generic: return "generic"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    public init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = level
    }

    public static func < (a: CPULevel, b: CPULevel) -> Bool { a.rawValue < b.rawValue }
}

public enum CPUError: Error, CustomStringConvertible, Equatable {
    case unknownLevel(String)

    public var description: String {
        switch self {
        case .unknownLevel(let value):
            return "MIXTRAL_CPU='\(value)' is not a CPU level: use generic, avx2 or avx512 (a cap: the CPU's own level is used when lower)"
        }
    }
}

/// What the CPU this process runs on can execute, probed once (cpuid, and XCR0 for the
/// registers the OS saves).
public struct CPUInfo: Sendable {
    /// Feature names, e.g. ["sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", ...].
    public let features: [String]
    /// The highest level the features allow.
    public let level: CPULevel
    /// The CPU's brand string, or "" where it has none.
    public let brand: String
    let raw: mx_cpu_info

    public static let current = CPUInfo()

    private init() {
        var info = mx_cpu_detect_result()
        features = Self.names.filter { info.features & $0.bit != 0 }.map(\.name)
        level = CPULevel(rawValue: Int(info.level)) ?? .generic
        brand = withUnsafeBytes(of: &info.brand) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        raw = info
    }

    private static let names: [(bit: UInt32, name: String)] = [
        (UInt32(MX_CPU_SSE42), "sse4.2"), (UInt32(MX_CPU_AVX), "avx"), (UInt32(MX_CPU_AVX2), "avx2"),
        (UInt32(MX_CPU_FMA), "fma"), (UInt32(MX_CPU_F16C), "f16c"), (UInt32(MX_CPU_BMI2), "bmi2"),
        (UInt32(MX_CPU_AVX_VNNI), "avx-vnni"), (UInt32(MX_CPU_AVX512F), "avx512f"), (UInt32(MX_CPU_AVX512BW), "avx512bw"),
        (UInt32(MX_CPU_AVX512DQ), "avx512dq"), (UInt32(MX_CPU_AVX512VL), "avx512vl"),
        (UInt32(MX_CPU_AVX512VNNI), "avx512vnni"), (UInt32(MX_CPU_AVX512BF16), "avx512bf16"),
        (UInt32(MX_CPU_AVX512VBMI), "avx512vbmi"), (UInt32(MX_CPU_NEON), "neon"),
    ]

    public func has(_ feature: String) -> Bool { features.contains(feature) }

    /// The level `MIXTRAL_CPU` asks for (a cap), nil when it is not set.
    public static func requestedLevel(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(CPUError) -> CPULevel?
    {
        guard let value = environment["MIXTRAL_CPU"], !value.isEmpty else { return nil }
        guard let level = CPULevel(name: value) else { throw .unknownLevel(value) }
        return level
    }
}

private func mx_cpu_detect_result() -> mx_cpu_info {
    var info = mx_cpu_info()
    mx_cpu_detect(&info)
    return info
}

/// The compute kernels of one CPU level: every ISA-specific function is reached through
/// such a table (MixtralCKernels/KernelTable.c fills it), never directly. A `ComputePool`
/// carries the table its work runs on.
public struct KernelTable: @unchecked Sendable {
    /// The level the kernels were chosen for (at most the CPU's).
    public let level: CPULevel
    let functions: mx_kernels

    /// The kernels of `level`, capped at what this CPU runs.
    public init(level: CPULevel) {
        let capped = min(level, CPUInfo.current.level)
        self.level = capped
        var info = CPUInfo.current.raw
        functions = mx_kernels_for_level(Int32(capped.rawValue), &info)
    }

    /// This CPU's own level, capped by `MIXTRAL_CPU` (an unknown value is ignored here;
    /// `CPUInfo.requestedLevel()` reports it, and the command-line tool refuses it).
    public static let `default` = KernelTable(level: (try? CPUInfo.requestedLevel()).flatMap { $0 } ?? CPUInfo.current.level)

    /// Every level this CPU runs, lowest first (for tests and benchmarks).
    public static var availableLevels: [CPULevel] { CPULevel.allCases.filter { $0 <= CPUInfo.current.level } }

    /// Which kernels run the products, in words (for logs, `mixtral system-info` and bench).
    public var summary: String {
        let cpu = CPUInfo.current
        var parts = ["\(level)"]
        if level == .avx512 {
            parts.append(cpu.has("avx512vnni") ? "8-bit products: AVX512-VNNI" : "8-bit products: AVX2")
            if cpu.has("avx512bf16") { parts.append("bf16 products: AVX512-BF16") }
            if cpu.has("avx512vbmi") { parts.append("Q4_0: AVX512-VBMI") }
        }
        return parts.joined(separator: ", ")
    }
}
