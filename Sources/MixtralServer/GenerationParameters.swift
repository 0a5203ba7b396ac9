import Mixtral

/// The generation fields shared by /v1/completions and /v1/chat/completions, validated.
struct GenerationParameters: Sendable {
    var options: GenerationOptions
    /// max_tokens / max_completion_tokens when given (the default depends on the endpoint).
    var maxTokens: Int?
    var choices: Int
    var stream: Bool
    var includeUsage: Bool
    /// nil: no logprobs; k: the chosen token's and the k most likely.
    var topLogprobs: Int?
    /// Extra field: return the generated (and prompt) token ids with each choice.
    var returnTokenIDs: Bool

    /// Reads the fields over the model's defaults (generation_config.json, as the CLI does):
    /// an absent `temperature` keeps the model's default decoding, 0 is greedy.
    init(_ fields: RequestFields, defaults: GenerationOptions, limits: ServerLimits, chat: Bool) throws(APIError) {
        var options = defaults
        options.stopStrings = try fields.stopStrings("stop", limit: limits.maxStopStrings)
        if let temperature = try fields.number("temperature", in: 0...2) {
            if temperature == 0 {
                options.doSample = false
            } else {
                options.doSample = true
                options.temperature = Float(temperature)
            }
        }
        if let topP = try fields.number("top_p", in: 0...1) {
            guard topP > 0 else { throw .invalidValue("top_p", "'top_p' must be greater than 0") }
            options.topP = Float(topP)
        }
        if let topK = try fields.int("top_k") {
            guard topK >= -1 else { throw .invalidValue("top_k", "'top_k' must be -1 (disabled), 0 (disabled) or positive") }
            options.topK = max(topK, 0)
        }
        if let minP = try fields.number("min_p", in: 0...1) { options.minP = Float(minP) }
        if let penalty = try fields.number("repetition_penalty") {
            guard penalty > 0 else { throw .invalidValue("repetition_penalty", "'repetition_penalty' must be greater than 0") }
            options.repetitionPenalty = Float(penalty)
        }
        if let presence = try fields.number("presence_penalty", in: -2...2) { options.presencePenalty = Float(presence) }
        if let frequency = try fields.number("frequency_penalty", in: -2...2) { options.frequencyPenalty = Float(frequency) }
        if let seed = try fields.int("seed") { options.seed = UInt64(bitPattern: Int64(seed)) }
        if try fields.bool("ignore_eos") == true { options.eosTokenIDs = [] }
        if let problem = options.validationError() { throw .invalidRequest(problem) }
        self.options = options

        var maxTokens = try fields.int("max_completion_tokens")
        if maxTokens == nil { maxTokens = try fields.int("max_tokens") }
        if let maxTokens {
            let name = fields["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
            guard maxTokens >= 1 else { throw .invalidValue(name, "'\(name)' must be at least 1, got \(maxTokens)") }
            guard maxTokens <= limits.maxTokens else {
                throw .invalidValue(name, "'\(name)' is at most \(limits.maxTokens) on this server, got \(maxTokens)")
            }
        }
        self.maxTokens = maxTokens
        choices = try fields.int("n", in: 1...limits.maxChoices) ?? 1
        stream = try fields.bool("stream") ?? false
        includeUsage = try fields.object("stream_options")?.bool("include_usage") ?? false
        if chat {
            let wanted = try fields.bool("logprobs") ?? false
            let top = try fields.int("top_logprobs", in: 0...20)
            if top != nil && !wanted {
                throw .invalidValue("top_logprobs", "'top_logprobs' needs 'logprobs': true")
            }
            topLogprobs = wanted ? (top ?? 0) : nil
        } else {
            topLogprobs = try fields.int("logprobs", in: 0...20)
        }
        returnTokenIDs = try fields.bool("return_token_ids") ?? false
        if try fields.bool("echo") == true { throw .invalidValue("echo", "'echo' is not supported") }
        if try fields.string("suffix") != nil { throw .invalidValue("suffix", "'suffix' is not supported") }
    }
}

/// Bounds a request must stay within.
public struct ServerLimits: Sendable {
    /// Largest request body in bytes.
    public var maxBodyBytes = 4 << 20
    /// Largest max_tokens a request may ask for.
    public var maxTokens = 4096
    /// Largest n.
    public var maxChoices = 8
    /// Most prompts in one /v1/completions request.
    public var maxPrompts = 16
    public var maxStopStrings = 8

    public init() {}
}
