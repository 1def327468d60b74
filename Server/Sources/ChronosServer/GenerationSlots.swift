import Synchronization

/// At most `count` generations at once: a request waits for a slot, without holding a thread,
/// and takes the next one freed, in the order the requests came.
public final class GenerationSlots: Sendable {
    /// Slots in all.
    public let count: Int
    private let state: Mutex<State>

    private struct State {
        var free: Int
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    /// `count` slots, all free.
    public init(count: Int) {
        self.count = count
        state = Mutex(State(free: count))
    }

    /// Requests waiting for a slot.
    public var waiting: Int { state.withLock { $0.waiting.count } }

    /// Returns once a slot is held; `release()` gives it back.
    public func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state in
                guard state.free > 0 else {
                    state.waiting.append(continuation)
                    return false
                }
                state.free -= 1
                return true
            }
            if granted { continuation.resume() }
        }
    }

    /// Gives a held slot back: to the request that has waited longest, else to the pool.
    public func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}

/// A flag a request's handler raises when its client is gone, read by its generation thread.
public final class Cancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    /// A flag not raised.
    public init() {}

    /// Raises the flag.
    public func cancel() { flag.store(true, ordering: .relaxed) }
    /// Whether the flag is raised.
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}
