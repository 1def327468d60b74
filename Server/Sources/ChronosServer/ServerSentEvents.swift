/// Server-sent events as OpenAI streams them: each chunk a `data:` line and a blank line, the
/// stream ended by `data: [DONE]`; a line that begins with `:` is a comment.
public enum ServerSentEvents {
    /// The event carrying `value`.
    public static func event(_ value: JSONValue) -> String {
        var output = "data: "
        value.write(to: &output)
        output += "\n\n"
        return output
    }

    /// The event that ends every stream.
    public static let done = "data: [DONE]\n\n"

    /// A comment line that carries no event: sent while a stream idles, so that the connection
    /// stays open through proxies and a client that has gone is noticed.
    public static let heartbeat = ": heartbeat\n\n"
}
