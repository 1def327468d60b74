import Foundation

/// The readiness signal of one (layer, expert): a latch that opens once when its load ends
/// (loaded or failed), so the decode step waits for exactly the experts it needs.
final class ExpertReadiness: @unchecked Sendable {
    private let condition = NSCondition()
    private var opened = false

    /// Opens the latch, waking every waiter.
    func open() {
        condition.lock()
        opened = true
        condition.broadcast()
        condition.unlock()
    }

    /// Whether the latch has opened.
    var isOpen: Bool {
        condition.lock()
        defer { condition.unlock() }
        return opened
    }

    /// Blocks until the latch is open.
    func wait() {
        condition.lock()
        while !opened { condition.wait() }
        condition.unlock()
    }
}
