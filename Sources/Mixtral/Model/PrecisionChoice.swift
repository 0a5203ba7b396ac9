import MixtralKernels

/// The arithmetic asked for when a model is loaded; the model resolves it once
/// (`LanguageModel.precision`) and keeps it.
public enum PrecisionChoice: String, Sendable, CaseIterable {
    /// `.fast` for GGML-quantised matrices (a quantised GGUF file or quantisation at load),
    /// where it computes what llama.cpp computes; `.exact` for float weights.
    case auto
    /// fp32 activations: transformers' logits in fp32.
    case exact
    /// llama.cpp's arithmetic (see `ActivationPrecision.fast`).
    case fast

    public func resolved(quantizedMatrices: Bool) -> ActivationPrecision {
        switch self {
        case .auto: return quantizedMatrices ? .fast : .exact
        case .exact: return .exact
        case .fast: return .fast
        }
    }
}
