import Foundation
import Synchronization

/// The one pool of compute threads that every multi-threaded kernel shares.
///
/// `parallelFor` splits work into tasks that the caller and the pool's workers take from a
/// shared counter. Decoding issues hundreds of short parallel regions per token, so workers
/// spin briefly on the job state before sleeping on a condition variable, and the caller
/// spins for their completion: a region costs a few microseconds, not a wake-up. A worker joins
/// a job only while it is open; the caller closes it once every task is taken, and then waits
/// only for the workers that joined, so a worker still asleep when the tasks run out costs the
/// caller nothing. Nested or concurrent calls run serially on their caller, so a kernel called
/// from inside another parallel region never deadlocks or oversubscribes the cores.
/// Width: `CHRONOS_THREADS`, or the number of active processors.
public final class ThreadPool: @unchecked Sendable {
    /// The shared pool.
    public static let shared = ThreadPool(threadCount: ThreadPool.defaultThreadCount)

    /// Threads that run tasks, the calling thread included.
    public let threadCount: Int

    /// Multiply-adds (or weights read) below which a task costs more to hand to a worker than
    /// it saves: the kernels split no finer, and keep smaller work on the calling thread.
    public static let minimumTaskWork = 1 << 16

    /// Polls of the job state before a worker goes to sleep: roughly a millisecond, longer
    /// than the serial work between most of a decoding step's products, so that the next one
    /// finds the worker awake.
    private static let spinLimit = 1_000_000
    /// The same while threads outside the pool need the cores (roughly 100 µs).
    private static let briefSpinLimit = 100_000

    /// `state`'s flag that the current job still takes workers; below it, the workers that joined.
    private static let open: UInt64 = 1 << 31
    private static let joinedMask: UInt64 = open - 1

    private let condition = NSCondition()
    private let callLock = NSLock()
    /// The current job's generation (upper 32 bits, advanced under `condition` for each job),
    /// whether it is open, and how many workers joined it: one word, so that joining and
    /// closing cannot cross.
    private let state = Atomic<UInt64>(0)
    /// Threads outside the pool that need cores now (`shareCores`).
    private let outsideThreads = Atomic<Int>(0)
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
            let generation = (state.load(ordering: .relaxed) >> 32) &+ 1
            state.store(generation << 32 | Self.open, ordering: .releasing)
            condition.broadcast()
            condition.unlock()

            runTasks(body, taskCount: taskCount)

            // Every task is taken: close the job to late workers, then wait for those that
            // joined, so the closure stays valid until each has let go of it.
            let joined = Int(state.bitwiseAnd(~Self.open, ordering: .acquiringAndReleasing).oldValue & Self.joinedMask)
            var spins = 0
            while finished.load(ordering: .acquiring) < joined {
                spins += 1
                if spins % 1024 == 0 { sched_yield() }
            }
            job = nil
        }
    }

    /// Registers `threads` threads outside the pool that need cores while they run (an expert
    /// store's IO threads), or removes them with a negative count. While any are registered,
    /// workers spin only briefly before sleeping, so that they do not take those threads' cores.
    public func shareCores(_ threads: Int) {
        outsideThreads.wrappingAdd(threads, ordering: .relaxed)
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
        var seen: UInt64 = 0
        while true {
            var spins = 0
            let limit = outsideThreads.load(ordering: .relaxed) > 0 ? Self.briefSpinLimit : Self.spinLimit
            while state.load(ordering: .relaxed) >> 32 == seen && spins < limit { spins += 1 }
            if state.load(ordering: .relaxed) >> 32 == seen {
                condition.lock()
                while state.load(ordering: .relaxed) >> 32 == seen { condition.wait() }
                condition.unlock()
            }
            // Join the newest job if it is still open; one that closed ran without this worker.
            var current = state.load(ordering: .acquiring)
            seen = current >> 32
            while current & Self.open != 0 {
                let (joined, actual) = state.compareExchange(
                    expected: current, desired: current + 1, successOrdering: .acquiring, failureOrdering: .acquiring)
                if joined {
                    runCurrentJob()
                    finished.wrappingAdd(1, ordering: .releasing)
                    break
                }
                if actual >> 32 != seen { break }
                current = actual
            }
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
