import Foundation
import MixtralKernels

/// One `.safetensors` file: an 8-byte little-endian header length N, N bytes of JSON
/// describing each tensor (dtype, shape, data_offsets relative to the data buffer), then
/// the data buffer. Validated as the `safetensors` library does: offsets contiguous from 0
/// with no holes or overlaps, sizes matching shapes, and the buffer ending at the file end.
public final class SafeTensorsFile: @unchecked Sendable {
    struct Entry {
        let dtype: String
        let shape: [Int]
        let begin: Int
        let end: Int
    }

    /// Bytes per element of every dtype the format defines.
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
        "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
        "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
    ]
    static let maxHeaderLength = 100_000_000

    public let mapping: MappedFile
    let entries: [String: Entry]
    let dataStart: Int
    public let metadata: [String: String]

    public var path: String { mapping.path }
    public var tensorNames: [String] { entries.keys.sorted() }

    public init(path: String, residency: WeightResidency = .mapped) throws(CheckpointError) {
        mapping = try MappedFile(path: path, residency: residency)
        guard let lengthBytes = mapping.bytes(at: 0, count: 8) else {
            throw .malformedHeader(file: path, reason: "file is \(mapping.size) bytes, too short for the 8-byte header length")
        }
        let headerLength = UInt64(littleEndian: lengthBytes.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(Self.maxHeaderLength) else {
            throw .malformedHeader(file: path, reason: "header length \(headerLength) exceeds the limit of \(Self.maxHeaderLength) bytes")
        }
        guard let headerBytes = mapping.bytes(at: 8, count: Int(headerLength)) else {
            throw .malformedHeader(file: path, reason: "header length \(headerLength) runs past the end of the file (\(mapping.size) bytes)")
        }
        dataStart = 8 + Int(headerLength)
        guard let json = JSONValue.parse(Data(headerBytes)) else {
            throw .malformedHeader(file: path, reason: "header is not valid JSON")
        }
        guard let object = json.dictionary else {
            throw .malformedHeader(file: path, reason: "header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value.dictionary else {
                    throw .malformedHeader(file: path, reason: "__metadata__ is not an object")
                }
                for (key, item) in map {
                    guard let text = item.stringValue else {
                        throw .malformedHeader(file: path, reason: "__metadata__ value for '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try Self.parseEntry(name: name, value: value, file: path)
        }
        try Self.checkLayout(entries, bufferSize: mapping.size - dataStart, file: path)
        let start = dataStart
        mapping.alignCacheLines(fileOffset: dominantLinePhase(entries.values.map { (start + $0.begin, $0.end - $0.begin) }))
        self.entries = entries
        self.metadata = metadata
    }

    private static func parseEntry(name: String, value: JSONValue, file: String) throws(CheckpointError) -> Entry {
        guard let info = value.dictionary else {
            throw .malformedTensor(file: file, tensor: name, reason: "entry is not an object")
        }
        guard let dtype = info["dtype"]?.stringValue, let elementSize = elementSizes[dtype] else {
            throw .malformedTensor(file: file, tensor: name, reason: "unknown dtype \(info["dtype"].map { "\($0)" } ?? "(none)")")
        }
        guard let shape = integers(info["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
            throw .malformedTensor(file: file, tensor: name, reason: "shape is not a list of non-negative integers")
        }
        guard let offsets = integers(info["data_offsets"]), offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw .malformedTensor(file: file, tensor: name, reason: "data_offsets is not a pair [begin, end] with begin <= end")
        }
        var bytes = elementSize
        for dimension in shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw .malformedTensor(file: file, tensor: name, reason: "shape \(shape) is too large") }
            bytes = product
        }
        guard offsets[1] - offsets[0] == bytes else {
            throw .malformedTensor(file: file, tensor: name,
                                   reason: "data_offsets span \(offsets[1] - offsets[0]) bytes, but \(dtype) \(shape) needs \(bytes)")
        }
        return Entry(dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1])
    }

    private static func integers(_ value: JSONValue?) -> [Int]? {
        guard let list = value?.arrayValue else { return nil }
        var result: [Int] = []
        for item in list {
            guard let number = item.exactInt else { return nil }
            result.append(number)
        }
        return result
    }

    private static func checkLayout(_ entries: [String: Entry], bufferSize: Int, file: String) throws(CheckpointError) {
        var cursor = 0
        for (name, entry) in entries.sorted(by: { ($0.value.begin, $0.value.end) < ($1.value.begin, $1.value.end) }) {
            if entry.begin < cursor {
                throw .malformedTensor(file: file, tensor: name, reason: "data_offsets [\(entry.begin), \(entry.end)] overlap the previous tensor")
            }
            if entry.begin > cursor {
                throw .malformedTensor(file: file, tensor: name, reason: "hole in the data buffer before offset \(entry.begin)")
            }
            cursor = entry.end
        }
        if cursor > bufferSize {
            throw .malformedHeader(file: file, reason: "tensor data ends at \(cursor), past the end of the data buffer (\(bufferSize) bytes): file truncated")
        }
        if cursor < bufferSize {
            throw .malformedHeader(file: file, reason: "\(bufferSize - cursor) trailing bytes after the last tensor")
        }
    }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    public func tensor(_ name: String) throws(CheckpointError) -> TensorView {
        guard let entry = entries[name] else { throw .missingTensor(file: path, tensor: name) }
        guard let type = WeightType(rawValue: entry.dtype), type == .f32 || type == .f16 || type == .bf16 else {
            throw .unsupportedDType(file: path, tensor: name, dtype: entry.dtype)
        }
        return TensorView(name: name, file: path, type: type, shape: entry.shape,
                          data: mapping.base + dataStart + entry.begin, owner: mapping)
    }
}

/// A Hugging Face checkpoint: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (`{"weight_map": {tensor: shard file}}`).
public final class SafeTensorsCheckpoint: WeightStore, @unchecked Sendable {
    public let location: String
    let files: [String: SafeTensorsFile]
    let fileOfTensor: [String: String]

    public init(folder: String, residency: WeightResidency = .mapped) throws(CheckpointError) {
        location = folder
        let indexPath = folder + "/model.safetensors.index.json"
        let singlePath = folder + "/model.safetensors"
        if FileManager.default.fileExists(atPath: indexPath) {
            let weightMap = try Self.readWeightMap(indexPath)
            var files: [String: SafeTensorsFile] = [:]
            for shard in Set(weightMap.values).sorted() {
                guard !shard.contains("/") else {
                    throw .invalidConfig(file: indexPath, reason: "shard name '\(shard)' must be a file in the model folder")
                }
                files[shard] = try SafeTensorsFile(path: folder + "/" + shard, residency: residency)
            }
            self.files = files
            fileOfTensor = weightMap
        } else if FileManager.default.fileExists(atPath: singlePath) {
            let file = try SafeTensorsFile(path: singlePath, residency: residency)
            files = ["model.safetensors": file]
            fileOfTensor = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, "model.safetensors") })
        } else {
            throw .fileNotFound("\(singlePath) (or model.safetensors.index.json)")
        }
    }

    private static func readWeightMap(_ path: String) throws(CheckpointError) -> [String: String] {
        guard let map = try readJSONObject(path)["weight_map"]?.dictionary else {
            throw .invalidConfig(file: path, reason: "expected an object with a 'weight_map' object")
        }
        var result: [String: String] = [:]
        for (tensor, file) in map {
            guard let file = file.stringValue else {
                throw .invalidConfig(file: path, reason: "weight_map entry for '\(tensor)' is not a file name")
            }
            result[tensor] = file
        }
        return result
    }

    public var tensorNames: [String] { fileOfTensor.keys.sorted() }
    public func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    public func dropMappedPages() {
        for file in files.values { file.mapping.dropMappedPages() }
    }

    public func fileLocation(of pointer: UnsafeRawPointer) -> WeightFileLocation? {
        for file in files.values {
            if let offset = file.mapping.mappedFileOffset(of: pointer) { return WeightFileLocation(path: file.path, offset: offset) }
        }
        return nil
    }

    public func tensor(_ name: String) throws(CheckpointError) -> TensorView {
        guard let fileName = fileOfTensor[name], let file = files[fileName] else {
            throw .missingTensor(file: location, tensor: name)
        }
        return try file.tensor(name)
    }
}
