import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// One generation on an offloaded model: the steps the generator drives, in order, and what
/// the expert store and the predictors do at each.
///
/// - **The prompt begins** (`forward(_:phase: .prefill)`): the store is told a step of
///   `ids.count` tokens begins. As soon as the prompt-level predictor's input layer has run over
///   the prompt (**a layer finished**), its set is queued for loading at the lowest priority, so
///   those loads overlap the rest of the prefill.
/// - **A decode step begins** (`forward(_:phase: .decode)`): the eviction is told the
///   lookahead's chance of use for every expert; the predictions for this pass and the next
///   replace the previous ones (stale queued loads are cancelled): the routing that followed the
///   same text earlier when the token about to run repeats earlier text (`RepetitionPredictor`),
///   else the lookahead head's predictions from the pass before. During the pass every decoder
///   layer previews the next MoE layer's routing before it asks for its own routed experts, and
///   those experts queue right after the layer's own needs; a lookahead head that reads an
///   early layer predicts the next tokens when **that layer finished**, and their loads queue
///   behind the running token's own.
/// - **A step ended**: the store is told; the lookahead predicts from the pass's output; an
///   `OffloadSnapshot` goes to `onSnapshot`.
/// - `finish` returns the generation with its storage metrics and the routing of each pass.
///
/// Routing decisions feed the prediction scorer throughout. The passes take their experts from a
/// session of the tiered store of their own (`ExpertStore.Session`), so generations may run at
/// the same time on one model; the predictions and the storage counters are the store's, shared.
public final class OffloadSession: ForwardObserver {
    /// The model and its storage.
    public let offloaded: OffloadedModel
    /// The KV cache of this generation; the session observes its forward passes.
    public let cache: ModelCache
    /// Called after every forward pass.
    public var onSnapshot: ((OffloadSnapshot) -> Void)?
    /// Where the passes run together with other generations' (nil: each on its own).
    private let batcher: PassBatcher?
    private let name: String?
    /// This generation's session of the tiered store, the provider of its passes.
    private let storeSession: ExpertStore.Session?
    private let scorer: PredictionScorer
    private let repetition: RepetitionPredictor?
    private let lookaheadLayer: Int?
    private var forecast = LookaheadForecast.none
    /// The lookahead's prediction from its layer in the running decode pass, if it made one.
    private var earlyForecast: LookaheadForecast?
    private var phase = ForwardPhase.prefill
    private var passLength = 0
    private var position = 0
    private let start: StorageMetrics
    private var afterPrefill: StorageMetrics
    private var decodeSteps = 0
    private let began = DispatchTime.now().uptimeNanoseconds
    /// Each pass's distinct experts in the order they were needed.
    private var routing: [[ExpertKey]] = []
    private var prefillFallbackSlots = 0
    private var decodeFallbackSlots = 0

    /// A session for one generation on `offloaded`, whose passes run through `batcher` when
    /// given; `name` labels its metrics.
    public init(offloaded: OffloadedModel, name: String? = nil, batcher: PassBatcher? = nil) {
        self.offloaded = offloaded
        self.name = name
        self.batcher = batcher
        scorer = PredictionScorer(totalPairs: offloaded.model.summary.expertsPerLayer.reduce(0, +))
        repetition = offloaded.predictsRepetition ? RepetitionPredictor() : nil
        lookaheadLayer = offloaded.lookahead?.inputLayer
        cache = offloaded.model.makeCache()
        storeSession = offloaded.store?.makeSession()
        cache.experts = storeSession
        offloaded.store?.resetPredictions()
        offloaded.dropPageCacheIfCold()
        // A new store session has met no needs yet.
        let storage = offloaded.storageMetrics() ?? StorageMetrics()
        start = storeSession == nil ? storage : storage.withGenerationCounts(of: StorageMetrics())
        afterPrefill = start
        cache.observer = self
    }

    /// Runs one forward pass of `phase` over `ids`: its step begins, the model runs (telling
    /// the session what it does), the step ends; returns the logits.
    func forward(_ ids: [Int], phase: ForwardPhase) throws -> Tensor {
        switch phase {
        case .prefill: promptBegins(ids)
        case .decode: decodeStepBegins(ids)
        }
        let options = ForwardOptions(predictsLookahead: offloaded.lookahead != nil, hiddenLayers: lookaheadLayer.map { [$0] } ?? [])
        let output =
            try batcher?.forward(ids, cache: cache, options: options) ?? offloaded.model.forward(ids, cache: cache, options: options)
        stepEnded(ForwardObservation(output: output, ids: ids))
        return output.logits
    }

    /// The prompt's pass begins.
    private func promptBegins(_ ids: [Int]) {
        beginPass(ids, phase: .prefill)
        storeSession?.beginStep(tokens: ids.count)
    }

    /// A decode pass begins: the predictions for it and the passes after are made while the
    /// store is still in the step before, which is what they are scored from.
    private func decodeStepBegins(_ ids: [Int]) {
        beginPass(ids, phase: .decode)
        if let store = offloaded.store {
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
        storeSession?.beginStep(tokens: ids.count)
    }

    private func beginPass(_ ids: [Int], phase: ForwardPhase) {
        self.phase = phase
        passLength = ids.count
        position = cache.offset
        earlyForecast = nil
        routing.append([])
        repetition?.append(ids, at: cache.offset)
    }

    /// The pass ended: the store is told, the lookahead predicts from its output, and a
    /// snapshot is published.
    private func stepEnded(_ observation: ForwardObservation) {
        storeSession?.endStep()
        if phase == .prefill {
            afterPrefill = storageMetrics() ?? StorageMetrics()
        } else {
            decodeSteps += 1
        }
        if let lookahead = offloaded.lookahead { forecast = earlyForecast ?? lookahead.predict(after: observation) }
        onSnapshot?(
            OffloadSnapshot(
                isPrefill: phase == .prefill, position: observation.lastPosition, decodeSteps: decodeSteps,
                elapsedSeconds: Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9,
                storage: storageMetrics()?.since(start),
                residentBytes: offloaded.store?.residentBytes() ?? [:],
                fallbackSlots: prefillFallbackSlots + decodeFallbackSlots, routed: routing.last ?? []))
    }

    // MARK: ForwardObserver

    /// Decode passes preview the next MoE layer when the run's predictors include it.
    public var previewsNextLayer: Bool { phase == .decode && offloaded.previewsNextLayer && offloaded.store != nil }

    /// The previewed experts of the next MoE layer are queued right after this layer's needs.
    public func previewed(layer: Int, experts: [Int]) {
        let keys = experts.map { ExpertKey(layer: layer, expert: $0) }
        offloaded.store?.predict(nextLayer: keys, layer: layer)
        scorer.recordNextLayer(position: position, layer: layer, keys)
    }

    /// The decision is scored, remembered for repetitions and counted.
    public func routed(_ decision: RoutingDecision) {
        scorer.observe(decision)
        repetition?.observe(decision)
        for expert in decision.experts {
            let key = ExpertKey(layer: decision.layer, expert: expert)
            if !routing[routing.count - 1].contains(key) { routing[routing.count - 1].append(key) }
        }
        if phase == .prefill {
            prefillFallbackSlots += decision.missing.count
        } else {
            decodeFallbackSlots += decision.missing.count
        }
    }

    /// In the prefill, the prompt-level predictor's input layer queues the prompt's set; in a
    /// decode pass, the lookahead head's input layer prefetches the next tokens' experts.
    public func layerFinished(_ layer: Int, hidden: Tensor) {
        guard let store = offloaded.store else { return }
        switch phase {
        case .prefill:
            guard let predictor = offloaded.promptPredictor, layer == predictor.inputLayer else { return }
            let set = predictor.predict(hidden: hidden, budget: offloaded.promptSetBudget())
            store.preload(promptSet: set)
            scorer.recordPromptSet(set, promptLength: passLength)
        case .decode:
            guard let lookahead = offloaded.lookahead, layer == lookaheadLayer else { return }
            earlyForecast = lookahead.predict(hidden: hidden)
            if let steps = earlyForecast?.steps, !steps.isEmpty { store.prefetch(ahead: steps) }
        }
    }

    // MARK: Finishing

    /// The storage metrics so far: the store's IO, with what this generation's own needs met
    /// (needed, hits, missed bytes, fallbacks, stall) from its store session, so that
    /// generations sharing the store are counted apart; nil for resident experts.
    private func storageMetrics() -> StorageMetrics? {
        guard let storage = offloaded.storageMetrics() else { return nil }
        guard let storeSession else { return storage }
        return storage.withGenerationCounts(of: storeSession.metrics())
    }

    /// The generation with the run's storage metrics and the routing of each pass; a generation
    /// stopped early drops the loads still queued for it (`ExpertStore.Session.cancelQueuedLoads`).
    public func finish(_ generation: GenerationResult) -> OffloadedGenerationResult {
        if generation.stopReason == .cancelled { storeSession?.cancelQueuedLoads() }
        let settings = offloaded.settings
        let end = storageMetrics() ?? StorageMetrics()
        var metrics = OffloadRunMetrics(
            name: name ?? settings.mode.rawValue, mode: settings.mode,
            policy: settings.mode == .lru || settings.mode == .chronos ? settings.policy : nil,
            budgetBytes: offloaded.budgetBytes, totalExpertBytes: offloaded.totalExpertBytes)
        metrics.prompts = 1
        metrics.promptTokens = generation.metrics.promptTokens
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
        metrics.fallbackSlots = decodeFallbackSlots
        metrics.prefillFallbackSlots = prefillFallbackSlots
        metrics.predictions = scorer.report()
        metrics.faultLog = offloaded.store?.faults() ?? []
        return OffloadedGenerationResult(generation: generation, metrics: metrics, routing: routing)
    }
}
