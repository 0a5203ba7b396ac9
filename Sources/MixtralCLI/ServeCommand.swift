import ArgumentParser
import Foundation
import Logging
import Mixtral
import MixtralServer

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over an OpenAI-compatible HTTP API with continuous batching.",
        discussion: """
        Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (both with \
        "stream": true for server-sent events), POST /tokenize, POST /detokenize, GET /health, \
        GET /metrics (Prometheus). Decoding follows the model's defaults like `mixtral generate` \
        unless the request sets temperature (0: greedy), top_p, top_k, min_p, repetition_penalty, seed. \
        SIGTERM or SIGINT stops accepting connections, finishes the requests in flight and exits. \
        Under `mpiexec -n N` (a build with `--traits MPI`) the model is split over N ranks: rank 0 \
        serves HTTP and schedules, the others run its forward passes on their slices.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .long, help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(name: .long, help: "Port to listen on (0: any free port, named in the log).")
    var port = 8080
    @Option(name: .long, help: "Sequences decoded together in one batch.")
    var maxSequences = 16
    @Option(name: .long, help: "Sequences that may wait for a place in the batch; more get 429.")
    var maxWaiting = 64
    @Option(name: [.long, .customShort("c")], help: "Context length per sequence (default: the model's, at most 8192).")
    var ctx: Int?
    @Option(name: .long, help: "Tokens per forward step (decode tokens plus prompt chunks).")
    var batchTokens = 256
    @Option(name: .long, help: "KV-cache memory budget in MiB for all sequences (fp32 keys and values); a sequence joins the batch when its prompt + max_tokens fit (default: max-sequences x ctx positions).")
    var kvCacheMib: Int?
    @Option(name: .long, help: "Caches of ended sequences kept to reuse a shared prompt prefix (0: off).")
    var prefixCache = 4
    @Option(name: .long, help: "Largest max_tokens a request may ask for.")
    var maxTokensLimit = 4096
    @Option(name: .long, help: "Largest request body in bytes.")
    var maxBodyBytes = 4 << 20
    @Option(name: .long, help: "Seconds a completion request may take, waiting included; then its generation stops and it gets a 408 error (0: no limit).")
    var requestTimeout: Double = 600
    @Option(name: .long, help: "Require this API key (Authorization: Bearer KEY).")
    var apiKey: String?
    @Option(name: .long, help: "Model name in the API (default: the model folder's name).")
    var modelName: String?
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        for (name, value) in [("--max-sequences", maxSequences), ("--batch-tokens", batchTokens),
                              ("--max-tokens-limit", maxTokensLimit), ("--max-body-bytes", maxBodyBytes)] where value < 1 {
            throw ValidationError("\(name) must be at least 1")
        }
        if maxWaiting < 0 { throw ValidationError("--max-waiting must be at least 0") }
        if !(requestTimeout >= 0 && requestTimeout <= 1e9) { throw ValidationError("--request-timeout must be in 0...1e9 seconds") }
        if let kvCacheMib, !(1...(1 << 30)).contains(kvCacheMib) { throw ValidationError("--kv-cache-mib must be in 1...\(1 << 30)") }
        if prefixCache < 0 { throw ValidationError("--prefix-cache must be at least 0") }
        if let ctx, !(2...(1 << 24)).contains(ctx) { throw ValidationError("--ctx must be in 2...\(1 << 24)") }
        if maxSequences > 4096 { throw ValidationError("--max-sequences must be at most 4096") }
        if batchTokens > 8192 { throw ValidationError("--batch-tokens must be at most 8192") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level: unknown level '\(logLevel)'") }
    }

    func run() throws { try runOnRanks(serve) }

    private func serve() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "mixtral.serve")
        let bundle = try modelOptions.load(splitOverRanks: true)
        // Split over ranks (mpiexec -n N), rank 0 serves; the others replay its steps.
        guard bundle.model.communicator.rank == 0 else {
            // mpiexec passes SIGTERM and SIGINT to every rank: rank 0 finishes the requests in
            // flight and then says stop, so the others must outlive the signal.
            signal(SIGTERM, SIG_IGN)
            signal(SIGINT, SIG_IGN)
            RankFollower(model: bundle.model).run()
            return
        }
        let folderName = URL(fileURLWithPath: bundle.path).standardizedFileURL.lastPathComponent
        var configuration = ServerConfiguration(modelName: modelName ?? folderName)
        configuration.host = host
        configuration.port = port
        configuration.apiKey = apiKey
        configuration.limits.maxTokens = maxTokensLimit
        configuration.limits.maxBodyBytes = maxBodyBytes
        configuration.limits.maxRequestDuration = requestTimeout > 0 ? .milliseconds(Int64((requestTimeout * 1000).rounded(.up))) : nil
        configuration.scheduler.maxSequences = maxSequences
        configuration.scheduler.maxWaiting = maxWaiting
        configuration.scheduler.maxBatchTokens = batchTokens
        configuration.scheduler.prefixCacheEntries = prefixCache
        if let kvCacheMib {
            let c = bundle.model.config
            let bytesPerPosition = c.numLayers * 2 * c.numKeyValueHeads * c.headDim * MemoryLayout<Float>.size
            configuration.scheduler.kvBudgetPositions = kvCacheMib * 1_048_576 / bytesPerPosition
        }
        configuration.scheduler.contextLength = ctx ?? min(bundle.model.config.maxPositionEmbeddings, 8192)
        let server = try OpenAIServer(bundle: bundle, configuration: configuration, logger: logger)
        logger.info("model \(configuration.modelName): context \(configuration.scheduler.contextLength), up to \(maxSequences) sequences per batch")
        try runBlocking {
            try await server.run { host, port in
                // Scripts wait for this line (and read the port from it when --port 0).
                logger.notice("listening on http://\(host):\(port)")
            }
        }
    }
}

/// Runs async work from the synchronous command and waits for it.
private func runBlocking(_ work: @escaping @Sendable () async throws -> Void) throws {
    final class Outcome: @unchecked Sendable { var error: (any Error)? }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { try await work() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let error = outcome.error { throw error }
}
