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

/// Generation with offloaded experts: the prefill and decode loop of `Generator`, with each
/// forward pass wired to the expert store and the predictors.
///
/// Around each pass the store is told a step begins and ends; during the prefill, as soon as
/// the prompt-level predictor's input layer has run over the prompt, its set is queued for
/// loading (lowest priority), so those loads overlap the rest of the prefill (the prefill
/// scheduler); during each decode pass every decoder layer previews the next MoE layer's
/// routing before it asks for its own routed experts (attention and shared experts done), and
/// those experts are queued right after the layer's own needs; a lookahead head that reads an
/// early layer's hidden state predicts the next tokens as soon as that layer has run, and their
/// loads queue behind the running token's own, so they use the disk while the rest of the pass
/// computes; before every decode pass the lookahead predictions for it and the passes after
/// replace the previous ones (stale queued loads are cancelled): the routing that followed the
/// same text earlier when the token about to run repeats earlier text (`RepetitionPredictor`),
/// else the lookahead head's predictions from the pass before, whose chance of use for every
/// expert also informs the eviction whichever predicts the loads. Routing decisions feed the
/// prediction scorer. Each pass yields an `OffloadSnapshot` to `onSnapshot` and to every
/// `snapshots()` stream.
public final class OffloadedGenerator {
    /// The model and its storage.
    public let offloaded: OffloadedModel
    /// Turns ids into text; optional for id-only models.
    public let tokenizer: Tokenizer?
    /// Called after every forward pass.
    public var onSnapshot: ((OffloadSnapshot) -> Void)?
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
    /// measures the run; `name` labels its metrics.
    public func generate(_ request: GenerationRequest, name: String? = nil,
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> OffloadedGenerationResult {
        let offloaded = self.offloaded, model = offloaded.model, store = offloaded.store
        let settings = offloaded.settings
        let scorer = PredictionScorer(totalPairs: model.summary.expertsPerLayer.reduce(0, +))
        let repetition = offloaded.predictsRepetition ? RepetitionPredictor() : nil
        let recorder = RoutingRecorder(scorer: scorer, repetition: repetition)
        let cache = model.makeCache()
        cache.routingObserver = { recorder.observe($0) }
        var forecast = LookaheadForecast.none

        store?.resetPredictions()
        offloaded.dropPageCacheIfCold()
        let start = offloaded.storageMetrics() ?? StorageMetrics()
        var afterPrefill = start
        var decodeSteps = 0
        let began = DispatchTime.now().uptimeNanoseconds
        let generation = try Generator(model: model, tokenizer: tokenizer).run(request, cache: cache, forward: { ids, cache, phase in
            recorder.isPrefill = phase == .prefill
            recorder.steps.append([])
            repetition?.append(ids, at: cache.offset)
            if phase == .decode, let store {
                store.forecast(chanceOfUse: forecast.chanceOfUse)
                let repeated = repetition?.predict()
                if repetition != nil { scorer.recordRepetition(at: cache.offset, repeated?.steps.first ?? []) }
                if let repeated {
                    store.predict(lookahead: repeated.steps, source: .repetition(matched: repeated.matched))
                    scorer.recordLookahead(after: cache.offset - 1, repeated.steps)
                } else if !forecast.steps.isEmpty {
                    store.predict(lookahead: forecast.steps, source: .head)
                    scorer.recordLookahead(after: cache.offset - 1, forecast.steps)
                }
            }
            store?.beginStep(tokens: ids.count)
            var onHidden: ((Int, Tensor) -> Void)? = nil
            if phase == .prefill, let predictor = offloaded.promptPredictor, let store {
                onHidden = { layer, hidden in
                    guard layer == predictor.inputLayer else { return }
                    let set = predictor.predict(hidden: hidden, budget: offloaded.promptSetBudget())
                    store.preload(promptSet: set)
                    scorer.recordPromptSet(set, promptLength: ids.count)
                }
            }
            cache.nextLayerObserver = nil
            if phase == .decode, offloaded.previewsNextLayer, let store {
                let position = cache.offset
                cache.nextLayerObserver = { layer, experts in
                    let keys = experts.map { ExpertKey(layer: layer, expert: $0) }
                    store.predict(nextLayer: keys, layer: layer)
                    scorer.recordNextLayer(position: position, layer: layer, keys)
                }
            }
            var early: LookaheadForecast?
            let lookaheadLayer = offloaded.lookahead?.inputLayer
            if phase == .decode, let store, let lookahead = offloaded.lookahead, let lookaheadLayer {
                onHidden = { layer, hidden in
                    guard layer == lookaheadLayer else { return }
                    early = lookahead.predict(hidden: hidden)
                    if let steps = early?.steps, !steps.isEmpty { store.prefetch(ahead: steps) }
                }
            }
            let observation = try ForwardObservation.forward(model, ids: ids, cache: cache, keeping: lookaheadLayer.map { [$0] } ?? [],
                                                             onHidden: onHidden)
            store?.endStep()
            if phase == .prefill {
                afterPrefill = offloaded.storageMetrics() ?? StorageMetrics()
            } else {
                decodeSteps += 1
            }
            if let lookahead = offloaded.lookahead { forecast = early ?? lookahead.predict(after: observation) }
            self.publish(OffloadSnapshot(
                isPrefill: phase == .prefill, position: observation.lastPosition, decodeSteps: decodeSteps,
                elapsedSeconds: Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9,
                storage: offloaded.storageMetrics()?.since(start), residentBytes: store?.residentBytes() ?? [:],
                fallbackSlots: recorder.prefillFallbackSlots + recorder.decodeFallbackSlots))
            return observation.logits
        }, onToken: onToken)

        let end = offloaded.storageMetrics() ?? StorageMetrics()
        var metrics = OffloadRunMetrics(
            name: name ?? settings.mode.rawValue, mode: settings.mode,
            policy: settings.mode == .lru || settings.mode == .chronos ? settings.policy : nil,
            budgetBytes: offloaded.budgetBytes, totalExpertBytes: offloaded.totalExpertBytes)
        metrics.prompts = 1
        metrics.promptTokens = request.promptIds.count
        metrics.generatedTokens = generation.ids.count
        metrics.decodeSteps = decodeSteps
        metrics.prefillSeconds = generation.metrics.timeToFirstToken
        metrics.decodeSeconds = generation.metrics.decodeSeconds
        metrics.prefill = afterPrefill.since(start)
        metrics.decode = end.since(afterPrefill)
        if settings.mode == .resident {
            metrics.prefill.peakResidentBytes = offloaded.totalExpertBytes
            metrics.decode.peakResidentBytes = offloaded.totalExpertBytes
        }
        metrics.fallbackSlots = recorder.decodeFallbackSlots
        metrics.prefillFallbackSlots = recorder.prefillFallbackSlots
        metrics.predictions = scorer.report()
        metrics.faultLog = store?.faults() ?? []
        return OffloadedGenerationResult(generation: generation, metrics: metrics, routing: recorder.steps)
    }

    private func publish(_ snapshot: OffloadSnapshot) {
        onSnapshot?(snapshot)
        for continuation in continuations { continuation.yield(snapshot) }
    }
}

/// Collects what the routing observer reports during one generation.
private final class RoutingRecorder {
    let scorer: PredictionScorer
    let repetition: RepetitionPredictor?
    var isPrefill = true
    /// Each pass's distinct experts in the order they were needed.
    var steps: [[ExpertKey]] = []
    var prefillFallbackSlots = 0
    var decodeFallbackSlots = 0

    init(scorer: PredictionScorer, repetition: RepetitionPredictor?) {
        self.scorer = scorer
        self.repetition = repetition
    }

    func observe(_ decision: RoutingDecision) {
        scorer.observe(decision)
        repetition?.observe(decision)
        for expert in decision.experts {
            let key = ExpertKey(layer: decision.layer, expert: expert)
            if !steps[steps.count - 1].contains(key) { steps[steps.count - 1].append(key) }
        }
        if isPrefill {
            prefillFallbackSlots += decision.missing.count
        } else {
            decodeFallbackSlots += decision.missing.count
        }
    }
}
