/// Picking entries by value: argmax and top-k.
public enum Selection {
    /// Index of the largest of `count` values; the first one on ties; NaN never wins.
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        precondition(count > 0, "argmax of an empty row")
        var best = -1
        var bestValue = -Float.infinity
        for i in 0..<count {
            let v = x[i]
            if best < 0 ? !v.isNaN : v > bestValue {
                best = i
                bestValue = v
            }
        }
        return max(best, 0)
    }

    /// The `k` largest of `count` values, largest first; equal values keep index order.
    public static func topK(_ x: UnsafePointer<Float>, count: Int, k: Int) -> [(index: Int, value: Float)] {
        let k = min(k, count)
        if k <= 0 { return [] }
        // A sorted buffer of the best k so far; k is small (the experts per token).
        var best: [(index: Int, value: Float)] = []
        best.reserveCapacity(k + 1)
        for i in 0..<count {
            let v = x[i]
            if v.isNaN { continue }
            if best.count == k, let last = best.last, !(v > last.value) { continue }
            var position = best.count
            while position > 0 && v > best[position - 1].value { position -= 1 }
            best.insert((i, v), at: position)
            if best.count > k { best.removeLast() }
        }
        return best
    }
}
