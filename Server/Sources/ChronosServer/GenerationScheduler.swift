import ChronosEngine
import ChronosStorage
import Foundation
import Synchronization

/// What a generation hands to the request that asked for it.
public enum GenerationEvent: Sendable {
    /// Text that may be sent, with the log-probabilities of the tokens it completes (when asked for).
    case text(String, [TokenLogprob])
    /// The generation ended.
    case finished(FinishReason, Usage)
}

/// A generation under way: its events, and the way to cancel it.
public struct GenerationHandle: Sendable {
    /// The text as it is generated, then the end.
    public let events: AsyncThrowingStream<GenerationEvent, any Error>
    /// Raised to stop the generation at its next token.
    public let cancellation: Cancellation
}

/// Runs requests' generations on threads of their own, at most `slots.count` at once, each
/// through its own session of the model's one expert store.
public final class GenerationScheduler: Sendable {
    /// The model.
    public let model: ServedModel
    /// The generations allowed at once.
    public let slots: GenerationSlots
    /// Where requests, tokens and timings are counted.
    public let metrics: ServerMetrics
    /// Where each decoding step's IO snapshot goes, for `GET /v1/chronos/events`.
    public let events = ExpertEventHub()
    /// Generations started so far: the last one's number.
    private let started = Atomic<Int>(0)

    /// A scheduler running at most `parallel` generations of `model` at once.
    public init(model: ServedModel, parallel: Int, metrics: ServerMetrics) {
        self.model = model
        slots = GenerationSlots(count: parallel)
        self.metrics = metrics
    }

    /// Starts `job` once a slot is free; its text and end arrive as events. Cancelling the
    /// handle, or ending the iteration of its events, stops the generation at its next token.
    public func start(_ job: CompletionJob) -> GenerationHandle {
        let (events, continuation) = AsyncThrowingStream<GenerationEvent, any Error>.makeStream()
        let cancellation = Cancellation()
        continuation.onTermination = { _ in cancellation.cancel() }
        let submitted = DispatchTime.now().uptimeNanoseconds
        let (model, slots, metrics, hub) = (self.model, self.slots, self.metrics, self.events)
        let generation = started.add(1, ordering: .relaxed).newValue
        Task {
            await slots.acquire()
            guard !cancellation.isCancelled else {
                slots.release()
                continuation.finish()
                return
            }
            let thread = Thread {
                defer { slots.release() }
                metrics.generationStarted()
                var first = true
                // The storage counters after the previous pass, from which each pass's own are taken.
                var previous = StorageMetrics()
                let onSnapshot = { (snapshot: OffloadSnapshot) in
                    let step = snapshot.storage.map { $0.since(previous) }
                    previous = snapshot.storage ?? previous
                    hub.publish { ExpertStepReport.json(snapshot, step: step, generation: generation, model: model) }
                }
                do {
                    let outcome = try model.generate(job, isCancelled: { cancellation.isCancelled }, onSnapshot: onSnapshot) {
                        text, logprobs in
                        if first {
                            first = false
                            metrics.firstToken(after: Double(DispatchTime.now().uptimeNanoseconds - submitted) / 1e9)
                        }
                        continuation.yield(.text(text, logprobs))
                    }
                    metrics.generationEnded(outcome)
                    if let reason = outcome.finishReason { continuation.yield(.finished(reason, outcome.usage)) }
                    continuation.finish()
                } catch {
                    metrics.generationFailed()
                    continuation.finish(throwing: error)
                }
            }
            thread.name = "chronos-generation"
            thread.stackSize = 8 << 20
            thread.start()
        }
        return GenerationHandle(events: events, cancellation: cancellation)
    }
}
