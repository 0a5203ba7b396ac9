import Foundation
import Hummingbird
import Logging
import Mixtral
import NIOCore
import Synchronization

/// The request context: Hummingbird's, plus the connection, to notice a client that left.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// /v1/completions and /v1/chat/completions: parse, submit one sequence per prompt and
/// choice to the scheduler, then answer with one JSON object or a server-sent event stream.
final class CompletionService: Sendable {
    let modelName: String
    /// Names a request may use for the model: its served name and its folder path.
    let modelAliases: Set<String>
    let created = Int(Date().timeIntervalSince1970)
    let scheduler: BatchScheduler
    let defaults: GenerationOptions
    let prompts: PromptReader
    let limits: ServerLimits
    let metrics: ServerMetrics
    let logger: Logger
    /// The vocabulary's bytes, built by the first request that constrains its answer and
    /// kept: a server that never gets one does not pay for it at start.
    private let builtVocabulary = Mutex<TokenVocabulary?>(nil)
    /// How the model writes tool calls (nil: no chat format).
    let toolFormat: ToolCallFormat?

    init(modelName: String, modelAliases: Set<String>, scheduler: BatchScheduler, defaults: GenerationOptions, prompts: PromptReader,
         limits: ServerLimits, metrics: ServerMetrics, logger: Logger) {
        self.modelName = modelName
        self.modelAliases = modelAliases.union([modelName])
        self.scheduler = scheduler
        self.defaults = defaults
        self.prompts = prompts
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
        toolFormat = prompts.chatEncoder?.toolCallFormat
    }

    var contextLength: Int { scheduler.configuration.contextLength }

    /// The vocabulary trie, built at the first request that constrains its answer.
    private func vocabulary() -> TokenVocabulary? {
        builtVocabulary.withLock { built in
            if let built { return built }
            let vocabulary = TokenVocabulary(tokenizer: prompts.tokenizer, vocabularySize: prompts.vocabularySize)
            built = vocabulary
            return vocabulary
        }
    }

    // MARK: Requests

    func readBody(_ request: Request) async throws(APIError) -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limits.maxBodyBytes {
            throw .bodyTooLarge(limit: limits.maxBodyBytes)
        }
        do {
            let buffer = try await request.body.collect(upTo: limits.maxBodyBytes)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw .bodyTooLarge(limit: limits.maxBodyBytes)
        } catch {
            throw .invalidRequest("The request body could not be read: \(error)")
        }
    }

    /// `model` must name the served model (its name or its folder path).
    func checkModel(_ fields: RequestFields, required: Bool) throws(APIError) {
        guard let name = try fields.string("model") else {
            if required { throw .invalidRequest("'model' is required", param: "model") }
            return
        }
        guard modelAliases.contains(name) else { throw .modelNotFound(name) }
    }

    func completions(_ request: Request, context: ServerContext) async throws -> Response {
        let fields = try RequestFields(body: try await readBody(request))
        try checkModel(fields, required: true)
        let parameters = try GenerationParameters(fields, defaults: defaults, limits: limits,
                                                  vocabularySize: prompts.vocabularySize, chat: false,
                                                  vocabulary: vocabulary)
        let promptList = try prompts.completionPrompts(fields)
        // OpenAI's default for completions is 16 tokens (cut to the context when it is fuller).
        let handles = try submit(promptList, parameters) { prompt in
            parameters.maxTokens ?? min(16, contextLength - prompt.count)
        }
        return try await respond(handles: handles, prompts: promptList, parameters: parameters, chat: false, context: context)
    }

    func chatCompletions(_ request: Request, context: ServerContext) async throws -> Response {
        let fields = try RequestFields(body: try await readBody(request))
        try checkModel(fields, required: true)
        let parameters = try GenerationParameters(fields, defaults: defaults, limits: limits,
                                                  vocabularySize: prompts.vocabularySize, chat: true,
                                                  vocabulary: vocabulary, toolFormat: toolFormat)
        let prompt = try prompts.chatPrompt(fields, tools: parameters.tools)
        // A chat answer may fill the context unless limited.
        let handles = try submit([prompt], parameters) { prompt in
            parameters.maxTokens ?? min(limits.maxTokens, contextLength - prompt.count)
        }
        return try await respond(handles: handles, prompts: [prompt], parameters: parameters, chat: true, context: context)
    }

    /// One sequence per prompt and choice, in that order; all or none are queued.
    private func submit(_ promptList: [[Int]], _ parameters: GenerationParameters,
                        maxTokens: ([Int]) -> Int) throws(APIError) -> [SequenceHandle] {
        var handles: [SequenceHandle] = []
        do throws(APIError) {
            for prompt in promptList {
                guard !prompt.isEmpty else { throw .invalidRequest("The prompt is empty", param: "prompt") }
                guard prompt.count < contextLength else {
                    throw .contextLength("This model's maximum context length is \(contextLength) tokens. However, your prompt has \(prompt.count) tokens, which leaves no room for a completion.")
                }
                for choice in 0..<parameters.choices {
                    var options = parameters.options
                    options.maxNewTokens = maxTokens(prompt)
                    if let seed = options.seed { options.seed = seed &+ UInt64(choice) }
                    let request = SequenceRequest(prompt: prompt, options: options, topLogprobs: parameters.topLogprobs)
                    do {
                        handles.append(try scheduler.submit(request))
                    } catch {
                        throw APIError(error)
                    }
                }
            }
        } catch {
            for handle in handles { handle.cancel() }
            throw error
        }
        for prompt in promptList { metrics.promptTokens.increment(by: prompt.count) }
        return handles
    }

    private func respond(handles: [SequenceHandle], prompts promptList: [[Int]], parameters: GenerationParameters,
                         chat: Bool, context: ServerContext) async throws -> Response {
        let answer = Answer(id: (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""),
                            created: Int(Date().timeIntervalSince1970), model: modelName, chat: chat,
                            prompts: promptList, choicesPerPrompt: parameters.choices, parameters: parameters,
                            tokenText: { [prompts] in prompts.tokenText($0) })
        let client = await ClientConnection(context.channel)
        let deadline = RequestDeadline(limits.maxRequestDuration, handles)
        if parameters.stream {
            return streamingResponse(answer, handles: handles, client: client, deadline: deadline)
        }
        let watcher = cancelOnDisconnect(client, handles)
        defer {
            watcher.cancel()
            deadline.cancel()
        }
        var choices = [ChoiceState](repeating: ChoiceState(), count: handles.count)
        let start = ContinuousClock.now
        var firstToken = true
        for await (index, event) in merged(handles) {
            if firstToken, case .token = event {
                metrics.firstTokenLatency.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
                firstToken = false
            }
            choices[index].apply(event)
        }
        record(choices)
        if deadline.expired, let limit = limits.maxRequestDuration { throw APIError.requestTimeout(limit) }
        if let failure = choices.lazy.compactMap(\.failure).first {
            throw APIError.internalError("Generation failed: \(failure)")
        }
        return jsonResponse(answer.complete(choices))
    }

    private func streamingResponse(_ answer: Answer, handles: [SequenceHandle], client: ClientConnection,
                                   deadline: RequestDeadline) -> Response {
        let limit = limits.maxRequestDuration
        let metrics = self.metrics
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
        let body = ResponseBody { [self] writer in
            let watcher = cancelOnDisconnect(client, handles)
            defer {
                watcher.cancel()
                deadline.cancel()
                for handle in handles { handle.cancel() }
            }
            func send(_ value: JSONValue) async throws {
                try await writer.write(ByteBuffer(string: "data: " + jsonText(value) + "\n\n"))
            }
            let start = ContinuousClock.now
            var choices = [ChoiceState](repeating: ChoiceState(), count: handles.count)
            // Counted however the stream ends (a client that left makes a write throw).
            defer { record(choices) }
            if answer.chat {
                for index in handles.indices { try await send(answer.roleChunk(index: index)) }
            }
            for await (index, event) in merged(handles) {
                if choices[index].tokens.isEmpty, case .token = event {
                    metrics.firstTokenLatency.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
                }
                choices[index].apply(event)
                for chunk in answer.chunks(for: event, index: index, state: &choices[index]) { try await send(chunk) }
            }
            // Past the time limit the stream ends with OpenAI's error object (which its
            // clients raise), not with a usage chunk.
            if deadline.expired, let limit {
                try await send(APIError.requestTimeout(limit).json)
            } else if answer.parameters.includeUsage {
                try await send(answer.usageChunk(choices))
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
            metrics.requestLatency.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    private func record(_ choices: [ChoiceState]) {
        let generated = choices.reduce(0) { $0 + $1.tokens.count }
        metrics.generatedTokens.increment(by: generated)
        let cancelled = choices.filter { $0.finishReason == nil && $0.failure == nil }.count
        if cancelled > 0 {
            metrics.cancelled.increment(by: cancelled)
            logger.info("client left: \(cancelled) sequence(s) cancelled after \(generated) tokens")
        }
    }

    /// Cancels the sequences when the client goes away.
    private func cancelOnDisconnect(_ client: ClientConnection, _ handles: [SequenceHandle]) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                if client.isGone {
                    for handle in handles { handle.cancel() }
                    return
                }
            }
        }
    }
}

/// The time limit of one request: once it passes, the request's sequences are cancelled
/// and `expired` turns true.
final class RequestDeadline: Sendable {
    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }
    private let passed: Flag
    private let timer: Task<Void, Never>?

    init(_ limit: Duration?, _ handles: [SequenceHandle]) {
        let passed = Flag()
        self.passed = passed
        guard let limit else {
            timer = nil
            return
        }
        timer = Task {
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            passed.value.store(true, ordering: .releasing)
            for handle in handles { handle.cancel() }
        }
    }

    var expired: Bool { passed.value.load(ordering: .acquiring) }

    func cancel() { timer?.cancel() }
}

/// The events of several sequences as one stream of (sequence index, event). Ending the
/// consumer (or its task) cancels every sequence.
func merged(_ handles: [SequenceHandle]) -> AsyncStream<(Int, SequenceEvent)> {
    let (stream, continuation) = AsyncStream.makeStream(of: (Int, SequenceEvent).self)
    let forwarding = Task {
        await withTaskGroup(of: Void.self) { group in
            for (index, handle) in handles.enumerated() {
                group.addTask {
                    for await event in handle.events { continuation.yield((index, event)) }
                }
            }
        }
        continuation.finish()
    }
    continuation.onTermination = { _ in
        forwarding.cancel()
        for handle in handles { handle.cancel() }
    }
    return stream
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
