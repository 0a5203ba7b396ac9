import Foundation
import MixtralKernels
import Synchronization

/// What one sequence of a batched generation asks for.
public struct SequenceRequest: Sendable {
    public var prompt: [Int]
    /// Sampling, `maxNewTokens`, EOS ids, stop strings and seed, as for `generate`.
    public var options: GenerationOptions
    /// nil: no log-probabilities; k: the chosen token's and the k most likely tokens'.
    public var topLogprobs: Int?

    public init(prompt: [Int], options: GenerationOptions, topLogprobs: Int? = nil) {
        self.prompt = prompt
        self.options = options
        self.topLogprobs = topLogprobs
    }
}

public enum SequenceEvent: Sendable {
    case token(GeneratedToken)
    case finished(StopReason)
    /// The model failed on this sequence (it is removed; others go on).
    case failed(String)
}

public enum SchedulerError: Error, Equatable, CustomStringConvertible {
    case queueFull(limit: Int)
    case contextOverflow(tokens: Int, limit: Int)
    case exceedsMemoryBudget(positions: Int, budget: Int)
    case emptyPrompt
    case invalidOptions(String)
    case shuttingDown

    public var description: String {
        switch self {
        case .queueFull(let limit):
            return "too many requests: \(limit) sequences are already waiting"
        case .contextOverflow(let tokens, let limit):
            return "the request needs \(tokens) positions (prompt + max tokens) but the context holds \(limit)"
        case .exceedsMemoryBudget(let positions, let budget):
            return "the request needs \(positions) KV-cache positions but the server's budget is \(budget)"
        case .emptyPrompt:
            return "the prompt is empty: at least one token is needed"
        case .invalidOptions(let problem):
            return "invalid generation options: \(problem)"
        case .shuttingDown:
            return "the server is shutting down"
        }
    }
}

/// A submitted sequence: its events, in order, end with `.finished` or `.failed`.
/// Cancelling (or dropping the event stream) removes it from the batch and frees its cache.
public final class SequenceHandle: Sendable {
    public let events: AsyncStream<SequenceEvent>
    let cancelled: Atomic<Bool>

    init(events: AsyncStream<SequenceEvent>) {
        self.events = events
        cancelled = Atomic(false)
    }

    public func cancel() { cancelled.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}

/// Continuous batching: one thread owns the model and runs every active sequence in each
/// forward step (`forward(batch:)`): decoding sequences contribute one token each, prompts
/// are prefilled in chunks within a per-step token budget so running streams keep flowing.
/// New sequences join between steps; finished and cancelled ones leave and free their caches.
public final class BatchScheduler: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Sequences in the batch at once.
        public var maxSequences = 16
        /// Sequences waiting for a place in the batch; more are refused (`queueFull`).
        public var maxWaiting = 64
        /// Positions per sequence (prompt + generated).
        public var contextLength = 4096
        /// Tokens per forward step: decode tokens first, prompt chunks fill the rest.
        public var maxBatchTokens = 256
        /// KV-cache positions reserved by all active sequences together (each reserves
        /// prompt + max new tokens when it joins) plus those of kept caches (dropped, oldest
        /// first, to make room). nil: maxSequences * contextLength.
        public var kvBudgetPositions: Int? = nil
        /// Caches of recent sequences kept to reuse a shared prompt prefix (0: none).
        public var prefixCacheEntries = 4

        public init() {}
    }

    /// Counts for metrics, read under the lock.
    public struct Stats: Sendable {
        public var waiting = 0
        public var active = 0
        /// Positions held by active sequences' caches, and the bytes their buffers take.
        public var cachedPositions = 0
        public var cacheBytes = 0
        public var reservedPositions = 0
        /// Prompt tokens taken from a kept cache instead of being run (since the start).
        public var reusedPromptTokens = 0
        /// Caches kept for prefix reuse, and their bytes.
        public var keptCaches = 0
        public var keptCacheBytes = 0
    }

    /// One forward step, for metrics: rows run, sequences in it, seconds.
    public struct Step: Sendable {
        public var sequences: Int
        public var tokens: Int
        public var seconds: Double
    }

    public let model: LanguageModel
    public let tokenizer: (any Tokenizer)?
    public let configuration: Configuration
    public var kvBudgetPositions: Int { configuration.kvBudgetPositions ?? configuration.maxSequences * configuration.contextLength }
    /// Called on the model thread after each step.
    public var onStep: (@Sendable (Step) -> Void)?

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var waiting: [ActiveSequence] = []
    private var stopping = false
    private var stats = Stats()
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)
    // Owned by the model thread:
    private var active: [ActiveSequence] = []
    /// Recently ended sequences' ids and caches, most recent last.
    private var kept: [(ids: [Int], cache: KVCache)] = []
    private var reusedPromptTokens = 0

    public init(model: LanguageModel, tokenizer: (any Tokenizer)?, configuration: Configuration) {
        self.model = model
        self.tokenizer = tokenizer
        self.configuration = configuration
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "mixtral-scheduler"
        thread.stackSize = 8 << 20
        condition.lock()
        self.thread = thread
        condition.unlock()
        thread.start()
    }

    /// Finishes the sequences already submitted, refuses new ones, then stops the thread.
    public func shutdown() {
        condition.lock()
        stopping = true
        let started = thread != nil
        condition.signal()
        condition.unlock()
        if started { stopped.wait() }
    }

    public var currentStats: Stats {
        condition.lock()
        defer { condition.unlock() }
        return stats
    }

    /// Queues a sequence. Throws when the queue is full, the request cannot fit the
    /// context or the memory budget, or the scheduler is stopping.
    public func submit(_ request: SequenceRequest) throws(SchedulerError) -> SequenceHandle {
        guard !request.prompt.isEmpty else { throw .emptyPrompt }
        if let problem = request.options.validationError() { throw .invalidOptions(problem) }
        // Saturating: a huge max_new_tokens is refused, not an arithmetic trap.
        let positions = request.prompt.count.addingReportingOverflow(request.options.maxNewTokens).overflow
            ? Int.max : request.prompt.count + request.options.maxNewTokens
        guard positions <= configuration.contextLength else {
            throw .contextOverflow(tokens: positions, limit: configuration.contextLength)
        }
        guard positions <= kvBudgetPositions else { throw .exceedsMemoryBudget(positions: positions, budget: kvBudgetPositions) }
        let (stream, continuation) = AsyncStream.makeStream(of: SequenceEvent.self)
        let handle = SequenceHandle(events: stream)
        continuation.onTermination = { _ in handle.cancel() }
        let sequence = ActiveSequence(request: request, handle: handle, continuation: continuation, tokenizer: tokenizer,
                                cache: model.makeCache(maxPositions: configuration.contextLength))
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw .shuttingDown }
        let freePlaces = max(0, configuration.maxSequences - stats.active)
        guard waiting.count < configuration.maxWaiting + freePlaces else { throw .queueFull(limit: configuration.maxWaiting) }
        waiting.append(sequence)
        stats.waiting = waiting.count
        condition.signal()
        return handle
    }

    // MARK: The model thread

    private func run() {
        while true {
            condition.lock()
            while active.isEmpty && waiting.isEmpty && !stopping { condition.wait() }
            if stopping && active.isEmpty && waiting.isEmpty {
                condition.unlock()
                model.announce(.stop)
                stopped.signal()
                return
            }
            waiting.removeAll { sequence in
                guard sequence.handle.isCancelled else { return false }
                sequence.continuation.finish()
                return true
            }
            var reserved = active.reduce(0) { $0 + $1.reservedPositions }
            var joined: [ActiveSequence] = []
            while active.count < configuration.maxSequences, let next = waiting.first {
                // Kept caches count against the budget too; the oldest make room first.
                while !kept.isEmpty && reserved + next.reservedPositions + keptPositions > kvBudgetPositions {
                    kept.removeFirst()
                }
                guard reserved + next.reservedPositions + keptPositions <= kvBudgetPositions else { break }
                waiting.removeFirst()
                active.append(next)
                joined.append(next)
                reserved += next.reservedPositions
            }
            stats.waiting = waiting.count
            stats.active = active.count
            condition.unlock()
            for sequence in joined { reusePrefix(for: sequence) }
            step()
            updateStats()
        }
    }

    private func updateStats() {
        let positions = active.reduce(0) { $0 + $1.cache.count }
        let bytes = active.reduce(0) { $0 + $1.cache.byteCount }
        let reserved = active.reduce(0) { $0 + $1.reservedPositions }
        let keptBytes = kept.reduce(0) { $0 + $1.cache.byteCount }
        condition.lock()
        stats.active = active.count
        stats.cachedPositions = positions
        stats.cacheBytes = bytes
        stats.reservedPositions = reserved
        stats.reusedPromptTokens = reusedPromptTokens
        stats.keptCaches = kept.count
        stats.keptCacheBytes = keptBytes
        condition.unlock()
    }

    // MARK: Prefix reuse

    /// Starts a new sequence from the kept cache that shares the longest prompt prefix
    /// with it: those positions are copied, not run. (Keys and values of a position depend
    /// only on the tokens up to it.) The prompt's last token is always run, for its logits.
    private func reusePrefix(for sequence: ActiveSequence) {
        let prompt = sequence.request.prompt
        var best: (index: Int, length: Int)?
        for (index, entry) in kept.enumerated() {
            var length = 0
            let limit = min(entry.ids.count, entry.cache.count, prompt.count - 1)
            while length < limit && entry.ids[length] == prompt[length] { length += 1 }
            if length > (best?.length ?? 0) { best = (index, length) }
        }
        guard let best else { return }
        let source = kept[best.index].cache
        model.announce(.copyPrefix(target: .init(cache: sequence.cache.id, maxPositions: sequence.cache.maxPositions),
                                   source: source.id, count: best.length))
        guard sequence.cache.copyPrefix(of: source, count: best.length) else { return }
        sequence.prefilled = best.length
        reusedPromptTokens += best.length
        kept.append(kept.remove(at: best.index))  // most recently used last
    }

    private var keptPositions: Int { kept.reduce(0) { $0 + $1.cache.count } }

    /// Keeps an ended sequence's cache for later prompts that start the same way.
    private func keep(_ sequence: ActiveSequence) {
        guard configuration.prefixCacheEntries > 0, sequence.cache.count > 0 else { return }
        kept.append((Array(sequence.ids.prefix(sequence.cache.count)), sequence.cache))
        if kept.count > configuration.prefixCacheEntries { kept.removeFirst() }
    }

    /// One forward pass over every active sequence.
    private func step() {
        active.removeAll { sequence in
            guard sequence.handle.isCancelled else { return false }
            sequence.continuation.finish()
            keep(sequence)
            return true
        }
        guard !active.isEmpty else { return }
        // Decoding sequences first (one token each), then prompt chunks in arrival order.
        var entries: [BatchEntry] = []
        var members: [ActiveSequence] = []
        for sequence in active where sequence.isDecoding {
            entries.append(BatchEntry(tokens: [sequence.lastToken], cache: sequence.cache))
            members.append(sequence)
        }
        var budget = max(configuration.maxBatchTokens - entries.count, 1)
        for sequence in active where !sequence.isDecoding && budget > 0 {
            let chunk = sequence.nextPromptChunk(limit: budget)
            budget -= chunk.count
            entries.append(BatchEntry(tokens: chunk, cache: sequence.cache,
                                      wantsLogits: sequence.prefilled + chunk.count == sequence.request.prompt.count))
            members.append(sequence)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let results: [[Float]?]
        model.announce(.forward(entries: entries.map {
            .init(cache: $0.cache.id, maxPositions: $0.cache.maxPositions, tokens: $0.tokens, wantsLogits: $0.wantsLogits)
        }, live: active.map(\.cache.id) + kept.map(\.cache.id)))
        do {
            results = try model.forward(batch: entries)
        } catch {
            for sequence in members {
                sequence.continuation.yield(.failed(error.description))
                sequence.continuation.finish()
            }
            active.removeAll { member in members.contains { $0 === member } }
            return
        }
        onStep?(Step(sequences: entries.count, tokens: entries.reduce(0) { $0 + $1.tokens.count },
                     seconds: (clock.now - start).seconds))
        for (sequence, (entry, logits)) in zip(members, zip(entries, results)) {
            if !sequence.isDecoding { sequence.prefilled += entry.tokens.count }
            if let logits { sequence.accept(logits: logits) }
        }
        for sequence in active where sequence.isFinished { keep(sequence) }
        active.removeAll { $0.isFinished }
    }
}

/// One sequence on the model thread: its generation state, cache and event stream.
private final class ActiveSequence {
    let request: SequenceRequest
    let handle: SequenceHandle
    let continuation: AsyncStream<SequenceEvent>.Continuation
    let cache: KVCache
    var state: SequenceState
    /// Prompt tokens already run.
    var prefilled = 0
    var isFinished = false

    init(request: SequenceRequest, handle: SequenceHandle, continuation: AsyncStream<SequenceEvent>.Continuation,
         tokenizer: (any Tokenizer)?, cache: KVCache) {
        self.request = request
        self.handle = handle
        self.continuation = continuation
        self.cache = cache
        state = SequenceState(prompt: request.prompt, options: request.options, tokenizer: tokenizer,
                              topLogprobs: request.topLogprobs)
    }

    var reservedPositions: Int { request.prompt.count + request.options.maxNewTokens }
    var isDecoding: Bool { prefilled == request.prompt.count }
    var lastToken: Int { state.lastToken }
    var ids: [Int] { state.ids }

    func nextPromptChunk(limit: Int) -> [Int] {
        let prompt = request.prompt
        return Array(prompt[prefilled..<min(prompt.count, prefilled + limit)])
    }

    /// Chooses the next token from the logits of the last position (`SequenceState`).
    func accept(logits: [Float]) {
        let (token, reason) = state.accept(logits: logits, roomForMore: cache.count < cache.maxPositions)
        continuation.yield(.token(token))
        if let reason {
            isFinished = true
            continuation.yield(.finished(reason))
            continuation.finish()
        }
    }
}

extension KVCache {
    /// Copies the first `count` positions of `source` into this empty cache of the same
    /// shape. Returns false (and copies nothing) when the shapes or counts do not allow it.
    func copyPrefix(of source: KVCache, count: Int) -> Bool {
        guard self.count == 0, count > 0, count <= source.count, count <= maxPositions, rowWidth == source.rowWidth,
              keys.count == source.keys.count else { return false }
        reserve(count)
        // Keys are stored in whole blocks of positions (KeyLayout), block after block: the
        // blocks holding the first `count` positions come first. Positions past `count` in
        // the last block are overwritten when this cache stores them.
        let blockedKeys = (count + KeyLayout.block - 1) / KeyLayout.block * KeyLayout.block * rowWidth
        for layer in keys.indices {
            keys[layer].pointer.update(from: source.keys[layer].pointer, count: blockedKeys)
            values[layer].pointer.update(from: source.values[layer].pointer, count: count * rowWidth)
        }
        advance(by: count)
        return true
    }
}
