import Foundation

/// Monotonic wall-clock timing for benchmarks.
public enum Stopwatch {
    /// Seconds taken by `body`.
    public static func time(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Seconds taken by `body`, which may throw.
    public static func timeThrowing(_ body: () throws -> Void) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// The best (smallest) time of `repeats` runs of `body`, after one warm-up run.
    public static func best(repeats: Int, _ body: () -> Void) -> Double {
        body()
        return (0..<repeats).map { _ in time(body) }.min()!
    }
}
