import Hummingbird
import Mixtral

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the
/// HTTP status the OpenAI API uses for it.
struct APIError: Error, CustomStringConvertible {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?

    var description: String { "\(status.code) \(type): \(message)" }

    static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    static func wrongType(_ param: String, expected: String) -> APIError {
        .invalidRequest("'\(param)' must be \(expected)", param: param, code: "invalid_type")
    }

    static func invalidValue(_ param: String, _ message: String) -> APIError {
        .invalidRequest(message, param: param, code: "invalid_value")
    }

    static func modelNotFound(_ name: String) -> APIError {
        APIError(status: .notFound, message: "The model '\(name)' does not exist", type: "invalid_request_error",
                 param: "model", code: "model_not_found")
    }

    static let unauthorized = APIError(status: .unauthorized, message: "Incorrect API key provided",
                                       type: "invalid_request_error", param: nil, code: "invalid_api_key")

    static func contextLength(_ message: String) -> APIError {
        .invalidRequest(message, param: nil, code: "context_length_exceeded")
    }

    static func tooManyRequests(_ message: String) -> APIError {
        APIError(status: .tooManyRequests, message: message, type: "rate_limit_error", param: nil, code: "rate_limit_exceeded")
    }

    static func bodyTooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, message: "The request body is larger than \(limit) bytes",
                 type: "invalid_request_error", param: nil, code: "request_too_large")
    }

    static func unavailable(_ message: String) -> APIError {
        APIError(status: .serviceUnavailable, message: message, type: "server_error", param: nil, code: "unavailable")
    }

    static func requestTimeout(_ limit: Duration) -> APIError {
        let (seconds, attoseconds) = limit.components
        return APIError(status: .requestTimeout,
                 message: "The request took longer than the server's limit of \(Double(seconds) + Double(attoseconds) * 1e-18) s; its generation was stopped",
                 type: "timeout_error", param: nil, code: "request_timeout")
    }

    static func internalError(_ message: String) -> APIError {
        APIError(status: .internalServerError, message: message, type: "server_error", param: nil, code: nil)
    }

    var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null),
            ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }

    var response: Response { jsonResponse(json, status: status) }
}

extension APIError {
    /// The scheduler's refusals, as OpenAI-compatible servers report them.
    init(_ error: SchedulerError) {
        switch error {
        case .queueFull: self = .tooManyRequests(error.description)
        case .contextOverflow(let tokens, let limit):
            self = .contextLength("This model's maximum context length is \(limit) tokens. However, you requested \(tokens) tokens (prompt + max_tokens). Please reduce the prompt or max_tokens.")
        case .exceedsMemoryBudget: self = .invalidRequest(error.description, param: "max_tokens", code: "context_length_exceeded")
        case .emptyPrompt: self = .invalidRequest(error.description, param: "prompt")
        case .invalidOptions: self = .invalidRequest(error.description, param: nil)
        case .shuttingDown: self = .unavailable(error.description)
        }
    }
}

/// Serialises compactly (the JSON text of OpenAI's API, non-ASCII kept as UTF-8).
func jsonText(_ value: JSONValue) -> String {
    value.serialized(ensureASCII: false, itemSeparator: ",", keySeparator: ":")
}

func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"],
             body: ResponseBody(byteBuffer: ByteBuffer(string: jsonText(value))))
}
