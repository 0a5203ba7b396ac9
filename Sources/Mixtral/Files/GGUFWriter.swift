#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import MixtralKernels

/// A tensor to be written: its name, ggml type and dimensions (innermost first, as GGUF
/// lists them: a matrix of `rows` rows of `columns` elements is `[columns, rows]`).
public struct GGUFTensorDescription: Sendable, Equatable {
    public var name: String
    public var type: GGUFTensorType
    public var dimensions: [Int]

    public init(name: String, type: GGUFTensorType, dimensions: [Int]) {
        self.name = name
        self.type = type
        self.dimensions = dimensions
    }

    public init(name: String, type: WeightType, dimensions: [Int]) {
        self.init(name: name, type: GGUFTensorType(type), dimensions: dimensions)
    }

    /// Bytes of data, or nil when the dimensions are not whole blocks or overflow.
    public var byteCount: Int? {
        guard dimensions.count <= GGUFParser.maxDimensions, dimensions.allSatisfy({ $0 >= 0 }) else { return nil }
        var elements = 1
        for d in dimensions {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            elements = product
        }
        guard (dimensions.first ?? 1) % type.blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / type.blockSize).multipliedReportingOverflow(by: type.blockBytes)
        return overflow ? nil : bytes
    }
}

/// Writes a GGUF version 3 file, streaming: the header (metadata and tensor descriptions)
/// is written when the writer is created, then each tensor's data in the order described,
/// then `finish()`. The layout is the one gguf-py's GGUFWriter and llama.cpp write: tensor
/// data aligned to `general.alignment` (32 unless the metadata sets it), each tensor
/// padded to the alignment.
public final class GGUFFileWriter {
    public let path: String
    public let alignment: Int
    private let descriptions: [GGUFTensorDescription]
    private let sizes: [Int]
    private var next = 0
    /// Bytes of tensor `next` written so far.
    private var currentBytes = 0
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var written = 0

    /// Creates (or truncates) the file and writes the header. `metadata` is written in the
    /// order given; keys must be unique.
    public init(path: String, metadata: [(key: String, value: GGUFValue)],
                tensors: [GGUFTensorDescription]) throws(GGUFError) {
        self.path = path
        var seen = Set<String>()
        var alignment = GGUFParser.defaultAlignment
        for (key, value) in metadata {
            guard seen.insert(key).inserted else { throw .duplicateKey(path: path, key: key) }
            try Self.check(value, key: key, path: path)
            if key == "general.alignment" {
                guard case let .uint32(a) = value, a > 0, a & (a - 1) == 0 else {
                    throw .invalidMetadata(path: path, key: key, reason: "must be a UINT32 power of 2")
                }
                alignment = Int(a)
            }
        }
        self.alignment = alignment
        var names = Set<String>()
        var sizes: [Int] = []
        for tensor in tensors {
            guard names.insert(tensor.name).inserted else { throw .duplicateTensor(path: path, tensor: tensor.name) }
            guard let size = tensor.byteCount else {
                throw .invalidTensorInfo(path: path, tensor: tensor.name,
                                         reason: "dimensions \(tensor.dimensions) do not fit type \(tensor.type)")
            }
            sizes.append(size)
        }
        self.descriptions = tensors
        self.sizes = sizes

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: "cannot create: " + Self.errnoText()) }

        // Header.
        append(Array("GGUF".utf8))
        appendInteger(UInt32(3))
        appendInteger(UInt64(tensors.count))
        appendInteger(UInt64(metadata.count))
        for (key, value) in metadata {
            appendString(key)
            appendInteger(value.type.rawValue)
            appendValue(value)
        }
        var offset = 0
        for (tensor, size) in zip(tensors, sizes) {
            appendString(tensor.name)
            appendInteger(UInt32(tensor.dimensions.count))
            for d in tensor.dimensions { appendInteger(UInt64(d)) }
            appendInteger(tensor.type.id)
            appendInteger(UInt64(offset))
            offset += Self.padded(size, alignment)
        }
        if !tensors.isEmpty { appendPadding() }
        try flush()
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Writes the data of the next tensor (exactly its byte count) and its padding.
    public func writeTensorData(_ data: UnsafeRawBufferPointer) throws(GGUFError) {
        guard next < descriptions.count else {
            throw .invalidTensorInfo(path: path, tensor: "(none)", reason: "more tensor data than tensors described")
        }
        guard currentBytes == 0, data.count == sizes[next] else {
            throw .invalidTensorInfo(path: path, tensor: descriptions[next].name,
                                     reason: "\(data.count) bytes of data given, \(sizes[next] - currentBytes) expected")
        }
        try writeTensorChunk(data)
    }

    /// Writes part of the next tensor's data; the tensor is complete (and padded) once its
    /// byte count has been written. For tensors made piece by piece, such as stacked experts.
    public func writeTensorChunk(_ data: UnsafeRawBufferPointer) throws(GGUFError) {
        guard next < descriptions.count else {
            throw .invalidTensorInfo(path: path, tensor: "(none)", reason: "more tensor data than tensors described")
        }
        guard data.count <= sizes[next] - currentBytes else {
            throw .invalidTensorInfo(path: path, tensor: descriptions[next].name,
                                     reason: "\(currentBytes + data.count) bytes of data given, \(sizes[next]) expected")
        }
        try flush()
        try writeAllOrThrow(data)
        currentBytes += data.count
        if currentBytes == sizes[next] {
            appendPadding()
            next += 1
            currentBytes = 0
        }
    }

    /// Flushes and closes the file after checking that every tensor was written.
    public func finish() throws(GGUFError) {
        guard next == descriptions.count else {
            throw .invalidTensorInfo(path: path, tensor: descriptions[next].name,
                                     reason: currentBytes == 0 ? "data was never written" : "data is incomplete")
        }
        try flush()
        guard close(fd) == 0 else {
            fd = -1
            throw .writeFailed(path: path, reason: "close: " + Self.errnoText())
        }
        fd = -1
    }

    // MARK: Encoding

    private static func padded(_ n: Int, _ alignment: Int) -> Int {
        (n + alignment - 1) / alignment * alignment
    }

    private func append(_ bytes: [UInt8]) { buffer += bytes }

    private func appendInteger<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { buffer += $0 }
    }

    private func appendString(_ s: String) {
        appendInteger(UInt64(s.utf8.count))
        buffer += s.utf8
    }

    private func appendPadding() {
        let total = written + buffer.count
        buffer += [UInt8](repeating: 0, count: Self.padded(total, alignment) - total)
    }

    private func appendValue(_ value: GGUFValue) {
        switch value {
        case let .uint8(v): appendInteger(v)
        case let .int8(v): appendInteger(v)
        case let .uint16(v): appendInteger(v)
        case let .int16(v): appendInteger(v)
        case let .uint32(v): appendInteger(v)
        case let .int32(v): appendInteger(v)
        case let .uint64(v): appendInteger(v)
        case let .int64(v): appendInteger(v)
        case let .float32(v): appendInteger(v.bitPattern)
        case let .float64(v): appendInteger(v.bitPattern)
        case let .bool(v): appendInteger(UInt8(v ? 1 : 0))
        case let .string(v): appendString(v)
        case let .array(elementType, values):
            appendInteger(elementType.rawValue)
            appendInteger(UInt64(values.count))
            for element in values { appendValue(element) }
        }
    }

    /// Arrays must hold elements of their declared type (recursively).
    private static func check(_ value: GGUFValue, key: String, path: String) throws(GGUFError) {
        guard case let .array(elementType, values) = value else { return }
        for element in values {
            guard element.type == elementType else {
                throw .invalidMetadata(path: path, key: key,
                                       reason: "array of \(elementType) holds a \(element.type) value")
            }
            try check(element, key: key, path: path)
        }
    }

    // MARK: Output

    private func flush() throws(GGUFError) {
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        if let failure = pending.withUnsafeBytes({ writeAll($0) }) {
            throw .writeFailed(path: path, reason: failure)
        }
    }

    private func writeAllOrThrow(_ data: UnsafeRawBufferPointer) throws(GGUFError) {
        if let failure = writeAll(data) { throw .writeFailed(path: path, reason: failure) }
    }

    /// Writes all of `data`; returns why not on failure.
    private func writeAll(_ data: UnsafeRawBufferPointer) -> String? {
        guard var start = data.baseAddress else { return nil }
        var remaining = data.count
        while remaining > 0 {
            let n = write(fd, start, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                return Self.errnoText()
            }
            start += n
            remaining -= n
            written += n
        }
        return nil
    }

    private static func errnoText() -> String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text)
    }
}
