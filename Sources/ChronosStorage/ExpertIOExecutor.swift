import Foundation

/// Runs the loads an expert store queues: the seam between the store and the threads that read.
///
/// `ThreadedIOExecutor` gives the store dedicated IO threads, on which the loads run as soon as
/// they are queued and a decode thread that needs one blocks until it ends; `SteppedIOExecutor`
/// runs them one at a time when a test says so, on the test's own thread.
public protocol ExpertIOExecutor: Sendable {
    /// Takes over the loads of a store being made; called once, from its initializer.
    func start(_ loads: ExpertLoads)

    /// Whether a thread that waits for a load runs the queued loads itself, because no other
    /// thread will; otherwise it blocks until an IO thread ends the load.
    var waitersRunLoads: Bool { get }
}

/// The loads of one expert store, as its executor drives them.
public struct ExpertLoads: Sendable {
    let store: ExpertStore

    /// How many loads may run at once (`ExpertStoreSettings.ioThreads`).
    public var concurrency: Int { store.settings.ioThreads }

    /// Runs loads on the calling thread, waiting whenever none can start, until the store closes:
    /// the body of one dedicated IO thread.
    public func serve() { store.serveLoads() }

    /// Runs the most urgent queued load that can get room, on the calling thread, and publishes
    /// it; false when none can start now (or the store is closed).
    @discardableResult
    public func runNext() -> Bool { store.runNextLoad() }
}

/// The production executor: `concurrency` dedicated `Thread`s named `chronos-io-N`, never the
/// Swift concurrency pool, each serving the store's loads until it closes.
public struct ThreadedIOExecutor: ExpertIOExecutor {
    /// An executor that starts threads for each store it is given.
    public init() {}

    /// Decode threads block while the IO threads load.
    public var waitersRunLoads: Bool { false }

    /// Starts the store's IO threads.
    public func start(_ loads: ExpertLoads) {
        for index in 0..<loads.concurrency {
            let thread = Thread { loads.serve() }
            thread.name = "chronos-io-\(index)"
            thread.start()
        }
    }
}

/// The test executor: no thread of its own. Queued loads wait until the test runs them with
/// `runNext()` or `runUntilIdle()`, and a decode call that waits for a load (`weights(for:)`
/// under `wait` or `sync`) runs the queued loads itself, in the order an IO thread would.
public final class SteppedIOExecutor: ExpertIOExecutor, @unchecked Sendable {
    private let lock = NSLock()
    private var loads: ExpertLoads?

    /// An executor for one store.
    public init() {}

    /// Waiting decode calls run the loads themselves.
    public var waitersRunLoads: Bool { true }

    /// Keeps the store's loads for the test to run.
    public func start(_ loads: ExpertLoads) {
        lock.withLock {
            precondition(self.loads == nil, "a stepped IO executor serves one store")
            self.loads = loads
        }
    }

    /// Runs the most urgent queued load that can start, on this thread; false when none can.
    @discardableResult
    public func runNext() -> Bool {
        guard let loads = lock.withLock({ self.loads }) else { return false }
        return loads.runNext()
    }

    /// Runs queued loads until none can start; returns how many ran.
    @discardableResult
    public func runUntilIdle() -> Int {
        var count = 0
        while runNext() { count += 1 }
        return count
    }
}
