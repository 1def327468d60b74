import Foundation
import Synchronization

/// The one pool of compute threads that every multi-threaded kernel shares.
///
/// `parallelFor` splits work into tasks that the caller and the pool's workers take from a
/// shared counter. Decoding issues hundreds of short parallel regions per token, so workers
/// spin briefly on the job counter before sleeping on a condition variable, and the caller
/// spins for their completion: a region costs a few microseconds, not a wake-up. Nested or
/// concurrent calls run serially on their caller, so a kernel called from inside another
/// parallel region never deadlocks or oversubscribes the cores.
/// Width: `CHRONOS_THREADS`, or the number of active processors.
public final class ThreadPool: @unchecked Sendable {
    /// The shared pool.
    public static let shared = ThreadPool(threadCount: ThreadPool.defaultThreadCount)

    /// Threads that run tasks, the calling thread included.
    public let threadCount: Int

    /// Polls of the job counter before a worker goes to sleep (roughly 100 µs).
    private static let spinLimit = 100_000

    private let condition = NSCondition()
    private let callLock = NSLock()
    /// Incremented (under `condition`) each time a job is published.
    private let published = Atomic<Int>(0)
    /// Workers that have finished the current job.
    private let finished = Atomic<Int>(0)
    private let nextTask = Atomic<Int>(0)
    private var job: ((Int) -> Void)?
    private var taskCount = 0

    /// The thread counts a pool may have here: one to four per active processor.
    public static var threadCountRange: ClosedRange<Int> { 1...(4 * max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    /// `CHRONOS_THREADS` when set to a count in `threadCountRange`, else the active processor
    /// count (`checkEnvironment` refuses other values before a command starts).
    public static var defaultThreadCount: Int {
        (try? environmentThreadCount()) ?? ProcessInfo.processInfo.activeProcessorCount
    }

    /// `CHRONOS_THREADS`, or nil when unset; throws when it is not a count in `threadCountRange`.
    public static func environmentThreadCount(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(InvalidSetting)
        -> Int?
    {
        guard let text = environment["CHRONOS_THREADS"], !text.isEmpty else { return nil }
        return try InvalidSetting.integer("CHRONOS_THREADS", text, in: threadCountRange)
    }

    /// Starts `threadCount - 1` workers; the caller of `parallelFor` is the remaining one.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        for index in 1..<self.threadCount {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "chronos-compute-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(task)` for every task in `0..<taskCount`, spread over the pool, and returns
    /// when all have finished.
    public func parallelFor(_ taskCount: Int, _ body: (Int) -> Void) {
        if taskCount <= 0 { return }
        if taskCount == 1 || threadCount == 1 || !callLock.try() {
            for task in 0..<taskCount { body(task) }
            return
        }
        defer { callLock.unlock() }
        withoutActuallyEscaping(body) { body in
            job = body
            self.taskCount = taskCount
            nextTask.store(0, ordering: .relaxed)
            finished.store(0, ordering: .relaxed)
            condition.lock()
            published.wrappingAdd(1, ordering: .releasing)
            condition.broadcast()
            condition.unlock()

            runTasks(body, taskCount: taskCount)

            // Every worker takes part in every job, so the closure stays valid until all report.
            var spins = 0
            while finished.load(ordering: .acquiring) < threadCount - 1 {
                spins += 1
                if spins % 1024 == 0 { sched_yield() }
            }
            job = nil
        }
    }

    /// Splits `0..<count` into at most one contiguous chunk per thread (each at least
    /// `minChunk` long) and runs `body` on each chunk in parallel.
    public func parallelChunks(_ count: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let chunks = max(1, min(threadCount, count / max(1, minChunk)))
        let size = (count + chunks - 1) / max(chunks, 1)
        parallelFor(chunks) { chunk in
            let start = chunk * size
            let end = min(count, start + size)
            if start < end { body(start..<end) }
        }
    }

    private func runTasks(_ body: (Int) -> Void, taskCount: Int) {
        while true {
            let task = nextTask.wrappingAdd(1, ordering: .relaxed).oldValue
            if task >= taskCount { return }
            body(task)
        }
    }

    private func workerLoop() {
        var seen = 0
        while true {
            var spins = 0
            while published.load(ordering: .acquiring) == seen && spins < Self.spinLimit { spins += 1 }
            if published.load(ordering: .acquiring) == seen {
                condition.lock()
                while published.load(ordering: .acquiring) == seen { condition.wait() }
                condition.unlock()
            }
            seen = published.load(ordering: .acquiring)
            runCurrentJob()
            finished.wrappingAdd(1, ordering: .releasing)
        }
    }

    /// Runs tasks of the current job. Kept out of line so that every reference to the
    /// caller's closure is released before the worker reports itself done.
    @inline(never)
    private func runCurrentJob() {
        guard let body = job else { return }
        runTasks(body, taskCount: taskCount)
    }
}
