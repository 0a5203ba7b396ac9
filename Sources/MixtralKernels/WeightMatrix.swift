/// How the elements of a weight matrix are stored. Quantised types are GGML block
/// formats (ggml-common.h): a row is a sequence of blocks of `blockSize` weights.
public enum WeightType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    case q8_0 = "Q8_0", q4_0 = "Q4_0", q4_1 = "Q4_1", q5_0 = "Q5_0", q5_1 = "Q5_1"
    case q4_K = "Q4_K", q5_K = "Q5_K", q6_K = "Q6_K"
    /// bitsandbytes' NF4 (`load_in_4bit` with quant_type "nf4"): blocks of 64, an fp32
    /// absmax, then 4-bit codes into the NF4 table. Not a GGML type: made at load only.
    case nf4 = "NF4"

    /// Weights per block (1 for plain floating-point types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1: return 32
        case .q4_K, .q5_K, .q6_K: return 256
        case .nf4: return 64
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .nf4: return 36
        }
    }

    /// Bytes needed for `count` weights, or nil when `count` is not a whole number of blocks.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}

/// A row-major matrix of weights [rows, columns] read in place (usually from a memory
/// mapping). Row r starts at `base + r * rowBytes`.
public struct WeightMatrix: @unchecked Sendable {
    public let type: WeightType
    public let rows: Int
    public let columns: Int
    public let base: UnsafeRawPointer
    public let rowBytes: Int

    public init(type: WeightType, rows: Int, columns: Int, base: UnsafeRawPointer) {
        self.type = type
        self.rows = rows
        self.columns = columns
        self.base = base
        self.rowBytes = type.byteCount(elements: columns) ?? 0
    }

    public func row(_ r: Int) -> UnsafeRawPointer { base + r * rowBytes }

    /// Bytes occupied by the whole matrix.
    public var byteCount: Int { rows * rowBytes }
}
