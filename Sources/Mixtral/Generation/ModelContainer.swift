import Foundation

/// One step of a streamed generation.
public enum Generation: Sendable {
    /// The next token: its id, the text it released, and log-probabilities when asked for.
    case token(GeneratedToken)
    /// The last event of a stream.
    case finished(StopReason)
}

public enum GenerationError: Error, Equatable, CustomStringConvertible {
    /// A text prompt or chat needs a tokenizer, and the model has none.
    case noTokenizer(String)
    /// The model failed while running the sequence.
    case failed(String)

    public var description: String {
        switch self {
        case .noTokenizer(let path): return "the model at \(path) has no tokenizer: give the prompt as token ids"
        case .failed(let message): return "generation failed: \(message)"
        }
    }
}

/// A loaded model for Swift concurrency, safe to share between tasks:
///
///     let model = try await ModelContainer.load("SmolLM2-135M-Instruct.Q4_1.gguf")
///     for try await step in model.generate(prompt: "Hello my name is") {
///         if case .token(let token) = step { print(token.text, terminator: "") }
///     }
///
/// Streams run on the batch scheduler, so concurrent ones share forward passes; each
/// sequence takes the steps of `LanguageModel.generate` (`SequenceState`), and greedy
/// tokens equal its. Cancelling the consuming task (or dropping the stream) stops the
/// sequence and frees its cache.
public final class ModelContainer: Sendable {
    public let bundle: ModelBundle
    private let scheduler: BatchScheduler

    /// `contextLength`: positions per sequence (default: the model's, at most 8192);
    /// `maxSequences`: sequences batched together.
    public init(bundle: ModelBundle, contextLength: Int? = nil, maxSequences: Int = 8) {
        self.bundle = bundle
        var configuration = BatchScheduler.Configuration()
        configuration.contextLength = contextLength ?? min(bundle.model.config.maxPositionEmbeddings, 8192)
        configuration.maxSequences = maxSequences
        configuration.maxBatchTokens = LanguageModel.prefillChunk
        scheduler = BatchScheduler(model: bundle.model, tokenizer: bundle.tokenizer, configuration: configuration)
        scheduler.start()
    }

    deinit { scheduler.shutdown() }

    /// Loads a model folder or GGUF file (`ModelBundle.load`) off the caller's thread.
    /// `streaming` runs it within a RAM budget (experts read from the file on demand);
    /// without it, a model larger than the available memory streams by itself
    /// (`ModelBundle.automaticStreaming`).
    public static func load(_ path: String, precision: PrecisionChoice = .auto, threads: Int? = nil,
                            contextLength: Int? = nil, streaming: ExpertStreamingOptions? = nil) async throws -> ModelContainer {
        let bundle = try await Task.detached {
            try ModelBundle.load(path: path, threads: threads, precision: precision,
                                 streaming: streaming ?? ModelBundle.automaticStreaming(path: path))
        }.value
        return ModelContainer(bundle: bundle, contextLength: contextLength)
    }

    /// The model's generation defaults (its generation_config.json, EOS ids).
    public var defaults: GenerationOptions { bundle.defaults }

    /// Continues a text prompt (encoded with the tokenizer's special tokens, as
    /// `mixtral generate` does).
    public func generate(prompt: String, options: GenerationOptions? = nil,
                         topLogprobs: Int? = nil) -> AsyncThrowingStream<Generation, Error> {
        stream(topLogprobs: topLogprobs, options: options) { [bundle] in
            guard let tokenizer = bundle.tokenizer else { throw GenerationError.noTokenizer(bundle.path) }
            return try tokenizer.encode(prompt, addSpecialTokens: true)
        }
    }

    /// Continues a prompt of token ids.
    public func generate(ids: [Int], options: GenerationOptions? = nil,
                         topLogprobs: Int? = nil) -> AsyncThrowingStream<Generation, Error> {
        stream(topLogprobs: topLogprobs, options: options) { ids }
    }

    /// Answers the last message of a conversation, formatted by the model's chat template
    /// (or mistral-common's instruct format).
    public func chat(_ messages: [ChatMessage], options: GenerationOptions? = nil,
                     topLogprobs: Int? = nil) -> AsyncThrowingStream<Generation, Error> {
        stream(topLogprobs: topLogprobs, options: options) { [bundle] in
            try bundle.chatEncoder().encode(messages: messages)
        }
    }

    private func stream(topLogprobs: Int?, options: GenerationOptions?,
                        prompt: @escaping @Sendable () throws -> [Int]) -> AsyncThrowingStream<Generation, Error> {
        let scheduler = self.scheduler
        let options = options ?? bundle.defaults
        return AsyncThrowingStream { continuation in
            let handle: SequenceHandle
            do {
                handle = try scheduler.submit(SequenceRequest(prompt: try prompt(), options: options, topLogprobs: topLogprobs))
            } catch {
                continuation.finish(throwing: error)
                return
            }
            let forward = Task {
                for await event in handle.events {
                    switch event {
                    case .token(let token):
                        continuation.yield(.token(token))
                    case .finished(let reason):
                        continuation.yield(.finished(reason))
                        continuation.finish()
                    case .failed(let message):
                        continuation.finish(throwing: GenerationError.failed(message))
                    }
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in
                handle.cancel()
                forward.cancel()
            }
        }
    }
}
