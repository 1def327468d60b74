import Hummingbird

/// Answers every error with OpenAI's error object (a route's `APIError` as it is, Hummingbird's
/// HTTP errors with their status, anything else as a 500) and counts every answer by route and
/// status.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = error.response
        } catch let error as any HTTPResponseError {
            let status = error.status
            let message =
                status == .notFound
                ? "no route for \(request.method.rawValue) \(request.uri.path)"
                : status == .methodNotAllowed ? "\(request.method.rawValue) is not allowed on \(request.uri.path)" : status.reasonPhrase
            let type = status.code >= 500 ? "server_error" : "invalid_request_error"
            response = APIError(status: status, message: message, type: type).response
        } catch {
            response = APIError(status: .internalServerError, message: "\(error)", type: "server_error").response
        }
        metrics.requestAnswered(path: context.endpointPath ?? "unmatched", status: response.status.code)
        return response
    }
}

/// Refuses `/v1/*` requests without `Authorization: Bearer KEY` (401, OpenAI's error object).
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authorization = request.headers[.authorization] else {
            throw APIError.unauthorized("no API key was sent: send it as Authorization: Bearer KEY")
        }
        let given = authorization.hasPrefix("Bearer ") ? String(authorization.dropFirst("Bearer ".count)) : ""
        guard Self.equalInConstantTime(Array(given.utf8), Array(key.utf8)) else {
            throw APIError.unauthorized("incorrect API key provided")
        }
        return try await next(request, context)
    }

    /// Whether `a` equals `b`, in a time that does not depend on where they first differ.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }
}
