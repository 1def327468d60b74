import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// What an offloaded generation produced and measured.
public struct OffloadedGenerationResult: Sendable {
    /// The tokens, text and timing, as `Generator` reports them.
    public var generation: GenerationResult
    /// The storage metrics of the run.
    public var metrics: OffloadRunMetrics
    /// Each pass's distinct routed experts, in the order its layers needed them (what an expert
    /// store is asked for, step by step); the first pass is the prefill.
    public var routing: [[ExpertKey]]
}

/// Generation with offloaded experts: the prefill and decode loop of `Generator`, each
/// generation an `OffloadSession` whose steps each forward pass drives. Each pass yields an
/// `OffloadSnapshot` to `onSnapshot` and to every `snapshots()` stream.
public final class OffloadedGenerator {
    /// The model and its storage.
    public let offloaded: OffloadedModel
    /// Turns ids into text; optional for id-only models.
    public let tokenizer: Tokenizer?
    /// Called after every forward pass.
    public var onSnapshot: ((OffloadSnapshot) -> Void)?
    /// Where the passes run together with other generations' (nil: each on its own).
    public var batcher: PassBatcher?
    private var continuations: [AsyncStream<OffloadSnapshot>.Continuation] = []

    /// A generator over `offloaded`.
    public init(offloaded: OffloadedModel, tokenizer: Tokenizer?) {
        self.offloaded = offloaded
        self.tokenizer = tokenizer
    }

    /// A stream of the snapshots of every later forward pass, until `finishSnapshots()`.
    public func snapshots() -> AsyncStream<OffloadSnapshot> {
        let (stream, continuation) = AsyncStream<OffloadSnapshot>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        continuations.append(continuation)
        return stream
    }

    /// Ends every snapshot stream.
    public func finishSnapshots() {
        for continuation in continuations { continuation.finish() }
        continuations = []
    }

    /// Generates for `request`, streaming tokens to `onToken` (return false to stop), and
    /// measures the run; `name` labels its metrics. When `isCancelled` says so before a pass,
    /// the generation ends (`OffloadSession.finish` drops the expert loads queued for it).
    public func generate(
        _ request: GenerationRequest, name: String? = nil, isCancelled: () -> Bool = { false },
        onToken: (GeneratedToken) -> Bool = { _ in true }
    ) throws -> OffloadedGenerationResult {
        batcher?.join()
        defer { batcher?.leave() }
        let session = OffloadSession(offloaded: offloaded, name: name, batcher: batcher)
        session.onSnapshot = { [self] snapshot in
            onSnapshot?(snapshot)
            for continuation in continuations { continuation.yield(snapshot) }
        }
        let generation = try Generator(model: offloaded.model, tokenizer: tokenizer).run(
            request, cache: session.cache, forward: { ids, _, phase in try session.forward(ids, phase: phase) },
            isCancelled: isCancelled, onToken: onToken)
        return session.finish(generation)
    }
}
