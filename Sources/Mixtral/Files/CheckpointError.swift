import MixtralTokenizers

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
    /// Expert streaming (`--ram-budget`) cannot run this model so: the reason says why.
    case streamingUnavailable(reason: String)
    /// The model cannot be split over the ranks asked for (tensor parallelism, `TensorParallel`).
    case tensorParallelUnavailable(reason: String)

    /// File-derived text (names, reasons quoting values) is escaped and cut to length: see
    /// `messageText`.
    private func name(_ text: String) -> String { messageText(text) }
    private func text(_ text: String) -> String { messageText(text, limit: 1000) }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "file not found: \(text(path))"
        case .unreadable(let file, let reason):
            return "cannot read \(text(file)): \(text(reason))"
        case .malformedHeader(let file, let reason):
            return "malformed header in \(text(file)): \(text(reason))"
        case .malformedTensor(let file, let tensor, let reason):
            return "malformed tensor '\(name(tensor))' in \(text(file)): \(text(reason))"
        case .missingTensor(let file, let tensor):
            return "tensor '\(name(tensor))' is missing from \(text(file))"
        case .shapeMismatch(let file, let tensor, let expected, let found):
            return "tensor '\(name(tensor))' in \(text(file)) has shape \(found), but the config implies \(expected)"
        case .unsupportedDType(let file, let tensor, let dtype):
            return "tensor '\(name(tensor))' in \(text(file)) has unsupported dtype \(name(dtype))"
        case .invalidConfig(let file, let reason):
            return "invalid config \(text(file)): \(text(reason))"
        case .unsupportedArchitecture(let file, let modelType):
            return "unsupported architecture '\(name(modelType))' in \(text(file)) (supported: mixtral, mistral, llama)"
        case .streamingUnavailable(let reason):
            return "cannot stream the experts: \(text(reason))"
        case .tensorParallelUnavailable(let reason):
            return "cannot split the model over the ranks: \(text(reason))"
        }
    }
}
