import MixtralKernels
import MixtralTokenizers

/// Why a GGUF file could not be read, or a tensor or metadata value not used.
/// Every case names the file, and the key or tensor where there is one.
public enum GGUFError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file could not be opened or mapped.
    case cannotOpen(path: String, reason: String)
    /// Writing the file failed.
    case writeFailed(path: String, reason: String)
    /// The file does not start with the bytes "GGUF".
    case badMagic(path: String)
    /// The GGUF version is not 2 or 3 (or the file is big-endian).
    case unsupportedVersion(path: String, version: UInt32)
    /// The file ends before `what` is complete.
    case truncated(path: String, what: String)
    /// A metadata key/value that breaks the format (bad type id, impossible count, ...).
    case invalidMetadata(path: String, key: String, reason: String)
    /// The same metadata key appears twice.
    case duplicateKey(path: String, key: String)
    /// A tensor description that breaks the format (too many dimensions, overflow, ...).
    case invalidTensorInfo(path: String, tensor: String, reason: String)
    /// The same tensor name appears twice.
    case duplicateTensor(path: String, tensor: String)
    /// A ggml type id that no version of ggml defines.
    case unknownTensorType(path: String, tensor: String, typeID: UInt32)
    /// A ggml type that exists but that this engine cannot compute with.
    case unsupportedTensorType(path: String, tensor: String, type: String)
    /// A tensor offset that is not a multiple of the file's alignment.
    case misalignedTensor(path: String, tensor: String, offset: UInt64, alignment: Int)
    /// A tensor whose data would extend past the end of the file.
    case tensorDataOutOfBounds(path: String, tensor: String, offset: UInt64, byteCount: Int, available: Int)
    /// No tensor of this name.
    case tensorNotFound(path: String, tensor: String)
    /// A tensor whose shape does not fit the request.
    case unexpectedShape(path: String, tensor: String, dimensions: [Int], expected: String)
    /// No metadata value under this key.
    case missingKey(path: String, key: String)
    /// A metadata value of another type than requested.
    case typeMismatch(path: String, key: String, expected: String, found: String)

    /// File-derived text (names, reasons quoting values) is escaped and cut to length: see
    /// `messageText`.
    private func name(_ text: String) -> String { messageText(text) }
    private func text(_ text: String) -> String { messageText(text, limit: 1000) }

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason):
            return "\(text(path)): cannot open GGUF file: \(text(reason))"
        case let .writeFailed(path, reason):
            return "\(text(path)): cannot write GGUF file: \(text(reason))"
        case let .badMagic(path):
            return "\(text(path)): not a GGUF file (it does not start with \"GGUF\")"
        case let .unsupportedVersion(path, version):
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                return "\(text(path)): big-endian GGUF files are not supported"
            }
            return "\(text(path)): unsupported GGUF version \(version) (supported: 2, 3)"
        case let .truncated(path, what):
            return "\(text(path)): file is truncated: it ends inside \(name(what))"
        case let .invalidMetadata(path, key, reason):
            return "\(text(path)): metadata '\(name(key))': \(text(reason))"
        case let .duplicateKey(path, key):
            return "\(text(path)): metadata key '\(name(key))' appears more than once"
        case let .invalidTensorInfo(path, tensor, reason):
            return "\(text(path)): tensor '\(name(tensor))': \(text(reason))"
        case let .duplicateTensor(path, tensor):
            return "\(text(path)): tensor '\(name(tensor))' appears more than once"
        case let .unknownTensorType(path, tensor, typeID):
            return "\(text(path)): tensor '\(name(tensor))' has unknown ggml type id \(typeID)"
        case let .unsupportedTensorType(path, tensor, type):
            return "\(text(path)): tensor '\(name(tensor))' has type \(name(type)), which is not supported "
                + "(supported: \(WeightTypeList.supported))"
        case let .misalignedTensor(path, tensor, offset, alignment):
            return "\(text(path)): tensor '\(name(tensor))' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case let .tensorDataOutOfBounds(path, tensor, offset, byteCount, available):
            return "\(text(path)): tensor '\(name(tensor))' data (\(byteCount) bytes at offset \(offset)) "
                + "extends past the end of the file (data section holds \(available) bytes)"
        case let .tensorNotFound(path, tensor):
            return "\(text(path)): no tensor named '\(name(tensor))'"
        case let .unexpectedShape(path, tensor, dimensions, expected):
            return "\(text(path)): tensor '\(name(tensor))' has dimensions \(dimensions) (innermost first); expected \(expected)"
        case let .missingKey(path, key):
            return "\(text(path)): no metadata key '\(name(key))'"
        case let .typeMismatch(path, key, expected, found):
            return "\(text(path)): metadata '\(name(key))' is \(name(found)), expected \(expected)"
        }
    }
}

private enum WeightTypeList {
    static let supported = WeightType.allCases.map(\.rawValue).joined(separator: ", ")
}
