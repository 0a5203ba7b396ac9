import Foundation

/// What `generate` does, as transformers' GenerationConfig. Start from `defaults(for:)`
/// (transformers' built-in defaults overlaid with the model's generation_config.json),
/// then override what the user set.
public struct GenerationOptions: Sendable, Equatable {
    public var maxNewTokens: Int = 20
    /// false: greedy (argmax). true: sample after temperature, top-k, top-p and min-p.
    public var doSample: Bool = false
    public var temperature: Float = 1
    /// transformers' default is 50 when sampling; 0 disables.
    public var topK: Int = 50
    public var topP: Float = 1
    public var minP: Float? = nil
    public var repetitionPenalty: Float = 1
    /// OpenAI's presence and frequency penalties (0 = off; see `PresenceFrequencyPenalty`).
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// nil: a random seed, reported in the result.
    public var seed: UInt64? = nil
    public var eosTokenIDs: [Int] = []
    /// Generation stops once the generated text contains one of these.
    public var stopStrings: [String] = []
    /// Added to the scores of these ids before anything else (OpenAI's `logit_bias`).
    public var logitBias: [Int: Float] = [:]
    /// Only text that the grammar matches (llama.cpp's `--grammar`); EOS once it is whole.
    public var grammar: GrammarConstraint? = nil

    public init() {}

    /// The processors for a prompt of `promptLength` ids, in transformers' order: the logit
    /// bias first (on the raw logits, as vLLM), repetition penalty (also under greedy), then
    /// presence/frequency penalties (applied with the repetition penalty, before
    /// temperature, as vLLM does), then when sampling temperature, top-k, top-p, min-p.
    public func processors(promptLength: Int) -> [any LogitsProcessor] {
        var list: [any LogitsProcessor] = []
        if !logitBias.isEmpty { list.append(LogitBias(logitBias)) }
        // Before any penalty or sampling filter, so that top-k and top-p choose among
        // tokens the grammar allows.
        if let grammar { list.append(grammar.processor(promptLength: promptLength)) }
        if repetitionPenalty != 1 { list.append(RepetitionPenalty(repetitionPenalty)) }
        if presencePenalty != 0 || frequencyPenalty != 0 {
            list.append(PresenceFrequencyPenalty(presence: presencePenalty, frequency: frequencyPenalty, promptLength: promptLength))
        }
        guard doSample else { return list }
        if temperature != 1 { list.append(Temperature(temperature)) }
        if topK != 0 { list.append(TopK(topK)) }
        if topP < 1 { list.append(TopP(topP)) }
        if let minP { list.append(MinP(minP)) }
        return list
    }

    /// A message naming the first invalid value, or nil when all are valid.
    public func validationError() -> String? {
        if maxNewTokens < 0 { return "max_new_tokens must be >= 0, got \(maxNewTokens)" }
        if doSample && !(temperature > 0 && temperature.isFinite) { return "temperature must be > 0 when sampling, got \(temperature)" }
        if topK < 0 { return "top_k must be >= 0, got \(topK)" }
        if !(topP > 0 && topP <= 1) { return "top_p must be in (0, 1], got \(topP)" }
        if let minP, !(minP >= 0 && minP <= 1) { return "min_p must be in [0, 1], got \(minP)" }
        if !(repetitionPenalty > 0 && repetitionPenalty.isFinite) { return "repetition_penalty must be > 0, got \(repetitionPenalty)" }
        if !(presencePenalty >= -2 && presencePenalty <= 2) { return "presence_penalty must be in [-2, 2], got \(presencePenalty)" }
        if !(frequencyPenalty >= -2 && frequencyPenalty <= 2) { return "frequency_penalty must be in [-2, 2], got \(frequencyPenalty)" }
        if let (id, value) = logitBias.first(where: { $0.key < 0 || !($0.value >= -100 && $0.value <= 100) }) {
            return "logit_bias must map token ids >= 0 to values in [-100, 100], got \(id): \(value)"
        }
        return nil
    }
}

extension GenerationOptions {
    /// transformers' defaults overlaid with the model folder's generation_config.json (when
    /// present) and the config's EOS ids.
    public static func defaults(folder: String, config: ModelConfig) throws(CheckpointError) -> GenerationOptions {
        var options = GenerationOptions()
        options.eosTokenIDs = config.eosTokenIDs
        let path = folder + "/generation_config.json"
        // An absent file means transformers' defaults; one that is there must parse.
        guard FileManager.default.fileExists(atPath: path) else { return options }
        let object = try readJSONObject(path)
        let fields = JSONFields(object, file: path)
        let eos = try fields.intOrList("eos_token_id")
        if !eos.isEmpty { options.eosTokenIDs = eos }
        if let flag = try fields.optionalBool("do_sample") { options.doSample = flag }
        if let value = try fields.optionalNumber("temperature") { options.temperature = Float(value) }
        if let value = try fields.optionalInt("top_k") { options.topK = value }
        if let value = try fields.optionalNumber("top_p") { options.topP = Float(value) }
        if let value = try fields.optionalNumber("min_p") { options.minP = Float(value) }
        if let value = try fields.optionalNumber("repetition_penalty") { options.repetitionPenalty = Float(value) }
        if let value = try fields.optionalPositiveInt("max_new_tokens") { options.maxNewTokens = value }
        return options
    }
}
