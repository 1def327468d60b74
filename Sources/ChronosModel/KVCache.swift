import ChronosTensor

/// The keys and values one attention layer has seen, so that decoding a token attends to the
/// whole prefix without recomputing it.
public protocol KVCache: AnyObject {
    /// Number of positions held: the position of the next token.
    var offset: Int { get }

    /// Appends `keys` `[T, kvHeads·headDim]` and `values` `[T, kvHeads·valueDim]` (any shapes
    /// with T rows) and returns every key and value held, from position 0, as `[offset, …]`.
    func update(keys: Tensor, values: Tensor) -> (keys: Tensor, values: Tensor)

    /// Forgets the last `count` positions (at most `offset`); returns how many were forgotten.
    @discardableResult
    func trim(_ count: Int) -> Int

    /// Position of the first key the next `update` returns: 0 for a cache that keeps every
    /// position, later for one that drops positions no future query can see. Attention passes
    /// it as the key offset.
    var firstRetainedPosition: Int { get }

    /// Bytes of memory the cache has allocated for what it holds.
    var byteCount: Int { get }

    /// How many of the newest positions `trim` can forget while leaving every later query the
    /// keys it would have seen had they never been added.
    var rewindablePositions: Int { get }
}

extension KVCache {
    /// Every position is kept, so returned keys start at position 0.
    public var firstRetainedPosition: Int { 0 }

    /// Every position is kept, so any can be forgotten exactly.
    public var rewindablePositions: Int { offset }
}

/// A cache that keeps every position in one growing f32 buffer per keys and values.
///
/// Memory grows in steps of `step` positions, so decoding a token copies only its own keys and
/// values. The first update's inputs are returned as they are (not copies), so a single
/// full-sequence forward keeps the keys and values in the gradient graph.
public final class StandardKVCache: KVCache {
    /// Positions added to the buffers each time they fill up.
    public let step: Int
    public private(set) var offset = 0
    private var keyBuffer: Tensor?
    private var valueBuffer: Tensor?

    /// An empty cache growing `step` positions at a time.
    public init(step: Int = 256) {
        precondition(step > 0, "cache step must be positive")
        self.step = step
    }

    public func update(keys: Tensor, values: Tensor) -> (keys: Tensor, values: Tensor) {
        let tokens = keys.shape.first ?? 0
        precondition(values.shape.first == tokens, "cache update: keys \(keys.shape) and values \(values.shape) differ in tokens")
        guard tokens > 0 else { return held() }
        let keyWidth = keys.count / tokens, valueWidth = values.count / tokens
        reserve(offset + tokens, keyWidth: keyWidth, valueWidth: valueWidth)
        Self.write(keys, into: keyBuffer!, at: offset)
        Self.write(values, into: valueBuffer!, at: offset)
        let first = offset == 0
        offset += tokens
        return first ? (keys, values) : held()
    }

    @discardableResult
    public func trim(_ count: Int) -> Int {
        let removed = min(max(count, 0), offset)
        offset -= removed
        return removed
    }

    /// Bytes of the two buffers, including room reserved for positions not yet written.
    public var byteCount: Int { (keyBuffer?.byteCount ?? 0) + (valueBuffer?.byteCount ?? 0) }

    /// Views of the positions held.
    private func held() -> (keys: Tensor, values: Tensor) {
        guard let keyBuffer, let valueBuffer else { return (Tensor(zeros: [0, 0]), Tensor(zeros: [0, 0])) }
        return (keyBuffer.slice(0..<offset), valueBuffer.slice(0..<offset))
    }

    /// Grows the buffers to hold at least `positions` rows, keeping what they hold.
    private func reserve(_ positions: Int, keyWidth: Int, valueWidth: Int) {
        if let keyBuffer, let valueBuffer {
            precondition(
                keyBuffer.shape[1] == keyWidth && valueBuffer.shape[1] == valueWidth,
                "cache update: rows of \(keyWidth)/\(valueWidth) into a cache of \(keyBuffer.shape[1])/\(valueBuffer.shape[1])")
            if positions <= keyBuffer.shape[0] { return }
        }
        let capacity = (positions + step - 1) / step * step
        let newKeys = Tensor(zeros: [capacity, keyWidth]), newValues = Tensor(zeros: [capacity, valueWidth])
        if let keyBuffer, let valueBuffer, offset > 0 {
            newKeys.rawPointer.copyMemory(from: keyBuffer.rawPointer, byteCount: offset * keyWidth * 4)
            newValues.rawPointer.copyMemory(from: valueBuffer.rawPointer, byteCount: offset * valueWidth * 4)
        }
        keyBuffer = newKeys
        valueBuffer = newValues
    }

    /// Copies `rows` (as f32) into `buffer` starting at row `start`.
    static func write(_ rows: Tensor, into buffer: Tensor, at start: Int) {
        let source = rows.dtype == .f32 ? rows.contiguous() : rows.converted(to: .f32)
        let width = buffer.shape[1]
        (buffer.rawPointer + start * width * 4).copyMemory(from: source.rawPointer, byteCount: source.count * 4)
    }
}
