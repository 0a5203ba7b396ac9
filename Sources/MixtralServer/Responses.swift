import Mixtral

/// What one choice has received so far.
struct ChoiceState: Sendable {
    var text = ""
    var tokens: [GeneratedToken] = []
    /// Offset (in characters) of each token's text in `text`, for completions' logprobs.
    var textOffsets: [Int] = []
    /// OpenAI's finish_reason once the sequence finished ("stop" or "length").
    var finishReason: String?
    var failure: String?
    /// Streams with tools: characters of `text` sent as content so far, and whether a tool
    /// call has begun (its text is held back, to be sent as `tool_calls` at the end).
    var sentCharacters = 0
    var inToolCall = false

    mutating func apply(_ event: SequenceEvent) {
        switch event {
        case .token(let token):
            textOffsets.append(text.count)
            text += token.text
            tokens.append(token)
        case .finished(let reason):
            // OpenAI: "length" for the token limit and for a full context alike.
            finishReason = reason == .maxNewTokens || reason == .contextFull ? "length" : "stop"
        case .failed(let message):
            failure = message
        }
    }
}

/// Builds the JSON of one completion's answer, whole or as stream chunks, in OpenAI's shapes.
struct Answer: Sendable {
    let id: String
    let created: Int
    let model: String
    let chat: Bool
    let prompts: [[Int]]
    let choicesPerPrompt: Int
    let parameters: GenerationParameters
    let tokenText: @Sendable (Int) -> String

    private var object: String { chat ? "chat.completion" : "text_completion" }
    private var chunkObject: String { chat ? "chat.completion.chunk" : "text_completion" }

    private func header(_ object: String) -> [(key: String, value: JSONValue)] {
        [("id", .string(id)), ("object", .string(object)), ("created", .integer(created)), ("model", .string(model))]
    }

    /// The non-streamed response.
    func complete(_ choices: [ChoiceState]) -> JSONValue {
        let list: [JSONValue] = choices.enumerated().map { index, state in
            var members: [(key: String, value: JSONValue)] = [("index", .integer(index))]
            var finishReason = state.finishReason
            if chat, let (content, calls) = toolCalls(state) {
                members.append(("message", .object([("role", .string("assistant")), ("content", content.map(JSONValue.string) ?? .null),
                                                    ("tool_calls", toolCallsJSON(calls, streamed: false))])))
                finishReason = "tool_calls"
            } else if chat {
                members.append(("message", .object([("role", .string("assistant")), ("content", .string(state.text))])))
            } else {
                members.append(("text", .string(state.text)))
            }
            members.append(("logprobs", logprobs(state.tokens, offsets: state.textOffsets)))
            members.append(("finish_reason", finishReason.map(JSONValue.string) ?? .null))
            if parameters.returnTokenIDs {
                members.append(("token_ids", .array(state.tokens.map { .integer($0.id) })))
                members.append(("prompt_token_ids", .array(prompts[index / choicesPerPrompt].map(JSONValue.integer))))
            }
            return .object(members)
        }
        return .object(header(object) + [("choices", .array(list)), ("usage", usage(choices))])
    }

    /// Chat streams open each choice with the assistant role.
    func roleChunk(index: Int) -> JSONValue {
        chunk(index: index, delta: .object([("role", .string("assistant")), ("content", .string(""))]), logprobs: .null,
              finishReason: nil, extra: [])
    }

    /// The chunks for one event of choice `index` (none when there is nothing to send);
    /// `state` has the event applied already.
    func chunks(for event: SequenceEvent, index: Int, state: inout ChoiceState) -> [JSONValue] {
        if chat, parameters.tools != nil, case .failed = event {} else if chat, parameters.tools != nil {
            return toolChunks(for: event, index: index, state: &state)
        }
        return chunk(for: event, index: index, state: state).map { [$0] } ?? []
    }

    /// The chunk for one event of choice `index`, or nil when there is nothing to send.
    private func chunk(for event: SequenceEvent, index: Int, state: ChoiceState) -> JSONValue? {
        switch event {
        case .token(let token):
            let wantsEveryToken = parameters.topLogprobs != nil || parameters.returnTokenIDs
            guard !token.text.isEmpty || wantsEveryToken else { return nil }
            let offset = state.textOffsets.last ?? 0
            let extra: [(key: String, value: JSONValue)] = parameters.returnTokenIDs ? [("token_ids", .array([.integer(token.id)]))] : []
            return chunk(index: index, delta: chat ? .object([("content", .string(token.text))]) : .string(token.text),
                         logprobs: logprobs([token], offsets: [offset]), finishReason: nil, extra: extra)
        case .finished:
            return chunk(index: index, delta: chat ? .object([]) : .string(""), logprobs: .null,
                         finishReason: state.finishReason, extra: [])
        case .failed(let message):
            return APIError.internalError("Generation failed: \(message)").json
        }
    }

    // MARK: Tool calls

    /// The calls in a finished choice's answer (with ids), or nil when it has none.
    func toolCalls(_ state: ChoiceState) -> (content: String?, calls: [ToolCall])? {
        guard let tools = parameters.tools, let format = parameters.toolFormat else { return nil }
        var parsed: (content: String?, calls: [ToolCall])?
        if tools.forced, case .mistral = format {
            // The prompt ended with [TOOL_CALLS]: the whole answer is the list.
            parsed = ToolCallParser.mistralCalls(state.text).map { (nil, $0) }
        } else {
            parsed = ToolCallParser.parse(state.text, format: format, generatedIDs: state.tokens.map(\.id)) { count in
                String(state.text.prefix(count < state.textOffsets.count ? state.textOffsets[count] : state.text.count))
            }
        }
        guard let parsed else { return nil }
        var calls = parameters.toolsParallel ? parsed.calls : Array(parsed.calls.prefix(1))
        for index in calls.indices where calls[index].id == nil { calls[index].id = newToolCallID() }
        return (parsed.content, calls)
    }

    /// OpenAI's `tool_calls`: arguments as a JSON string; stream deltas also carry `index`.
    private func toolCallsJSON(_ calls: [ToolCall], streamed: Bool) -> JSONValue {
        .array(calls.enumerated().map { index, call in
            var members: [(key: String, value: JSONValue)] = streamed ? [("index", .integer(index))] : []
            members += [("id", .string(call.id ?? newToolCallID())), ("type", .string("function")),
                        ("function", .object([("name", .string(call.name)), ("arguments", .string(call.arguments.serialized()))]))]
            return .object(members)
        })
    }

    /// Streams with tools: text is sent as content until a call begins (Mistral's
    /// [TOOL_CALLS] token, or "<tool_call>"; text that may be the start of that tag waits);
    /// the calls go out whole, as one `tool_calls` delta, when the answer is finished.
    private func toolChunks(for event: SequenceEvent, index: Int, state: inout ChoiceState) -> [JSONValue] {
        let tag = "<tool_call>"
        func content(_ text: Substring) -> JSONValue {
            chunk(index: index, delta: .object([("content", .string(String(text)))]), logprobs: .null, finishReason: nil, extra: [])
        }
        var out: [JSONValue] = []
        switch event {
        case .token(let token):
            if parameters.tools?.forced == true { state.inToolCall = true }
            if case .mistral(let toolCallsID) = parameters.toolFormat, token.id == toolCallsID { state.inToolCall = true }
            guard !state.inToolCall else { return [] }
            let unsent = state.text.dropFirst(state.sentCharacters)
            var release = unsent.endIndex
            if case .hermes = parameters.toolFormat {
                if let start = unsent.range(of: tag) {
                    release = start.lowerBound
                    state.inToolCall = true
                } else if let lt = unsent.lastIndex(of: "<"), tag.hasPrefix(unsent[lt...]) {
                    release = lt  // may be the tag's start: wait for the next token
                }
            }
            let text = unsent[..<release]
            if !text.isEmpty {
                out.append(content(text))
                state.sentCharacters += text.count
            }
        case .finished:
            if let (_, calls) = toolCalls(state) {
                out.append(chunk(index: index, delta: .object([("tool_calls", toolCallsJSON(calls, streamed: true))]),
                                 logprobs: .null, finishReason: nil, extra: []))
                out.append(chunk(index: index, delta: .object([]), logprobs: .null, finishReason: "tool_calls", extra: []))
            } else {
                // No call after all (or one that does not parse): the rest is text.
                let unsent = state.text.dropFirst(state.sentCharacters)
                if !unsent.isEmpty { out.append(content(unsent)) }
                state.sentCharacters = state.text.count
                out.append(chunk(index: index, delta: .object([]), logprobs: .null, finishReason: state.finishReason, extra: []))
            }
        case .failed:
            break
        }
        return out
    }

    func usageChunk(_ choices: [ChoiceState]) -> JSONValue {
        .object(header(chunkObject) + [("choices", .array([])), ("usage", usage(choices))])
    }

    private func chunk(index: Int, delta: JSONValue, logprobs: JSONValue, finishReason: String?,
                       extra: [(key: String, value: JSONValue)]) -> JSONValue {
        var choice: [(key: String, value: JSONValue)] = [("index", .integer(index)), (chat ? "delta" : "text", delta),
                                                         ("logprobs", logprobs),
                                                         ("finish_reason", finishReason.map(JSONValue.string) ?? .null)]
        choice += extra
        return .object(header(chunkObject) + [("choices", .array([.object(choice)]))])
    }

    private func usage(_ choices: [ChoiceState]) -> JSONValue {
        let promptTokens = prompts.reduce(0) { $0 + $1.count }
        let completionTokens = choices.reduce(0) { $0 + $1.tokens.count }
        return .object([("prompt_tokens", .integer(promptTokens)), ("completion_tokens", .integer(completionTokens)),
                        ("total_tokens", .integer(promptTokens + completionTokens))])
    }

    /// Completions: {tokens, token_logprobs, top_logprobs, text_offset}; chat: {content: [...]}.
    private func logprobs(_ tokens: [GeneratedToken], offsets: [Int]) -> JSONValue {
        guard parameters.topLogprobs != nil else { return .null }
        let scored = tokens.compactMap { token in token.logprobs.map { (token.id, $0) } }
        if chat {
            return .object([("content", .array(scored.map { id, logprobs in
                .object(entry(id, logprobs.logprob) + [("top_logprobs", .array(logprobs.top.map { .object(entry($0.id, $0.logprob)) }))])
            }))])
        }
        return .object([
            ("tokens", .array(scored.map { .string(tokenText($0.0)) })),
            ("token_logprobs", .array(scored.map { number($0.1.logprob) })),
            ("top_logprobs", .array(scored.map { _, logprobs in
                .object(logprobs.top.map { (key: tokenText($0.id), value: number($0.logprob)) })
            })),
            ("text_offset", .array(offsets.prefix(scored.count).map(JSONValue.integer))),
        ])
    }

    private func entry(_ id: Int, _ logprob: Float) -> [(key: String, value: JSONValue)] {
        let text = tokenText(id)
        return [("token", .string(text)), ("logprob", number(logprob)), ("bytes", .array(Array(text.utf8).map { .integer(Int($0)) }))]
    }

    /// JSON has no infinities: a log-probability of -inf is sent as -9999 (as vLLM does).
    private func number(_ value: Float) -> JSONValue { .number(value.isFinite ? Double(value) : -9999) }
}
