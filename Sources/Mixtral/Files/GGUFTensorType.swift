import MixtralKernels

/// A ggml tensor type as stored in a GGUF tensor description. Every type ggml defines is
/// known here (so that any valid file can be opened and its sizes checked); only those
/// with a `weightType` can be computed with.
public struct GGUFTensorType: Hashable, Sendable, CustomStringConvertible {
    /// The ggml type id (enum ggml_type).
    public let id: UInt32
    /// ggml's name for the type, e.g. "Q4_K".
    public let name: String
    /// Elements per block (1 for plain types).
    public let blockSize: Int
    /// Bytes per block.
    public let blockBytes: Int

    /// The corresponding engine weight type, or nil when the engine does not support it.
    public var weightType: WeightType? { WeightType(rawValue: name) }

    public var description: String { name }

    /// The type with this id, or nil when ggml defines none.
    public init?(id: UInt32) {
        guard let known = GGUFTensorType.known[id] else { return nil }
        self = known
    }

    /// The GGUF type for an engine weight type.
    public init(_ weightType: WeightType) {
        let id: UInt32
        switch weightType {
        case .f32: id = 0
        case .f16: id = 1
        case .q4_0: id = 2
        case .q4_1: id = 3
        case .q5_0: id = 6
        case .q5_1: id = 7
        case .q8_0: id = 8
        case .q4_K: id = 12
        case .q5_K: id = 13
        case .q6_K: id = 14
        case .bf16: id = 30
        // Not a GGML type: an id no reader knows, so such a tensor can never pass as
        // something else; writeLlamaGGUF refuses NF4 before it gets here.
        case .nf4: id = UInt32.max
        }
        self.init(id: id, name: weightType.rawValue, blockSize: weightType.blockSize, blockBytes: weightType.blockBytes)
    }

    private init(id: UInt32, name: String, blockSize: Int, blockBytes: Int) {
        self.id = id
        self.name = name
        self.blockSize = blockSize
        self.blockBytes = blockBytes
    }

    /// ggml's types: id, name, block size, block bytes (ggml.h, ggml-common.h).
    private static let known: [UInt32: GGUFTensorType] = {
        let table: [(UInt32, String, Int, Int)] = [
            (0, "F32", 1, 4), (1, "F16", 1, 2),
            (2, "Q4_0", 32, 18), (3, "Q4_1", 32, 20),
            (6, "Q5_0", 32, 22), (7, "Q5_1", 32, 24),
            (8, "Q8_0", 32, 34), (9, "Q8_1", 32, 36),
            (10, "Q2_K", 256, 84), (11, "Q3_K", 256, 110), (12, "Q4_K", 256, 144),
            (13, "Q5_K", 256, 176), (14, "Q6_K", 256, 210), (15, "Q8_K", 256, 292),
            (16, "IQ2_XXS", 256, 66), (17, "IQ2_XS", 256, 74), (18, "IQ3_XXS", 256, 98),
            (19, "IQ1_S", 256, 50), (20, "IQ4_NL", 32, 18), (21, "IQ3_S", 256, 110),
            (22, "IQ2_S", 256, 82), (23, "IQ4_XS", 256, 136),
            (24, "I8", 1, 1), (25, "I16", 1, 2), (26, "I32", 1, 4), (27, "I64", 1, 8),
            (28, "F64", 1, 8), (29, "IQ1_M", 256, 56), (30, "BF16", 1, 2),
            (34, "TQ1_0", 256, 54), (35, "TQ2_0", 256, 66),
            (39, "MXFP4", 32, 17), (40, "NVFP4", 64, 36), (41, "Q1_0", 128, 18),
        ]
        var types: [UInt32: GGUFTensorType] = [:]
        for (id, name, blockSize, blockBytes) in table {
            types[id] = GGUFTensorType(id: id, name: name, blockSize: blockSize, blockBytes: blockBytes)
        }
        return types
    }()
}
