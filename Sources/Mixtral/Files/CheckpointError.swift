/// Everything that can be wrong with a model folder or weight file. Messages name the
/// file and, where there is one, the tensor.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case unreadable(file: String, reason: String)
    case malformedHeader(file: String, reason: String)
    case malformedTensor(file: String, tensor: String, reason: String)
    case missingTensor(file: String, tensor: String)
    case shapeMismatch(file: String, tensor: String, expected: [Int], found: [Int])
    case unsupportedDType(file: String, tensor: String, dtype: String)
    case invalidConfig(file: String, reason: String)
    case unsupportedArchitecture(file: String, modelType: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "file not found: \(path)"
        case .unreadable(let file, let reason):
            return "cannot read \(file): \(reason)"
        case .malformedHeader(let file, let reason):
            return "malformed header in \(file): \(reason)"
        case .malformedTensor(let file, let tensor, let reason):
            return "malformed tensor '\(tensor)' in \(file): \(reason)"
        case .missingTensor(let file, let tensor):
            return "tensor '\(tensor)' is missing from \(file)"
        case .shapeMismatch(let file, let tensor, let expected, let found):
            return "tensor '\(tensor)' in \(file) has shape \(found), but the config implies \(expected)"
        case .unsupportedDType(let file, let tensor, let dtype):
            return "tensor '\(tensor)' in \(file) has unsupported dtype \(dtype)"
        case .invalidConfig(let file, let reason):
            return "invalid config \(file): \(reason)"
        case .unsupportedArchitecture(let file, let modelType):
            return "unsupported architecture '\(modelType)' in \(file) (supported: mixtral, mistral, llama)"
        }
    }
}
