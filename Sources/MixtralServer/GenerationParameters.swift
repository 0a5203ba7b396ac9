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
    /// Chat: the request's tools and how this model writes calls (nil: no tools, or
    /// `tool_choice` "none", which answers in text).
    var tools: ToolRequest?
    var toolFormat: ToolCallFormat?
    var toolsParallel: Bool { tools?.parallel ?? true }

    /// Reads the fields over the model's defaults (generation_config.json, as the CLI does):
    /// an absent `temperature` keeps the model's default decoding, 0 is greedy.
    /// `vocabulary` serves the constraints (`grammar`, `json_schema`, `response_format`, a
    /// forced tool call): it is called only for a request that has one, so the caller can
    /// build the trie then. `toolFormat`: the chat encoder's, for requests with tools.
    init(_ fields: RequestFields, defaults: GenerationOptions, limits: ServerLimits, vocabularySize: Int,
         chat: Bool, vocabulary: () -> TokenVocabulary? = { nil }, toolFormat: ToolCallFormat? = nil) throws(APIError) {
        var options = defaults
        options.logitBias = try Self.logitBias(fields, vocabularySize: vocabularySize)
        var tools: ToolRequest? = nil
        if chat, let request = try ToolRequest(fields), request.choice != .none { tools = request }
        self.tools = tools
        self.toolFormat = tools == nil ? nil : toolFormat
        if let grammar = try Self.grammar(fields, tools: tools, toolFormat: toolFormat) {
            guard let vocabulary = vocabulary() else { throw .invalidRequest("constrained output needs the model's tokenizer") }
            do {
                options.grammar = try GrammarConstraint(grammar: grammar, vocabulary: vocabulary, eosTokenIDs: defaults.eosTokenIDs)
            } catch {
                throw .invalidRequest("the output constraint is too ambiguous: \(messageText(error.description))")
            }
        }
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

    /// The grammar the answer must match, from one of: llama-server's `grammar` (GBNF) and
    /// `json_schema` fields, OpenAI's `response_format` (`json_object`, `json_schema`), or a
    /// forced tool call (`tool_choice` "required" or a named function).
    private static func grammar(_ fields: RequestFields, tools: ToolRequest?,
                                toolFormat: ToolCallFormat?) throws(APIError) -> Grammar? {
        var sources: [String] = []
        var grammar: Grammar?
        if let text = try fields.string("grammar") {
            guard text.utf8.count <= 65_536 else { throw .invalidValue("grammar", "'grammar' is longer than 65536 bytes") }
            sources.append("grammar")
            do {
                grammar = try Grammar(gbnf: text)
            } catch {
                throw .invalidValue("grammar", "'grammar': \(messageText(error.description))")
            }
        }
        if let schema = fields["json_schema"] {
            sources.append("json_schema")
            grammar = try schemaGrammar(schema, param: "json_schema")
        }
        if let format = try fields.object("response_format") {
            switch try format.string("type") {
            case nil, "text":
                break
            case "json_object":
                sources.append("response_format")
                do {
                    grammar = try Grammar(gbnf: JSONSchemaGrammar.jsonObjectGBNF)
                } catch {
                    throw .internalError("the JSON object grammar does not parse: \(error)")
                }
            case "json_schema":
                sources.append("response_format")
                guard let schema = try format.object("json_schema")?["schema"] else {
                    throw .invalidValue("response_format", "'response_format' of type 'json_schema' needs 'json_schema': {\"name\": ..., \"schema\": {...}}")
                }
                grammar = try schemaGrammar(schema, param: "response_format")
            case let other?:
                throw .invalidValue("response_format", "'response_format' type must be 'text', 'json_object' or 'json_schema', got '\(messageText(other))'")
            }
        }
        if let tools, tools.forced {
            guard let toolFormat else { throw .invalidRequest("this model's chat format has no tool calls") }
            sources.append("tool_choice")
            grammar = try tools.grammar(format: toolFormat)
        }
        guard sources.count <= 1 else {
            throw .invalidRequest("'\(sources[0])' and '\(sources[1])' both constrain the answer; give one of them", param: sources[1])
        }
        return grammar
    }

    private static func schemaGrammar(_ schema: JSONValue, param: String) throws(APIError) -> Grammar {
        guard schema.serialized().utf8.count <= 65_536 else { throw .invalidValue(param, "the JSON schema is longer than 65536 bytes") }
        do {
            return try JSONSchemaGrammar.grammar(schema)
        } catch {
            throw .invalidValue(param, "invalid JSON schema: \(messageText(error.description, limit: 300))")
        }
    }

    /// Fields this server cannot honour are errors, not silently dropped: answers shaped by
    /// a schema or a forced tool call would otherwise come back unshaped.
    private static func refuseUnsupported(_ fields: RequestFields, choices: Int) throws(APIError) {
        if let bestOf = try fields.int("best_of"), bestOf != 1, bestOf != choices {
            throw .invalidValue("best_of", "'best_of' other than 1 (or equal to 'n') is not supported")
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
