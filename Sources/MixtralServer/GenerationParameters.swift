import Mixtral
import MixtralTokenizers

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
    /// `vocabulary` serves the `grammar` field (the caller builds it only for a request
    /// that has one).
    init(_ fields: RequestFields, defaults: GenerationOptions, limits: ServerLimits, vocabularySize: Int,
         chat: Bool, vocabulary: TokenVocabulary? = nil) throws(APIError) {
        var options = defaults
        options.logitBias = try Self.logitBias(fields, vocabularySize: vocabularySize)
        options.grammar = try Self.grammar(fields, vocabulary: vocabulary, eosTokenIDs: defaults.eosTokenIDs)
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
        try Self.refuseUnsupported(fields, choices: choices)
    }

    /// `logit_bias`: {"token id": bias in [-100, 100]}, ids in the vocabulary (OpenAI's rules).
    private static func logitBias(_ fields: RequestFields, vocabularySize: Int) throws(APIError) -> [Int: Float] {
        guard let object = try fields.object("logit_bias") else { return [:] }
        guard object.members.count <= 1024 else {
            throw .invalidValue("logit_bias", "'logit_bias' has \(object.members.count) entries; at most 1024 are allowed")
        }
        var bias: [Int: Float] = [:]
        for (key, value) in object.members {
            guard let id = Int(key), id >= 0, id < vocabularySize else {
                throw .invalidValue("logit_bias", "'logit_bias' key '\(messageText(key))' is not a token id of this model's vocabulary of \(vocabularySize)")
            }
            guard let number = value.doubleValue, number >= -100, number <= 100 else {
                throw .invalidValue("logit_bias", "'logit_bias' values must be numbers between -100 and 100 (token \(id))")
            }
            bias[id] = Float(number)
        }
        return bias
    }

    /// llama-server's `grammar` field: a GBNF grammar the answer must match.
    private static func grammar(_ fields: RequestFields, vocabulary: TokenVocabulary?,
                                eosTokenIDs: [Int]) throws(APIError) -> GrammarConstraint? {
        guard let text = try fields.string("grammar") else { return nil }
        guard text.utf8.count <= 65_536 else { throw .invalidValue("grammar", "'grammar' is longer than 65536 bytes") }
        guard let vocabulary else { throw .invalidValue("grammar", "'grammar' needs the model's tokenizer") }
        do {
            return try GrammarConstraint(grammar: try Grammar(gbnf: text), vocabulary: vocabulary, eosTokenIDs: eosTokenIDs)
        } catch {
            throw .invalidValue("grammar", "'grammar': \(messageText(error.description))")
        }
    }

    /// Fields this server cannot honour are errors, not silently dropped: answers shaped by
    /// a schema or a forced tool call would otherwise come back unshaped.
    private static func refuseUnsupported(_ fields: RequestFields, choices: Int) throws(APIError) {
        if let bestOf = try fields.int("best_of"), bestOf != 1, bestOf != choices {
            throw .invalidValue("best_of", "'best_of' other than 1 (or equal to 'n') is not supported")
        }
        if let format = try fields.object("response_format") {
            let type = try format.string("type")
            guard type == nil || type == "text" else {
                throw .invalidValue("response_format", "'response_format' of type '\(messageText(type ?? ""))' is not supported yet; only 'text' is")
            }
        }
        if let choice = fields["tool_choice"] {
            guard let mode = choice.stringValue, mode == "auto" || mode == "none" else {
                throw .invalidValue("tool_choice", "'tool_choice' other than 'auto' or 'none' is not supported yet")
            }
        }
        if let parallel = fields["parallel_tool_calls"], parallel.boolValue == nil {
            throw .wrongType("parallel_tool_calls", expected: "a boolean")
        }
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
    /// Wall time a completion request may take, queueing included; past it the request's
    /// sequences are cancelled and it gets a 408 (nil: no limit).
    public var maxRequestDuration: Duration? = .seconds(600)

    public init() {}
}

/// Decodes and validates a /v1/completions (`chat` false) or /v1/chat/completions request
/// body as the server does before queuing it: nil when it would be accepted, else the
/// message of the 400 it gets. For fuzzing and tools that check requests offline.
public func requestValidationError(body: [UInt8], chat: Bool, vocabularySize: Int) -> String? {
    do {
        let fields = try RequestFields(body: body)
        _ = try GenerationParameters(fields, defaults: GenerationOptions(), limits: ServerLimits(),
                                     vocabularySize: vocabularySize, chat: chat)
        return nil
    } catch {
        return error.message
    }
}
