import MixtralKernels

/// A named tensor read in place from a weight file. `owner` keeps the file mapping alive
/// for as long as any view (or matrix made from it) is in use.
public struct TensorView: @unchecked Sendable {
    public let name: String
    public let file: String
    public let type: WeightType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let owner: AnyObject

    public var elementCount: Int { shape.reduce(1, *) }

    /// Checks the shape against what the model config implies.
    public func expectShape(_ expected: [Int]) throws(CheckpointError) {
        guard shape == expected else {
            throw .shapeMismatch(file: file, tensor: name, expected: expected, found: shape)
        }
    }

    /// The tensor as a [rows, columns] weight matrix, after checking its shape.
    public func matrix(rows: Int, columns: Int) throws(CheckpointError) -> WeightMatrix {
        try expectShape([rows, columns])
        return WeightMatrix(type: type, rows: rows, columns: columns, base: data)
    }

    /// A copy of the tensor converted to fp32 (for small tensors such as norm weights).
    public func floats(count expected: Int) throws(CheckpointError) -> [Float] {
        try expectShape([expected])
        return [Float](unsafeUninitializedCapacity: expected) { buffer, initialized in
            if let out = buffer.baseAddress { dequantizeRow(type, data, out, count: expected) }
            initialized = expected
        }
    }
}

/// A source of named tensors: a safetensors checkpoint (one file or shards) or a GGUF file.
public protocol WeightStore: Sendable {
    /// A human-readable name of the store (its path), for messages.
    var location: String { get }
    var tensorNames: [String] { get }
    func contains(_ name: String) -> Bool
    func tensor(_ name: String) throws(CheckpointError) -> TensorView
    /// Where the bytes at `pointer` (from one of this store's tensors) lie in a weight file,
    /// when the store maps its files rather than holding the bytes in memory; expert
    /// streaming reads them from there. nil otherwise.
    func fileLocation(of pointer: UnsafeRawPointer) -> WeightFileLocation?
    /// Drops this process's resident pages of the files the store maps (the kernel reads
    /// them again if they are touched): a tensor-parallel rank that has copied its slices
    /// keeps only those. Nothing for bytes held in memory.
    func dropMappedPages()
}

extension WeightStore {
    public func fileLocation(of pointer: UnsafeRawPointer) -> WeightFileLocation? { nil }
    public func dropMappedPages() {}
}

/// A byte offset in a weight file.
public struct WeightFileLocation: Sendable, Equatable {
    public let path: String
    public let offset: Int
}
