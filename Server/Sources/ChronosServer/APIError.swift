import Foundation
import Hummingbird

/// A request the server refuses or could not serve, answered with OpenAI's error object
/// `{"error": {"message", "type", "param", "code"}}` and an HTTP status.
public struct APIError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The HTTP status of the answer.
    public var status: HTTPResponse.Status
    /// One line saying what was wrong, naming the field and its value where there is one.
    public var message: String
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `server_error`, ….
    public var type: String
    /// The request field at fault (`max_tokens`, `messages[1].role`), if one is.
    public var param: String?
    /// A machine-readable code (`invalid_api_key`, `model_not_found`), if there is one.
    public var code: String?

    /// An error answered with `status`.
    public init(status: HTTPResponse.Status, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    /// The message, for logs.
    public var description: String { message }

    /// A field of the request that is missing, of the wrong type or out of range (400).
    public static func invalid(_ param: String, _ message: String, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param.isEmpty ? nil : param, code: code)
    }

    /// A request whose body is not JSON (400).
    public static func malformedJSON(_ reason: String) -> APIError {
        APIError(status: .badRequest, message: "the request body is not valid JSON: \(reason)", type: "invalid_request_error")
    }

    /// A model this server does not serve (404, as OpenAI answers).
    public static func unknownModel(_ name: String, served: String) -> APIError {
        APIError(
            status: .notFound, message: "model \(name.debugDescription) does not exist: this server serves \(served.debugDescription)",
            type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    /// A missing or wrong API key (401).
    public static func unauthorized(_ message: String) -> APIError {
        APIError(status: .unauthorized, message: message, type: "invalid_request_error", code: "invalid_api_key")
    }

    /// A body larger than the server accepts (413).
    public static func bodyTooLarge(limit: Int) -> APIError {
        APIError(
            status: .contentTooLarge, message: "the request body is larger than the \(limit) bytes this server accepts",
            type: "invalid_request_error")
    }

    /// The model is still loading (503).
    public static let loading = APIError(
        status: .serviceUnavailable, message: "the model is still loading; retry when GET /health answers 200", type: "server_error",
        code: "model_loading")

    /// A failure while generating (500): the request was valid, the server could not finish it.
    public static func generationFailed(_ reason: String) -> APIError {
        APIError(status: .internalServerError, message: "generation failed: \(reason)", type: "server_error")
    }

    /// The error object: every key present, `param` and `code` null when absent.
    public var json: JSONValue {
        [
            "message": .string(message), "type": .string(type), "param": param.map { .string($0) } ?? nil,
            "code": code.map { .string($0) } ?? nil
        ]
    }

    /// The JSON body of the answer: `{"error": {…}}`.
    public var body: String { JSONValue.object(["error": json]).text }

    /// The answer to send.
    public var response: Response {
        Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
