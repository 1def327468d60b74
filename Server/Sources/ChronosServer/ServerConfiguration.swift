import ChronosModel
import ChronosTensor

/// How the server listens and what it accepts, apart from the model.
public struct ServerConfiguration: Sendable {
    /// The address to listen on.
    public var host = "127.0.0.1"
    /// The TCP port.
    public var port = 8080
    /// The key `/v1/*` requests must send as `Authorization: Bearer KEY` (nil: none needed).
    public var apiKey: String?
    /// Generations decoding at once; later requests wait for one to end.
    public var parallel = 1
    /// The most new tokens one request may ask for, and what a request that names none gets.
    public var maxTokensLimit = 2048
    /// The origin browsers may call the API from (`*` for any), nil for none.
    public var corsOrigin: String?
    /// The largest request body accepted, in bytes.
    public var maxRequestBytes = 1 << 20
    /// Seconds without a snapshot after which `GET /v1/chronos/events` sends a heartbeat comment.
    public var eventHeartbeatSeconds = 10.0
    /// The folder training and tuning jobs read and write (nil: those endpoints are refused).
    public var workspace: TrainingWorkspace?

    /// Generations that may decode at once.
    public static let parallelRange = 1...64

    /// The defaults: 127.0.0.1:8080, no key, one generation at a time.
    public init() {}

    /// Throws the first setting outside its range, named as its option is.
    public func validate() throws(InvalidSetting) {
        if host.isEmpty { throw InvalidSetting(name: "--host", value: "''", expected: "an address or host name (127.0.0.1, ::1, 0.0.0.0)") }
        try InvalidSetting.check("--port", port, in: 1...65_535)
        try InvalidSetting.check("--parallel", parallel, in: Self.parallelRange)
        try InvalidSetting.check("--max-tokens-limit", maxTokensLimit, in: GenerationRequest.maxTokensRange)
        try InvalidSetting.check("--max-request-bytes", maxRequestBytes, in: 1024...(1 << 30))
        if let apiKey, apiKey.isEmpty || apiKey.contains(where: \.isWhitespace) {
            throw InvalidSetting(name: "--api-key", value: "of \(apiKey.count) characters", expected: "a non-empty key without spaces")
        }
        if let corsOrigin, corsOrigin != "*", !(corsOrigin.hasPrefix("http://") || corsOrigin.hasPrefix("https://")) {
            throw InvalidSetting(
                name: "--cors-origin", value: corsOrigin.debugDescription, expected: "* or an origin such as http://localhost:3000")
        }
    }
}
