import Foundation

/// The time an expert store measures its stalls and reads by, and a simulated disk keeps its
/// device on: the seam between storage and the passing of time.
///
/// `MonotonicClock` is the system's uptime clock, on which a simulated read really waits;
/// `ManualClock` moves only when told to, so a test knows every nanosecond that passes.
public protocol ExpertStoreClock: Sendable {
    /// Nanoseconds since a fixed, arbitrary origin; never decreases.
    var now: UInt64 { get }

    /// Lets time pass until `now` reaches `deadline` (nanoseconds on this clock).
    func sleep(until deadline: UInt64)
}

/// The system's monotonic uptime clock (`DispatchTime`); `sleep(until:)` blocks the thread.
public struct MonotonicClock: ExpertStoreClock {
    /// The system clock.
    public init() {}

    /// Nanoseconds of uptime (`DispatchTime.now().uptimeNanoseconds`).
    public var now: UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Blocks the calling thread until the deadline (`Thread.sleep`); returns at once if it has passed.
    public func sleep(until deadline: UInt64) {
        let now = self.now
        if deadline > now { Thread.sleep(forTimeInterval: Double(deadline - now) / 1e9) }
    }
}

/// A clock that stands still until it is advanced, for tests: a simulated read moves it to the
/// read's completion at once, so stalls and read times come out as exact nanoseconds.
public final class ManualClock: ExpertStoreClock, @unchecked Sendable {
    private let lock = NSLock()
    private var nanoseconds: UInt64

    /// A clock reading `start` nanoseconds.
    public init(start: UInt64 = 0) {
        nanoseconds = start
    }

    /// The nanoseconds it was last advanced to.
    public var now: UInt64 { lock.withLock { nanoseconds } }

    /// Moves the clock forward by `nanoseconds`.
    public func advance(by nanoseconds: UInt64) {
        lock.withLock { self.nanoseconds += nanoseconds }
    }

    /// Moves the clock to `deadline` at once, if it has not passed; never back.
    public func sleep(until deadline: UInt64) {
        lock.withLock { nanoseconds = max(nanoseconds, deadline) }
    }
}
