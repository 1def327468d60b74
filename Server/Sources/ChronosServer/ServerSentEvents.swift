/// Server-sent events as OpenAI streams them: each chunk a `data:` line and a blank line, the
/// stream ended by `data: [DONE]`.
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
}
