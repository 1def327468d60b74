import ChronosTensor
import Foundation

/// A cache for sliding-window attention that keeps only the positions a later query can still
/// see: with window W, a query at position p sees keys at p − W + 1 … p, so of the positions
/// before the next token only the last W − 1 matter.
///
/// `update` returns the retained positions followed by the new ones; they start at position
/// `firstRetainedPosition` (read before the update), which attention takes as its key offset.
/// Memory stays at about (W − 1 + tokens per call) rows however long the sequence grows.
///
/// Trimming cannot bring back positions already dropped: after `trim(n)` the next queries see
/// fewer than W − 1 earlier positions until the window refills, unless `extraPositions ≥ n`
/// keeps enough of them.
public final class SlidingWindowKVCache: KVCache {
    /// Keys further back than this many positions are invisible (the attention window).
    public let window: Int
    /// Positions kept beyond the window's W − 1 so that trims up to this many stay exact.
    public let extraPositions: Int
    /// Rows added to the buffers each time they fill up.
    public let step: Int
    public private(set) var offset = 0
    /// Earlier positions held between updates (at most `window − 1 + extraPositions`).
    public private(set) var heldCount = 0
    /// Buffer row of the first held position; rows move to the front at the next update.
    private var start = 0
    private var keyBuffer: Tensor?
    private var valueBuffer: Tensor?

    /// An empty cache for attention with window `window`.
    public init(window: Int, extraPositions: Int = 0, step: Int = 64) {
        precondition(window > 0, "sliding window must be positive")
        precondition(extraPositions >= 0 && step > 0, "extra positions must be ≥ 0 and the step positive")
        self.window = window
        self.extraPositions = extraPositions
        self.step = step
    }

    /// Positions worth keeping between updates.
    private var retention: Int { window - 1 + extraPositions }

    public var firstRetainedPosition: Int { offset - heldCount }

    /// All positions while none has been dropped; after that, as many as leave the window's
    /// W − 1 positions held.
    public var rewindablePositions: Int { heldCount == offset ? offset : max(0, heldCount - (window - 1)) }

    /// Bytes of the two buffers, including room reserved for positions not yet written.
    public var byteCount: Int { (keyBuffer?.byteCount ?? 0) + (valueBuffer?.byteCount ?? 0) }

    /// Appends `keys` `[T, …]` and `values` `[T, …]` and returns the retained earlier positions
    /// followed by these, as `[heldCount + T, …]` starting at `firstRetainedPosition`.
    ///
    /// With nothing retained the inputs themselves come back (a full-sequence forward keeps them
    /// in the gradient graph); while recording gradients, later calls return copies that keep the
    /// new rows in the graph.
    public func update(keys: Tensor, values: Tensor) -> (keys: Tensor, values: Tensor) {
        let tokens = keys.shape.first ?? 0
        precondition(values.shape.first == tokens, "cache update: keys \(keys.shape) and values \(values.shape) differ in tokens")
        guard tokens > 0 else { return held(count: heldCount) }
        let keyWidth = keys.count / tokens, valueWidth = values.count / tokens
        compact()
        if heldCount == 0 {
            // Nothing earlier is visible: the inputs are the whole answer.
            let kept = min(tokens, retention)
            reserve(kept, keyWidth: keyWidth, valueWidth: valueWidth)
            if kept > 0 {
                let k = keys.contiguous().reshaped([tokens, keyWidth]).slice((tokens - kept)..<tokens)
                let v = values.contiguous().reshaped([tokens, valueWidth]).slice((tokens - kept)..<tokens)
                StandardKVCache.write(k, into: keyBuffer!, at: 0)
                StandardKVCache.write(v, into: valueBuffer!, at: 0)
            }
            heldCount = kept
            offset += tokens
            return (keys, values)
        }
        let earlier = heldCount, total = earlier + tokens
        reserve(total, keyWidth: keyWidth, valueWidth: valueWidth)
        StandardKVCache.write(keys, into: keyBuffer!, at: earlier)
        StandardKVCache.write(values, into: valueBuffer!, at: earlier)
        let result: (keys: Tensor, values: Tensor)
        if Autograd.isRecording && (keys.gradientNode != nil || values.gradientNode != nil) {
            result = (
                Tensor.concatenate([keyBuffer!.slice(0..<earlier), keys.contiguous().reshaped([tokens, keyWidth])], axis: 0),
                Tensor.concatenate([valueBuffer!.slice(0..<earlier), values.contiguous().reshaped([tokens, valueWidth])], axis: 0)
            )
        } else {
            result = held(count: total)
        }
        heldCount = min(total, retention)
        start = total - heldCount
        offset += tokens
        return result
    }

    @discardableResult
    public func trim(_ count: Int) -> Int {
        let removed = min(max(count, 0), offset)
        // The newest positions are the last held rows.
        heldCount -= min(removed, heldCount)
        offset -= removed
        return removed
    }

    /// Views of the first `count` buffer rows (the held positions once compacted).
    private func held(count: Int) -> (keys: Tensor, values: Tensor) {
        guard let keyBuffer, let valueBuffer else { return (Tensor(zeros: [0, 0]), Tensor(zeros: [0, 0])) }
        compact()
        return (keyBuffer.slice(0..<count), valueBuffer.slice(0..<count))
    }

    /// Moves the held rows to the front of the buffers.
    private func compact() {
        guard start > 0, let keyBuffer, let valueBuffer else { return }
        if heldCount > 0 {
            for buffer in [keyBuffer, valueBuffer] {
                let width = buffer.shape[1] * 4
                memmove(buffer.rawPointer, buffer.rawPointer + start * width, heldCount * width)
            }
        }
        start = 0
    }

    /// Grows the buffers to hold at least `rows` rows, keeping the held rows (at the front).
    private func reserve(_ rows: Int, keyWidth: Int, valueWidth: Int) {
        if let keyBuffer, let valueBuffer {
            precondition(
                keyBuffer.shape[1] == keyWidth && valueBuffer.shape[1] == valueWidth,
                "cache update: rows of \(keyWidth)/\(valueWidth) into a cache of \(keyBuffer.shape[1])/\(valueBuffer.shape[1])")
            if rows <= keyBuffer.shape[0] { return }
        }
        let capacity = max((rows + step - 1) / step * step, 1)
        let newKeys = Tensor(zeros: [capacity, keyWidth]), newValues = Tensor(zeros: [capacity, valueWidth])
        if let keyBuffer, let valueBuffer, heldCount > 0 {
            newKeys.rawPointer.copyMemory(from: keyBuffer.rawPointer, byteCount: heldCount * keyWidth * 4)
            newValues.rawPointer.copyMemory(from: valueBuffer.rawPointer, byteCount: heldCount * valueWidth * 4)
        }
        keyBuffer = newKeys
        valueBuffer = newValues
    }
}
