import ChronosModel
import Foundation

/// Runs the forward passes of generations that decode at the same time on one model as one pass
/// over all of them (continuous batching): each generation's thread hands over its pass and
/// waits; one of the waiting threads runs every pass handed over so far as one
/// `LanguageModel.forward(_:options:)` call, which reads the weights (routed experts included)
/// once for all their tokens, and hands each generation its output. A generation joins or
/// leaves at any pass, and a new prompt runs in the same pass as the others' decode steps.
///
/// A pass starts as soon as every member generation has handed over its next pass, or when the
/// gather window has passed since the first was handed over or the previous pass ended,
/// whichever is later: `gatherFraction` of the previous pass's duration, at least
/// `minimumGatherWindow` (a member busy elsewhere holds the others up for a small share of a
/// pass; running it alone would cost a whole one). Counting from the end of the previous pass
/// lets the generations it served hand over their next passes too, instead of the passes handed
/// over while it ran leaving without them and the two groups alternating from then on. Passes whose options
/// differ never share a pass. When a shared pass throws, each generation's cache is returned to
/// where it was and each runs its pass alone, so that a failure reaches only the generations it
/// belongs to; a generation whose cache cannot be returned exactly receives the error.
public final class PassBatcher: @unchecked Sendable {
    /// The model every pass runs on.
    public let model: any LanguageModel
    /// The share of the previous pass's duration a pass waits for the members that have not
    /// handed over theirs.
    public let gatherFraction: Double
    /// Seconds a pass may always wait for them.
    public let minimumGatherWindow: Double

    private let condition = NSCondition()
    private var members = 0
    private var queue: [Request] = []
    private var running = false
    /// When the oldest pass in `queue` was handed over, or the previous pass ended if later
    /// (`DispatchTime` nanoseconds).
    private var oldestQueuedAt: UInt64 = 0
    private var counts = (passes: 0, sequences: 0)
    /// How long the previous pass ran, in nanoseconds.
    private var lastPassNanoseconds: UInt64 = 0

    /// One generation's pass, and its output once it has run.
    private final class Request {
        let sequence: ForwardSequence
        let options: ForwardOptions
        var result: Result<ForwardOutput, any Error>?

        init(sequence: ForwardSequence, options: ForwardOptions) {
            self.sequence = sequence
            self.options = options
        }
    }

    /// A batcher of passes on `model`, each waiting for the members that are not ready at most
    /// `gatherFraction` of the previous pass's duration or `minimumGatherWindow` seconds,
    /// whichever is longer.
    public init(model: any LanguageModel, gatherFraction: Double = 0.25, minimumGatherWindow: Double = 0.001) {
        self.model = model
        self.gatherFraction = gatherFraction
        self.minimumGatherWindow = minimumGatherWindow
    }

    /// A generation begins: passes wait for its passes too.
    public func join() {
        condition.lock()
        members += 1
        condition.unlock()
    }

    /// A generation ended: passes no longer wait for it.
    public func leave() {
        condition.lock()
        members -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Passes run so far, and the sequences they ran: their ratio is the mean batch.
    public var passCounts: (passes: Int, sequences: Int) {
        condition.lock()
        defer { condition.unlock() }
        return counts
    }

    /// `model.forward(ids, cache:, options:)`, run in one pass with the other members' passes
    /// handed over meanwhile; blocks until its pass has run.
    public func forward(_ ids: [Int], cache: ModelCache, options: ForwardOptions) throws -> ForwardOutput {
        let request = Request(sequence: ForwardSequence(ids: ids, cache: cache), options: options)
        condition.lock()
        if queue.isEmpty { oldestQueuedAt = DispatchTime.now().uptimeNanoseconds }
        queue.append(request)
        condition.broadcast()
        while request.result == nil {
            if running {
                condition.wait()
                continue
            }
            let window = max(minimumGatherWindow * 1e9, gatherFraction * Double(lastPassNanoseconds))
            let deadline = oldestQueuedAt + UInt64(window)
            let now = DispatchTime.now().uptimeNanoseconds
            if queue.count < members && now < deadline {
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
                continue
            }
            // Lead: run every queued pass that shares the oldest one's options.
            let options = queue[0].options
            let batch = queue.filter { $0.options == options }
            queue.removeAll { $0.options == options }
            if !queue.isEmpty { oldestQueuedAt = DispatchTime.now().uptimeNanoseconds }
            running = true
            counts.passes += 1
            counts.sequences += batch.count
            condition.unlock()
            let started = DispatchTime.now().uptimeNanoseconds
            let outcomes = run(batch, options: options)
            condition.lock()
            let ended = DispatchTime.now().uptimeNanoseconds
            lastPassNanoseconds = ended - started
            if !queue.isEmpty { oldestQueuedAt = ended }
            for (member, outcome) in zip(batch, outcomes) { member.result = outcome }
            running = false
            condition.broadcast()
        }
        condition.unlock()
        return try request.result!.get()
    }

    /// Runs `batch` as one pass; when that throws with several generations in it, each one's
    /// cache is rewound and its pass runs alone.
    private func run(_ batch: [Request], options: ForwardOptions) -> [Result<ForwardOutput, any Error>] {
        let positions = batch.map(\.sequence.cache.offset)
        do {
            return try model.forward(batch.map(\.sequence), options: options).map { .success($0) }
        } catch {
            guard batch.count > 1 else { return [.failure(error)] }
            return zip(batch, positions).map { request, position in
                guard request.sequence.cache.rewind(to: position) else { return .failure(error) }
                return Result { try model.forward([request.sequence], options: options)[0] }
            }
        }
    }
}
