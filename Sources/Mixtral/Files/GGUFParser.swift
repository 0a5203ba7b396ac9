import MixtralKernels

/// Everything before the tensor data.
struct GGUFHeader {
    var version: UInt32
    var metadata: [String: GGUFValue]
    var metadataKeys: [String]
    var tensors: [String: GGUFTensorInfo]
    var tensorNames: [String]
    var alignment: Int
    var dataOffset: Int
}

/// Reads the GGUF header from a byte buffer. Layout (all little-endian):
///
///     magic "GGUF", u32 version, u64 tensor_count, u64 metadata_count,
///     metadata_count x { string key, u32 value_type, value },
///     tensor_count x { string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset },
///     padding to a multiple of the alignment, tensor data.
///
/// string = u64 byte length + UTF-8 bytes (no terminator); array value = u32 element
/// type + u64 count + elements. Tensor offsets are relative to the data section and
/// multiples of the alignment.
struct GGUFParser {
    static let defaultAlignment = 32
    /// ggml tensors have at most 4 dimensions.
    static let maxDimensions = 4
    /// Deeper nesting of arrays than this is treated as corruption.
    static let maxArrayDepth = 8

    let bytes: UnsafeRawBufferPointer
    let path: String
    private var position = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    mutating func parse() throws(GGUFError) -> GGUFHeader {
        // Magic and version.
        guard bytes.count >= 4 else {
            throw bytes.elementsEqual("GGUF".utf8.prefix(bytes.count))
                ? .truncated(path: path, what: "the header") : .badMagic(path: path)
        }
        guard bytes.prefix(4).elementsEqual("GGUF".utf8) else { throw .badMagic(path: path) }
        position = 4
        let version = try readUInt32("the header")
        guard version == 2 || version == 3 else {
            throw .unsupportedVersion(path: path, version: version)
        }
        let tensorCount = try readUInt64("the header")
        let metadataCount = try readUInt64("the header")

        // Metadata. Each entry takes at least 13 bytes (key length, type, 1-byte value),
        // so a count that could not fit in the rest of the file is corrupt.
        guard metadataCount <= UInt64(remaining / 13) else {
            throw .truncated(path: path, what: "the metadata (\(metadataCount) entries declared)")
        }
        var metadata: [String: GGUFValue] = [:]
        var metadataKeys: [String] = []
        metadataKeys.reserveCapacity(Int(metadataCount))
        for index in 0..<Int(metadataCount) {
            let key = try readString("the key of metadata entry \(index)")
            // The GGUF specification caps keys at 65535 bytes.
            guard key.utf8.count <= 65535 else {
                throw .invalidMetadata(path: path, key: key, reason: "the key is \(key.utf8.count) bytes long (the format allows 65535)")
            }
            let context = "metadata '\(key)'"
            let typeID = try readUInt32(context)
            guard let type = GGUFValueType(rawValue: typeID) else {
                throw .invalidMetadata(path: path, key: key, reason: "unknown value type id \(typeID)")
            }
            let value = try readValue(type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw .duplicateKey(path: path, key: key)
            }
            metadataKeys.append(key)
        }

        let alignment = try Self.alignment(metadata, path: path)

        // Tensor descriptions: at least 24 bytes each (name length, n_dims, type, offset).
        guard tensorCount <= UInt64(remaining / 24) else {
            throw .truncated(path: path, what: "the tensor descriptions (\(tensorCount) tensors declared)")
        }
        var infos: [(name: String, dimensions: [Int], type: GGUFTensorType, offset: UInt64, byteCount: Int)] = []
        infos.reserveCapacity(Int(tensorCount))
        var names = Set<String>()
        for index in 0..<Int(tensorCount) {
            let name = try readString("the name of tensor \(index)")
            // llama.cpp refuses names of GGML_MAX_NAME (64) bytes or more; so do we.
            guard name.utf8.count < 64 else {
                throw .invalidTensorInfo(path: path, tensor: name, reason: "the name is \(name.utf8.count) bytes long (at most 63 are allowed)")
            }
            guard names.insert(name).inserted else { throw .duplicateTensor(path: path, tensor: name) }
            let context = "the description of tensor '\(name)'"
            let dimensionCount = try readUInt32(context)
            guard dimensionCount <= Self.maxDimensions else {
                throw .invalidTensorInfo(path: path, tensor: name,
                                         reason: "\(dimensionCount) dimensions (at most \(Self.maxDimensions))")
            }
            var dimensions: [Int] = []
            var elementCount = 1
            for _ in 0..<Int(dimensionCount) {
                let raw = try readUInt64(context)
                guard let dimension = Int(exactly: raw), dimension >= 0 else {
                    throw .invalidTensorInfo(path: path, tensor: name, reason: "dimension \(raw) is too large")
                }
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: dimension)
                guard !overflow else {
                    throw .invalidTensorInfo(path: path, tensor: name, reason: "element count overflows")
                }
                dimensions.append(dimension)
                elementCount = product
            }
            let typeID = try readUInt32(context)
            guard let type = GGUFTensorType(id: typeID) else {
                throw .unknownTensorType(path: path, tensor: name, typeID: typeID)
            }
            let rowLength = dimensions.first ?? 1
            guard rowLength % type.blockSize == 0 else {
                throw .invalidTensorInfo(path: path, tensor: name,
                                         reason: "rows of \(rowLength) elements are not whole \(type.name) blocks of \(type.blockSize)")
            }
            let (byteCount, overflow) = (elementCount / type.blockSize).multipliedReportingOverflow(by: type.blockBytes)
            guard !overflow else {
                throw .invalidTensorInfo(path: path, tensor: name, reason: "byte size overflows")
            }
            let offset = try readUInt64(context)
            guard offset % UInt64(alignment) == 0 else {
                throw .misalignedTensor(path: path, tensor: name, offset: offset, alignment: alignment)
            }
            infos.append((name, dimensions, type, offset, byteCount))
        }

        // The data section starts at the next multiple of the alignment (if there are tensors).
        var dataOffset = position
        if tensorCount > 0 {
            let padding = (alignment - position % alignment) % alignment
            guard padding <= remaining else {
                throw .truncated(path: path, what: "the padding before the tensor data")
            }
            dataOffset += padding
        }
        let dataSize = bytes.count - dataOffset

        var tensors: [String: GGUFTensorInfo] = [:]
        for info in infos {
            guard info.offset <= UInt64(dataSize), info.byteCount <= dataSize - Int(info.offset) else {
                throw .tensorDataOutOfBounds(path: path, tensor: info.name, offset: info.offset,
                                             byteCount: info.byteCount, available: dataSize)
            }
            tensors[info.name] = GGUFTensorInfo(
                name: info.name, dimensions: info.dimensions, type: info.type, offset: info.offset,
                fileOffset: dataOffset + Int(info.offset), byteCount: info.byteCount, shard: 0)
        }

        return GGUFHeader(version: version, metadata: metadata, metadataKeys: metadataKeys, tensors: tensors,
                          tensorNames: infos.map(\.name), alignment: alignment, dataOffset: dataOffset)
    }

    /// `general.alignment`: a UINT32 power of two; 32 when absent.
    private static func alignment(_ metadata: [String: GGUFValue], path: String) throws(GGUFError) -> Int {
        let key = "general.alignment"
        guard let value = metadata[key] else { return defaultAlignment }
        guard case let .uint32(alignment) = value else {
            throw .invalidMetadata(path: path, key: key, reason: "must be UINT32, found \(value.typeName)")
        }
        guard alignment > 0, alignment & (alignment - 1) == 0 else {
            throw .invalidMetadata(path: path, key: key, reason: "\(alignment) is not a power of 2")
        }
        return Int(alignment)
    }

    // MARK: Values

    private var remaining: Int { bytes.count - position }

    private mutating func readValue(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        let context = "metadata '\(key)'"
        switch type {
        case .uint8: return .uint8(try readInteger(UInt8.self, context))
        case .int8: return .int8(Int8(bitPattern: try readInteger(UInt8.self, context)))
        case .uint16: return .uint16(try readInteger(UInt16.self, context))
        case .int16: return .int16(Int16(bitPattern: try readInteger(UInt16.self, context)))
        case .uint32: return .uint32(try readUInt32(context))
        case .int32: return .int32(Int32(bitPattern: try readUInt32(context)))
        case .uint64: return .uint64(try readUInt64(context))
        case .int64: return .int64(Int64(bitPattern: try readUInt64(context)))
        case .float32: return .float32(Float(bitPattern: try readUInt32(context)))
        case .float64: return .float64(Double(bitPattern: try readUInt64(context)))
        case .bool:
            // Any non-zero byte is true, as the gguf package reads it.
            return .bool(try readInteger(UInt8.self, context) != 0)
        case .string: return .string(try readString(context))
        case .array:
            guard depth < Self.maxArrayDepth else {
                throw .invalidMetadata(path: path, key: key, reason: "arrays nested more than \(Self.maxArrayDepth) deep")
            }
            let elementTypeID = try readUInt32(context)
            guard let elementType = GGUFValueType(rawValue: elementTypeID) else {
                throw .invalidMetadata(path: path, key: key, reason: "unknown array element type id \(elementTypeID)")
            }
            let count = try readUInt64(context)
            // Never reserve more elements than the rest of the file could hold.
            guard count <= UInt64(remaining / elementType.minimumByteCount) else {
                throw .truncated(path: path, what: "\(context) (array of \(count) \(elementType) declared)")
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) {
                values.append(try readValue(elementType, key: key, depth: depth + 1))
            }
            return .array(elementType: elementType, values: values)
        }
    }

    private mutating func readString(_ context: String) throws(GGUFError) -> String {
        let length = try readUInt64(context)
        guard length <= UInt64(remaining) else {
            throw .truncated(path: path, what: "\(context) (string of \(length) bytes declared)")
        }
        let start = position
        position += Int(length)
        return String(decoding: bytes[start ..< position], as: UTF8.self)
    }

    private mutating func readUInt32(_ context: String) throws(GGUFError) -> UInt32 {
        try readInteger(UInt32.self, context)
    }

    private mutating func readUInt64(_ context: String) throws(GGUFError) -> UInt64 {
        try readInteger(UInt64.self, context)
    }

    private mutating func readInteger<T: FixedWidthInteger>(_: T.Type, _ context: String) throws(GGUFError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw .truncated(path: path, what: context) }
        let value = bytes.loadUnaligned(fromByteOffset: position, as: T.self)
        position += size
        return T(littleEndian: value)
    }
}
