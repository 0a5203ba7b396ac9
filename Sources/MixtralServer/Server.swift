import Foundation
import Hummingbird
import Logging
import Mixtral
import NIOCore

public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (the log line "listening on" names it).
    public var port = 8080
    /// The model's name in /v1/models and requests (default: the folder's name).
    public var modelName: String
    /// When set, /v1/*, /tokenize and /detokenize need `Authorization: Bearer KEY`.
    public var apiKey: String?
    public var limits = ServerLimits()
    public var scheduler = BatchScheduler.Configuration()

    public init(modelName: String) { self.modelName = modelName }
}

/// The OpenAI-compatible HTTP server: Hummingbird routes in front of one `BatchScheduler`
/// that owns the model. `run()` serves until SIGTERM or SIGINT, then stops accepting
/// connections, lets the requests in flight finish, and stops the scheduler.
public final class OpenAIServer: Sendable {
    let configuration: ServerConfiguration
    let bundle: ModelBundle
    let scheduler: BatchScheduler
    let completions: CompletionService
    let prompts: PromptReader
    let metrics = ServerMetrics()
    let logger: Logger

    public init(bundle: ModelBundle, configuration: ServerConfiguration, logger: Logger) throws {
        guard let tokenizer = bundle.tokenizer else {
            throw ServerSetupError("\(bundle.path) has no tokenizer (tokenizer.json or tokenizer.model): the server needs one")
        }
        self.configuration = configuration
        self.bundle = bundle
        self.logger = logger
        let chatEncoder: ChatEncoder?
        do {
            chatEncoder = try bundle.chatEncoder()
        } catch {
            logger.warning("no chat formatting (\(error)): /v1/chat/completions will answer 400")
            chatEncoder = nil
        }
        prompts = PromptReader(tokenizer: tokenizer, chatEncoder: chatEncoder, vocabularySize: bundle.model.config.vocabSize,
                               limits: configuration.limits)
        let scheduler = BatchScheduler(model: bundle.model, tokenizer: tokenizer, configuration: configuration.scheduler)
        let metrics = self.metrics
        scheduler.onStep = { step in metrics.record(step) }
        self.scheduler = scheduler
        completions = CompletionService(modelName: configuration.modelName, modelAliases: [bundle.path], scheduler: scheduler,
                                        defaults: bundle.defaults, prompts: prompts, limits: configuration.limits,
                                        metrics: metrics, logger: logger)
    }

    /// Serves until SIGTERM/SIGINT; `onListening` gets the bound host and port.
    public func run(onListening: @escaping @Sendable (String, Int) -> Void = { _, _ in }) async throws {
        scheduler.start()
        let router = Router(context: ServerContext.self)
        router.add(middleware: APIMiddleware(apiKey: configuration.apiKey, metrics: metrics, logger: logger))
        addRoutes(router)
        let host = configuration.host
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionWatcher()])),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "mixtral"),
            onServerRunning: { channel in onListening(host, channel.localAddress?.port ?? 0) },
            logger: logger)
        do {
            try await app.runService()
        } catch {
            scheduler.shutdown()
            throw error
        }
        logger.info("stopping: requests in flight are done")
        scheduler.shutdown()
    }

    private func addRoutes(_ router: Router<ServerContext>) {
        let completions = self.completions
        router.get("health") { _, _ in jsonResponse(.object([("status", .string("ok"))])) }
        router.get("metrics") { [self] _, _ in
            metrics.update(scheduler.currentStats)
            if let streaming = scheduler.model.expertStreamingStats { metrics.update(streaming: streaming) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        router.get("v1/models") { [self] _, _ in jsonResponse(.object([("object", .string("list")), ("data", .array([modelJSON]))])) }
        router.get("v1/models/:id") { [self] _, context in
            let id = context.parameters.get("id") ?? ""
            guard completions.modelAliases.contains(id) else { throw APIError.modelNotFound(id) }
            return jsonResponse(modelJSON)
        }
        router.post("v1/completions") { request, context in try await completions.completions(request, context: context) }
        router.post("v1/chat/completions") { request, context in try await completions.chatCompletions(request, context: context) }
        router.post("tokenize") { [self] request, _ in try await tokenize(request) }
        router.post("detokenize") { [self] request, _ in try await detokenize(request) }
    }

    private var modelJSON: JSONValue {
        .object([("id", .string(configuration.modelName)), ("object", .string("model")),
                 ("created", .integer(completions.created)), ("owned_by", .string("swift-mixtral")),
                 ("max_model_len", .integer(configuration.scheduler.contextLength))])
    }

    /// {"prompt": text, "add_special_tokens": true} or {"messages": [...]} -> {"tokens", "count", "max_model_len"}.
    private func tokenize(_ request: Request) async throws -> Response {
        let fields = try RequestFields(body: try await completions.readBody(request))
        try completions.checkModel(fields, required: false)
        let ids: [Int]
        if fields["messages"] != nil {
            let tools = try ToolRequest(fields)
            ids = try prompts.chatPrompt(fields, tools: tools?.choice == ToolRequest.Choice.none ? nil : tools)
        } else {
            guard let text = try fields.string("prompt") else {
                throw APIError.invalidRequest("'prompt' (a string) or 'messages' is required", param: "prompt")
            }
            let special = try fields.bool("add_special_tokens") ?? true
            do {
                ids = try prompts.tokenizer.encode(text, addSpecialTokens: special)
            } catch {
                throw APIError.invalidRequest("The prompt cannot be tokenized: \(error)", param: "prompt")
            }
        }
        return jsonResponse(.object([("tokens", .array(ids.map(JSONValue.integer))), ("count", .integer(ids.count)),
                                     ("max_model_len", .integer(configuration.scheduler.contextLength))]))
    }

    /// {"tokens": [ids]} -> {"prompt": text}.
    private func detokenize(_ request: Request) async throws -> Response {
        let fields = try RequestFields(body: try await completions.readBody(request))
        try completions.checkModel(fields, required: false)
        guard let list = fields["tokens"]?.arrayValue else {
            throw APIError.wrongType("tokens", expected: "a list of token ids")
        }
        var ids: [Int] = []
        for item in list {
            guard let id = item.intValue else { throw APIError.wrongType("tokens", expected: "a list of token ids") }
            ids.append(id)
        }
        guard let bad = ids.first(where: { $0 < 0 || $0 >= prompts.tokenizer.vocabularySize }) else {
            return jsonResponse(.object([("prompt", .string(prompts.tokenizer.decode(ids, skipSpecialTokens: false)))]))
        }
        throw APIError.invalidValue("tokens", "token id \(bad) is out of range: the vocabulary has \(prompts.tokenizer.vocabularySize) ids")
    }
}

public struct ServerSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Checks the API key, turns every error into OpenAI's error JSON, counts requests and logs them.
struct APIMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let apiKey: String?
    let metrics: ServerMetrics
    let logger: Logger

    static let endpoints: Set<String> = ["/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions",
                                         "/tokenize", "/detokenize"]

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let path = request.uri.path
        let response: Response
        if let apiKey, path != "/health", path != "/metrics", !Self.authorized(request, key: apiKey) {
            response = APIError.unauthorized.response
        } else {
            do {
                response = try await next(request, context)
            } catch let error as APIError {
                response = error.response
            } catch let error as HTTPError {
                let message = error.body ?? (error.status == .notFound ? "Unknown route \(request.method) \(path)" : error.status.reasonPhrase)
                response = APIError(status: error.status, message: message,
                                    type: error.status.code < 500 ? "invalid_request_error" : "server_error").response
            } catch {
                logger.error("\(request.method) \(path) failed: \(error)")
                response = APIError.internalError("\(error)").response
            }
        }
        let endpoint = Self.endpoints.contains(path) ? path : (path.hasPrefix("/v1/models/") ? "/v1/models/{id}" : "other")
        metrics.request(endpoint: endpoint, status: response.status.code)
        let elapsed = ContinuousClock.now - start
        // A stream's duration is recorded when it ends.
        if response.headers[.contentType] != "text/event-stream" {
            metrics.requestLatency.recordNanoseconds(elapsed.nanoseconds)
        }
        logger.info("\(request.method) \(path) \(response.status.code) \(elapsed)")
        return response
    }

    /// `Authorization: Bearer KEY`, compared in constant time.
    static func authorized(_ request: Request, key: String) -> Bool {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return false }
        let given = Array(header.dropFirst("Bearer ".count).utf8), expected = Array(key.utf8)
        guard given.count == expected.count else { return false }
        return zip(given, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
