/// Holds streamed text back while it could be the start of a stop text, so that no part of a
/// stop text is ever sent, even when it arrives split over several tokens.
///
/// Each `append` returns the text that is safe to send now: everything before the earliest
/// place where a stop text is complete, or could still be completed by later text. Once a stop
/// text is complete, the text before it is returned and the filter is stopped.
public struct StopSequenceFilter: Sendable {
    /// The stop texts.
    public let stops: [String]
    /// Text received and not yet sent.
    private var pending = ""
    /// Whether a stop text has appeared.
    public private(set) var isStopped = false

    /// A filter for `stops` (empty texts are ignored).
    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Takes the next piece of text and returns what may be sent now.
    public mutating func append(_ text: String) -> String {
        guard !isStopped else { return "" }
        pending += text
        guard !stops.isEmpty else { return take(pending.endIndex) }
        if let stop = earliestStop() {
            isStopped = true
            let sent = String(pending[..<stop])
            pending = ""
            return sent
        }
        return take(heldBackStart())
    }

    /// The text still held back, once the generation has ended without a stop text.
    public mutating func finish() -> String {
        guard !isStopped else { return "" }
        return take(pending.endIndex)
    }

    /// Removes and returns the pending text before `end`.
    private mutating func take(_ end: String.Index) -> String {
        let sent = String(pending[..<end])
        pending.removeSubrange(..<end)
        return sent
    }

    /// Where the earliest complete stop text in the pending text begins.
    private func earliestStop() -> String.Index? {
        stops.compactMap { pending.firstRange(of: $0)?.lowerBound }.min()
    }

    /// Where the longest suffix of the pending text that begins some stop text starts (the end
    /// when there is none).
    private func heldBackStart() -> String.Index {
        var start = pending.startIndex
        while start < pending.endIndex {
            let suffix = pending[start...]
            if stops.contains(where: { $0.hasPrefix(suffix) }) { return start }
            start = pending.index(after: start)
        }
        return pending.endIndex
    }
}
