import MixtralKernels

/// Where one tensor lies in a GGUF file and what it holds.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// Dimensions as GGUF lists them: innermost (contiguous) first. A matrix with
    /// `rows` rows of `columns` elements is `[columns, rows]`.
    public let dimensions: [Int]
    public let type: GGUFTensorType
    /// Offset of the data from the start of the data section (as stored in the file).
    public let offset: UInt64
    /// Offset of the data from the start of the file.
    public let fileOffset: Int
    /// Bytes of data.
    public let byteCount: Int
    /// Which file of a split model holds the data (index into `GGUFFile.shardPaths`; 0 for
    /// a single file). `offset` and `fileOffset` are within that file.
    public let shard: Int

    /// Dimensions outermost first, as PyTorch and NumPy write shapes.
    public var shape: [Int] { dimensions.reversed() }

    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }

    func inShard(_ shard: Int) -> GGUFTensorInfo {
        GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: offset,
                       fileOffset: fileOffset, byteCount: byteCount, shard: shard)
    }
}

/// A GGUF file (versions 2 and 3), memory-mapped: metadata is parsed when the file is
/// opened, tensor data is read in place. Every count, length and offset in the file is
/// checked before it is used, so a corrupt or truncated file gives a `GGUFError`.
///
/// A model split by llama.cpp's gguf-split (`NAME-00001-of-00003.gguf`, ...) is opened
/// from its first file: the others are found by the same naming, checked (`split.no`,
/// `split.count`) and their tensors added, so the model reads as one file. Metadata comes
/// from the first file, as llama.cpp takes it.
///
/// Pointers handed out (`WeightMatrix.base`, `data(_:)`) point into the mappings: keep the
/// `GGUFFile` alive while they are in use.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    /// 2 or 3.
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensors of all the files of a split model.
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order (file by file for a split model).
    public let tensorNames: [String]
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// Offset of the data section from the start of the (first) file.
    public let dataOffset: Int
    /// The files of a split model in order (`[path]` for a single file).
    public let shardPaths: [String]

    private let mappings: [GGUFMapping]

    public init(path: String, residency: WeightResidency = .mapped) throws(GGUFError) {
        let mapping = try GGUFMapping(path: path, residency: residency)
        var parser = GGUFParser(bytes: mapping.bytes, path: path)
        let header = try parser.parse()
        mapping.alignCacheLines(fileOffset: Self.linePhase(header))
        self.path = path
        self.version = header.version
        self.metadata = header.metadata
        self.metadataKeys = header.metadataKeys
        self.alignment = header.alignment
        self.dataOffset = header.dataOffset

        let shards = try Self.splitPaths(path: path, metadata: header.metadata)
        var mappings = [mapping]
        var tensors = header.tensors
        var names = header.tensorNames
        for (index, shardPath) in shards.enumerated().dropFirst() {
            let shardMapping = try GGUFMapping(path: shardPath, residency: residency)
            var shardParser = GGUFParser(bytes: shardMapping.bytes, path: shardPath)
            let shardHeader = try shardParser.parse()
            shardMapping.alignCacheLines(fileOffset: Self.linePhase(shardHeader))
            for key in ["split.no", "split.count"] {
                let expected = key == "split.no" ? index : shards.count
                guard shardHeader.metadata[key]?.intValue == expected else {
                    throw .invalidMetadata(path: shardPath, key: key,
                                           reason: "expected \(expected) in file \(index + 1) of \(shards.count)")
                }
            }
            for name in shardHeader.tensorNames {
                guard let info = shardHeader.tensors[name], tensors.updateValue(info.inShard(index), forKey: name) == nil else {
                    throw .duplicateTensor(path: shardPath, tensor: name)
                }
                names.append(name)
            }
            mappings.append(shardMapping)
        }
        self.tensors = tensors
        self.tensorNames = names
        self.shardPaths = shards
        self.mappings = mappings
    }

    /// The files of the model that `path` starts: `[path]`, or for `split.count` N > 1 the
    /// paths PREFIX-0000k-of-0000N.gguf, k = 1...N, where `path` must be the first.
    private static func splitPaths(path: String, metadata: [String: GGUFValue]) throws(GGUFError) -> [String] {
        guard let value = metadata["split.count"] else { return [path] }
        guard let count = value.intValue, count >= 1, count <= 99_999 else {
            throw .invalidMetadata(path: path, key: "split.count", reason: "\(value) is not a file count")
        }
        if count == 1 { return [path] }
        guard metadata["split.no"]?.intValue == 0 else {
            throw .invalidMetadata(path: path, key: "split.no",
                                   reason: "this is not the first file of a split model; open the -00001-of-\(fiveDigits(count)).gguf file")
        }
        let suffix = "-00001-of-\(fiveDigits(count)).gguf"
        guard path.hasSuffix(suffix) else {
            throw .invalidMetadata(path: path, key: "split.count",
                                   reason: "the first file of a \(count)-file split model must be named PREFIX\(suffix)")
        }
        let prefix = String(path.dropLast(suffix.count))
        return partPaths(prefix: prefix, count: count)
    }

    /// The files of a model split in `count` parts: PREFIX-0000k-of-0000N.gguf, k = 1...N.
    static func partPaths(prefix: String, count: Int) -> [String] {
        (1...count).map { "\(prefix)-\(fiveDigits($0))-of-\(fiveDigits(count)).gguf" }
    }

    private static func fiveDigits(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: Swift.max(0, 5 - digits.count)) + digits
    }

    /// The file offset that memory-resident bytes should place at a cache-line start.
    private static func linePhase(_ header: GGUFHeader) -> Int {
        dominantLinePhase(header.tensors.values.map { ($0.fileOffset, $0.byteCount) })
    }

    /// The file and offset of a pointer into mapped (not memory-resident) tensor bytes.
    public func fileLocation(of pointer: UnsafeRawPointer) -> WeightFileLocation? {
        for (index, mapping) in mappings.enumerated() {
            if let offset = mapping.mappedFileOffset(of: pointer) { return WeightFileLocation(path: shardPaths[index], offset: offset) }
        }
        return nil
    }

    /// Drops this process's pages of the mapped files (see `WeightStore.dropMappedPages`).
    public func dropMappedPages() {
        for mapping in mappings { mapping.dropMappedPages() }
    }

    /// Size of the (first) file in bytes.
    public var fileSize: Int { mappings[0].count }

    // MARK: Tensors

    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    public func tensorInfo(_ name: String) throws(GGUFError) -> GGUFTensorInfo {
        guard let info = tensors[name] else { throw .tensorNotFound(path: path, tensor: name) }
        return info
    }

    /// The raw bytes of a tensor, in place.
    public func data(_ name: String) throws(GGUFError) -> UnsafeRawBufferPointer {
        let info = try tensorInfo(name)
        return UnsafeRawBufferPointer(rebasing: mappings[info.shard].bytes[info.fileOffset ..< info.fileOffset + info.byteCount])
    }

    /// A non-empty tensor as a row-major matrix read in place: the innermost dimension is
    /// the columns, all outer dimensions together are the rows (a 1-D tensor is one row; a
    /// 3-D expert tensor [columns, rows, experts] gives experts*rows rows, expert e's
    /// rows starting at row e*rows).
    public func matrix(_ name: String) throws(GGUFError) -> WeightMatrix {
        let info = try tensorInfo(name)
        let weightType = try supportedType(info)
        try nonEmpty(info)
        let columns = info.dimensions.first ?? 1
        let rows = info.dimensions.dropFirst().reduce(1, *)
        return WeightMatrix(type: weightType, rows: rows, columns: columns, base: try base(info))
    }

    /// A non-empty 3-D tensor [columns, rows, count] (innermost first) as `count` matrices
    /// of [rows, columns], e.g. the experts of `blk.N.ffn_up_exps.weight`.
    public func matrices(_ name: String) throws(GGUFError) -> [WeightMatrix] {
        let info = try tensorInfo(name)
        let weightType = try supportedType(info)
        guard info.dimensions.count == 3 else {
            throw .unexpectedShape(path: path, tensor: name, dimensions: info.dimensions, expected: "3 dimensions")
        }
        try nonEmpty(info)
        let columns = info.dimensions[0], rows = info.dimensions[1], count = info.dimensions[2]
        let base = try base(info)
        let stride = info.byteCount / count
        return (0..<count).map { WeightMatrix(type: weightType, rows: rows, columns: columns, base: base + $0 * stride) }
    }

    /// A tensor of a supported type dequantised to Float, in GGUF (innermost-first) order.
    public func floats(_ name: String) throws(GGUFError) -> [Float] {
        let info = try tensorInfo(name)
        let weightType = try supportedType(info)
        let base = try base(info)
        let count = info.elementCount
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let out = buffer.baseAddress, count > 0 {
                dequantizeRow(weightType, base, out, count: count)
            }
            initialized = count
        }
    }

    private func supportedType(_ info: GGUFTensorInfo) throws(GGUFError) -> WeightType {
        guard let weightType = info.type.weightType else {
            throw .unsupportedTensorType(path: path, tensor: info.name, type: info.type.name)
        }
        return weightType
    }

    /// An empty tensor's other dimensions are not bounded by the file's size (a corrupt
    /// [0, 2^40] tensor takes no bytes), so matrices are only made from non-empty tensors.
    private func nonEmpty(_ info: GGUFTensorInfo) throws(GGUFError) {
        guard info.elementCount > 0 else {
            throw .unexpectedShape(path: path, tensor: info.name, dimensions: info.dimensions, expected: "a non-empty tensor")
        }
    }

    private func base(_ info: GGUFTensorInfo) throws(GGUFError) -> UnsafeRawPointer {
        // Only an empty file has no mapping, and it has no tensors; this guards anyway.
        guard let start = mappings[info.shard].base else {
            throw .tensorDataOutOfBounds(path: path, tensor: info.name, offset: info.offset,
                                         byteCount: info.byteCount, available: 0)
        }
        return start + info.fileOffset
    }

    // MARK: Metadata

    public func value(_ key: String) throws(GGUFError) -> GGUFValue {
        guard let value = metadata[key] else { throw .missingKey(path: path, key: key) }
        return value
    }

    public func string(_ key: String) throws(GGUFError) -> String {
        try typed(key, "STRING") { $0.stringValue }
    }

    /// Any integer type whose value fits in Int.
    public func int(_ key: String) throws(GGUFError) -> Int {
        try typed(key, "an integer") { $0.intValue }
    }

    /// A FLOAT32 or FLOAT64 value as Float. An integer is a type mismatch, as in llama.cpp's
    /// gguf_get_val_f32: a float key stored as an integer is a broken file.
    public func float(_ key: String) throws(GGUFError) -> Float {
        try typed(key, "FLOAT32 or FLOAT64") { value in
            switch value {
            case let .float32(v): return v
            case let .float64(v): return Float(v)
            default: return nil
            }
        }
    }

    /// The value under `key` read as `read` reads it (`string`, `int`, ...), or nil when the
    /// key is absent; a value of another type is an error, not nil.
    public func optional<T>(_ key: String, _ read: (String) throws(GGUFError) -> T) throws(GGUFError) -> T? {
        metadata[key] == nil ? nil : try read(key)
    }

    public func bool(_ key: String) throws(GGUFError) -> Bool {
        try typed(key, "BOOL") { $0.boolValue }
    }

    public func stringArray(_ key: String) throws(GGUFError) -> [String] {
        try typed(key, "ARRAY of STRING") { $0.stringArray }
    }

    public func intArray(_ key: String) throws(GGUFError) -> [Int] {
        try typed(key, "ARRAY of integers") { $0.intArray }
    }

    public func floatArray(_ key: String) throws(GGUFError) -> [Float] {
        try typed(key, "ARRAY of numbers") { $0.floatArray }
    }

    private func typed<T>(_ key: String, _ expected: String, _ convert: (GGUFValue) -> T?) throws(GGUFError) -> T {
        let value = try value(key)
        guard let result = convert(value) else {
            throw .typeMismatch(path: path, key: key, expected: expected, found: value.typeName)
        }
        return result
    }
}
