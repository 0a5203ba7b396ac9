import MixtralKernels

/// A llama-architecture GGUF file (Llama, Mistral, Mixtral as llama.cpp writes them) seen as
/// a `WeightStore` under Hugging Face tensor names, with its `ModelConfig`. Tensors are read
/// in place, except the q and k projections, whose rows are copied back from llama.cpp's
/// interleaved RoPE order into Hugging Face's (byte for byte, no requantisation).
public final class GGUFWeightStore: WeightStore, @unchecked Sendable {
    public let file: GGUFFile
    public let hyperparameters: GGUFLlamaHyperparameters
    public let tensorNames: [String]
    private let unpermuted: [String: GGUFOwnedMatrix]

    public var location: String { file.path }

    public init(path: String, residency: WeightResidency = .mapped) throws(CheckpointError) {
        do {
            file = try GGUFFile(path: path, residency: residency)
            hyperparameters = try GGUFLlamaHyperparameters(file: file)
            let plan = try llamaExportPlan(hyperparameters, GGUFLlamaExportOptions(weightType: .f32, name: ""), path: path)
            tensorNames = plan.flatMap(\.sources)
            var copies: [String: GGUFOwnedMatrix] = [:]
            for item in plan where item.ropeHeads != nil {
                for name in item.sources {
                    copies[name] = try file.llamaMatrixUndoingRoPEPermutation(hfName: name, hyperparameters)
                }
            }
            unpermuted = copies
        } catch {
            throw Self.checkpointError(error, path: path)
        }
    }

    public func contains(_ name: String) -> Bool {
        (try? file.llamaLocation(hfName: name, hyperparameters)) != nil
    }

    public func tensor(_ name: String) throws(CheckpointError) -> TensorView {
        do {
            let location = try file.llamaLocation(hfName: name, hyperparameters)
            let info = try file.tensorInfo(location.name)
            guard let type = info.type.weightType else {
                throw CheckpointError.unsupportedDType(file: file.path, tensor: "\(name) (\(location.name))", dtype: info.type.name)
            }
            if let copy = unpermuted[name] {
                return TensorView(name: name, file: file.path, type: type, shape: [copy.matrix.rows, copy.matrix.columns],
                                  data: copy.matrix.base, owner: copy)
            }
            if location.expert != nil {
                let m = try file.llamaMatrix(hfName: name, hyperparameters)
                return TensorView(name: name, file: file.path, type: type, shape: [m.rows, m.columns], data: m.base, owner: file)
            }
            let data = try file.data(location.name)
            guard let base = data.baseAddress else {
                throw CheckpointError.malformedTensor(file: file.path, tensor: name, reason: "no data")
            }
            return TensorView(name: name, file: file.path, type: type, shape: info.shape, data: base, owner: file)
        } catch let error as CheckpointError {
            throw error
        } catch let error as GGUFError {
            throw Self.checkpointError(error, path: file.path)
        } catch {
            throw .unreadable(file: file.path, reason: "\(error)")
        }
    }

    public func dropMappedPages() { file.dropMappedPages() }

    public func fileLocation(of pointer: UnsafeRawPointer) -> WeightFileLocation? {
        file.fileLocation(of: pointer)
    }

    /// The model configuration llama.cpp would use, in Hugging Face terms.
    public var config: ModelConfig {
        let h = hyperparameters
        var scaling = ModelConfig.RopeScaling.none
        if h.ropeScalingType == "linear", let factor = h.ropeScalingFactor { scaling = .linear(factor: factor) }
        let eos = file.metadata["tokenizer.ggml.eos_token_id"]?.intValue
        return ModelConfig(
            architecture: h.isMoE ? .mixtral : .llama, vocabSize: h.vocabSize, hiddenSize: h.hiddenSize,
            intermediateSize: h.intermediateSize, numLayers: h.numLayers, numHeads: h.numHeads,
            numKeyValueHeads: h.numKeyValueHeads, headDim: h.headDim, rmsNormEps: h.rmsNormEps,
            ropeTheta: h.ropeTheta, ropeScaling: scaling, maxPositionEmbeddings: h.contextLength,
            slidingWindow: nil, tieWordEmbeddings: h.tieWordEmbeddings, numExperts: h.numExperts,
            numExpertsPerToken: h.numExpertsPerToken,
            bosTokenID: file.metadata["tokenizer.ggml.bos_token_id"]?.intValue, eosTokenIDs: eos.map { [$0] } ?? [])
    }

    static func checkpointError(_ error: GGUFError, path: String) -> CheckpointError {
        switch error {
        case .cannotOpen: return .unreadable(file: path, reason: error.description)
        case .tensorNotFound(_, let tensor): return .missingTensor(file: path, tensor: tensor)
        case .unsupportedTensorType(_, let tensor, let type): return .unsupportedDType(file: path, tensor: tensor, dtype: type)
        default: return .malformedHeader(file: path, reason: error.description)
        }
    }
}
