import Foundation

/// The architecture hyper-parameters of a Hugging Face `config.json` (model_type mixtral,
/// mistral or llama), with transformers' defaults for absent or null fields.
public struct ModelConfig: Sendable, Equatable {
    public enum Architecture: String, Sendable { case mixtral, mistral, llama }

    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var ropeScaling: RopeScaling
    public var maxPositionEmbeddings: Int
    /// Keys a query at position i sees: i - slidingWindow + 1 ... i (nil: all previous keys).
    public var slidingWindow: Int?
    public var tieWordEmbeddings: Bool
    /// 1 for dense models (MLP), num_local_experts for Mixtral.
    public var numExperts: Int
    public var numExpertsPerToken: Int
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    /// RoPE frequency scaling (`rope_scaling` / `rope_parameters.rope_type`).
    public enum RopeScaling: Sendable, Equatable {
        case none
        case linear(factor: Float)
        case llama3(factor: Float, lowFrequencyFactor: Float, highFrequencyFactor: Float, originalMaxPositions: Int)
    }

    public var isMoE: Bool { architecture == .mixtral }
}

extension ModelConfig {
    /// Reads `config.json`. Every error names the file and the offending field.
    public static func load(path: String) throws(CheckpointError) -> ModelConfig {
        try ModelConfig(json: readJSONObject(path), file: path)
    }

    init(json: [String: JSONValue], file: String) throws(CheckpointError) {
        let fields = JSONFields(json, file: file)
        let modelType = try fields.string("model_type") ?? ""
        guard let architecture = Architecture(rawValue: modelType) else {
            throw .unsupportedArchitecture(file: file, modelType: modelType.isEmpty ? "(no model_type)" : modelType)
        }
        self.architecture = architecture
        vocabSize = try fields.positiveInt("vocab_size")
        hiddenSize = try fields.positiveInt("hidden_size")
        intermediateSize = try fields.positiveInt("intermediate_size")
        numLayers = try fields.positiveInt("num_hidden_layers")
        numHeads = try fields.positiveInt("num_attention_heads")
        // transformers: null means as many kv heads as query heads; an absent field takes
        // the config class default (8 for Mistral and Mixtral, = heads for Llama).
        if fields.object["num_key_value_heads"] == nil, architecture != .llama {
            numKeyValueHeads = 8
        } else {
            numKeyValueHeads = try fields.optionalPositiveInt("num_key_value_heads") ?? numHeads
        }
        guard numHeads % numKeyValueHeads == 0 else {
            throw .invalidConfig(file: file, reason: "num_attention_heads \(numHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        }
        if let headDim = try fields.optionalPositiveInt("head_dim") {
            self.headDim = headDim
        } else {
            guard hiddenSize % numHeads == 0 else {
                throw .invalidConfig(file: file, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numHeads) and head_dim is not set")
            }
            headDim = hiddenSize / numHeads
        }
        guard headDim % 2 == 0 else { throw .invalidConfig(file: file, reason: "head_dim \(headDim) must be even for RoPE") }
        // Absent fields take the defaults of transformers' MixtralConfig / MistralConfig / LlamaConfig.
        rmsNormEps = Float(try fields.optionalNumber("rms_norm_eps") ?? (architecture == .mixtral ? 1e-5 : 1e-6))
        guard rmsNormEps.isFinite, rmsNormEps > 0 else {
            throw .invalidConfig(file: file, reason: "rms_norm_eps \(rmsNormEps) is not a positive finite number")
        }
        // The MLP computes SiLU (transformers' "silu", also called "swish"); another
        // activation would silently compute something else.
        let activation = try fields.string("hidden_act") ?? "silu"
        guard activation == "silu" || activation == "swish" else {
            throw .invalidConfig(file: file, reason: "hidden_act '\(activation)' is not supported (only silu)")
        }
        maxPositionEmbeddings = try fields.optionalPositiveInt("max_position_embeddings") ?? (architecture == .llama ? 2048 : 4096 * 32)
        switch architecture {
        case .llama: slidingWindow = nil  // Llama has no sliding window
        case .mistral where fields.object["sliding_window"] == nil: slidingWindow = 4096
        default: slidingWindow = try fields.optionalPositiveInt("sliding_window")
        }
        tieWordEmbeddings = try fields.optionalBool("tie_word_embeddings") ?? false
        if architecture == .mixtral {
            numExperts = try fields.optionalPositiveInt("num_local_experts") ?? 8
            numExpertsPerToken = try fields.optionalPositiveInt("num_experts_per_tok") ?? 2
            guard numExpertsPerToken <= numExperts else {
                throw .invalidConfig(file: file, reason: "num_experts_per_tok \(numExpertsPerToken) exceeds num_local_experts \(numExperts)")
            }
        } else {
            numExperts = 1
            numExpertsPerToken = 1
        }
        if architecture == .llama {
            for flag in ["attention_bias", "mlp_bias"] where try fields.optionalBool(flag) == true {
                throw .invalidConfig(file: file, reason: "\(flag) = true is not supported")
            }
        }
        bosTokenID = try fields.optionalInt("bos_token_id")
        eosTokenIDs = try fields.intOrList("eos_token_id")

        // RoPE: transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; older
        // files have rope_theta at the top level and optionally rope_scaling.
        var ropeParameters = try fields.optionalObject("rope_parameters")
        if ropeParameters == nil { ropeParameters = try fields.optionalObject("rope_scaling") }
        // transformers' defaults: MixtralConfig 1e6, Mistral and Llama 1e4.
        var theta = try fields.optionalNumber("rope_theta") ?? (architecture == .mixtral ? 1_000_000 : 10_000)
        if let ropeParameters, let nested = try JSONFields(ropeParameters, file: file).optionalNumber("rope_theta") {
            theta = nested
        }
        ropeTheta = Float(theta)
        guard ropeTheta.isFinite, ropeTheta > 0 else {
            throw .invalidConfig(file: file, reason: "rope_theta \(theta) is not a positive finite number")
        }
        ropeScaling = try Self.ropeScaling(ropeParameters, file: file)
    }

    private static func ropeScaling(_ parameters: [String: JSONValue]?, file: String) throws(CheckpointError) -> RopeScaling {
        guard let parameters else { return .none }
        let fields = JSONFields(parameters, file: file)
        var type = try fields.string("rope_type")
        if type == nil { type = try fields.string("type") }
        switch type ?? "default" {
        case "default":
            return .none
        case "linear":
            return .linear(factor: Float(try fields.number("factor")))
        case "llama3":
            return .llama3(factor: Float(try fields.number("factor")),
                           lowFrequencyFactor: Float(try fields.number("low_freq_factor")),
                           highFrequencyFactor: Float(try fields.number("high_freq_factor")),
                           originalMaxPositions: try fields.positiveInt("original_max_position_embeddings"))
        default:
            throw .invalidConfig(file: file, reason: "rope type '\(type ?? "")' is not supported (supported: default, linear, llama3)")
        }
    }
}

/// Typed access to a JSON object's fields, with errors naming the file and the field.
struct JSONFields {
    let object: [String: JSONValue]
    let file: String

    init(_ object: [String: JSONValue], file: String) {
        self.object = object
        self.file = file
    }

    /// The value, or nil when absent or JSON null.
    func value(_ key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    func string(_ key: String) throws(CheckpointError) -> String? {
        guard let value = value(key) else { return nil }
        guard let text = value.stringValue else { throw .invalidConfig(file: file, reason: "\(key) must be a string") }
        return text
    }

    func optionalInt(_ key: String) throws(CheckpointError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let number = value.exactInt else {
            throw .invalidConfig(file: file, reason: "\(key) must be an integer, found \(value)")
        }
        return number
    }

    func optionalPositiveInt(_ key: String) throws(CheckpointError) -> Int? {
        guard let number = try optionalInt(key) else { return nil }
        guard number > 0 else { throw .invalidConfig(file: file, reason: "\(key) must be positive, found \(number)") }
        return number
    }

    func positiveInt(_ key: String) throws(CheckpointError) -> Int {
        guard let number = try optionalPositiveInt(key) else { throw .invalidConfig(file: file, reason: "\(key) is missing") }
        return number
    }

    func optionalNumber(_ key: String) throws(CheckpointError) -> Double? {
        guard let value = value(key) else { return nil }
        guard let number = value.doubleValue, number.isFinite else {
            throw .invalidConfig(file: file, reason: "\(key) must be a number, found \(value)")
        }
        return number
    }

    func number(_ key: String) throws(CheckpointError) -> Double {
        guard let number = try optionalNumber(key) else { throw .invalidConfig(file: file, reason: "\(key) is missing") }
        return number
    }

    func optionalBool(_ key: String) throws(CheckpointError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let flag = value.boolValue else { throw .invalidConfig(file: file, reason: "\(key) must be true or false") }
        return flag
    }

    func optionalObject(_ key: String) throws(CheckpointError) -> [String: JSONValue]? {
        guard let value = value(key) else { return nil }
        guard let object = value.dictionary else { throw .invalidConfig(file: file, reason: "\(key) must be an object") }
        return object
    }

    /// An int or a list of ints (`eos_token_id`), as a list.
    func intOrList(_ key: String) throws(CheckpointError) -> [Int] {
        guard let value = value(key) else { return [] }
        if let list = value.arrayValue {
            var result: [Int] = []
            for item in list {
                guard let number = item.exactInt else { throw .invalidConfig(file: file, reason: "\(key) must be an integer or a list of integers") }
                result.append(number)
            }
            return result
        }
        return try optionalInt(key).map { [$0] } ?? []
    }
}

/// Reads a JSON file that must hold an object.
func readJSONObject(_ path: String) throws(CheckpointError) -> [String: JSONValue] {
    let contents: Data?
    do { contents = try readRegularFile(path) } catch { throw .unreadable(file: path, reason: error.description) }
    guard let data = contents else { throw .fileNotFound(path) }
    guard let object = JSONValue.parse(data)?.dictionary else { throw .invalidConfig(file: path, reason: "not a JSON object") }
    return object
}
