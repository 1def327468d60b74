import Foundation

/// The readiness signal of one (layer, expert): a latch that opens once when its load ends
/// (loaded or failed), so the decode step waits for exactly the experts it needs.
final class ExpertReadiness: @unchecked Sendable {
    private let condition = NSCondition()
    private var isOpen = false

    /// Opens the latch, waking every waiter.
    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until the latch is open.
    func wait() {
        condition.lock()
        while !isOpen { condition.wait() }
        condition.unlock()
    }
}
