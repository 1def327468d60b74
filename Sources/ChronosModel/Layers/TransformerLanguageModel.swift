import ChronosFormats
import ChronosTensor
import Foundation

/// The decoder-only transformer every architecture here is an instance of: embedding, decoder
/// layers, final RMSNorm, LM head and, when the architecture has one, the lookahead router head.
/// Architectures differ only in their `TransformerConfiguration` (each layer's attention and
/// feed-forward, biases, norms) and their checkpoint names.
///
/// Written only with `Tensor` ops, so the same forward serves a whole prompt, one token at a
/// time and training: build the model from `requiringGradient()` copies of its weights, run
/// `forward(_:cache:options:)` under `Autograd.recording`, and update `namedParameters()` in
/// place. Routed experts come from the `ExpertProvider` (all resident by default).
public final class TransformerLanguageModel: LanguageModel {
    let configuration: TransformerConfiguration
    let keys: CheckpointKeys
    public let summary: ModelSummary
    public let parameterCounts: ParameterCounts
    public let experts: any ExpertProvider
    /// `config.json` as `save(to:)` writes it.
    private let configJSON: Data
    /// Every parameter's name and shape, in checkpoint order, routed experts included.
    let layout: [ParameterSpec]
    /// The parameters outside the routed experts, by checkpoint name.
    private let dense: [String: Tensor]
    /// `[vocab, hidden]`.
    let embedding: Tensor
    let layers: [DecoderLayer]
    let finalNorm: Tensor
    /// `[vocab, hidden]`: the embedding table itself when tied.
    let lmHead: Tensor
    let lookahead: LookaheadRouter?
    /// For each layer, the next layer with a routed mixture (the one it previews), if any.
    private let nextMixtureLayer: [Int?]

    /// A model over `weights` (checkpoint names as `keys` spells them), each checked against the
    /// shape `configuration` implies; a tensor the configuration does not name is an error.
    /// Routed experts come from `experts`, or from `weights` (all resident) when it is nil.
    /// `configJSON` is the `config.json` the model was described by; `location` names where the
    /// weights came from in errors.
    init(
        configuration c: TransformerConfiguration, keys: CheckpointKeys, configJSON: Data, weights: [String: Tensor],
        experts provider: (any ExpertProvider)?, location: String
    ) throws {
        let layout = c.parameterLayout(keys: keys)
        let names = Set(layout.map(\.name))
        if let unused = weights.keys.sorted().first(where: { !names.contains($0) }) {
            throw ModelError.unusedTensor(name: unused, directory: location)
        }
        var dense: [String: Tensor] = [:], residentExperts: [ExpertKey: [String: Tensor]] = [:]
        var denseParameters = 0, denseBytes = 0, routedParameters = 0, activeRoutedParameters = 0
        for spec in layout {
            if spec.expert != nil { routedParameters += spec.shape.reduce(1, *) }
            guard spec.expert == nil || provider == nil else { continue }
            guard let tensor = weights[spec.name] else { throw ModelError.missingTensor(name: spec.name, directory: location) }
            // Block formats hold matrices, which the kernels multiply or gather rows of.
            guard tensor.dtype.isFloatingPoint || (tensor.dtype.isQuantized && spec.shape.count == 2) else {
                throw ModelError.unsupportedDType(tensor: spec.name, dtype: tensor.dtype.rawValue)
            }
            guard tensor.shape == spec.shape else {
                throw ModelError.shapeMismatch(tensor: spec.name, expected: spec.shape, found: tensor.shape)
            }
            if let key = spec.expert {
                residentExperts[key, default: [:]][spec.name] = tensor
            } else {
                dense[spec.name] = tensor
                denseParameters += tensor.count
                denseBytes += tensor.byteCount
            }
        }
        for case .mixture(let mixture) in c.feedForward {
            activeRoutedParameters += mixture.topK * 3 * c.hiddenSize * mixture.intermediateSize
        }

        let resolved: any ExpertProvider, expertBytes: Int
        if let provider {
            resolved = provider
            // Bytes of the experts not loaded here: as the provider holds them, else in the
            // checkpoint's dtype for them if it has them, else in the first router's.
            let firstExpert = layout.first { $0.expert != nil }
            let firstRouter = c.feedForward.indices.first { c.feedForward[$0].isMixture }.map { dense[keys.router(layer: $0)]! }
            let dtype = (firstExpert.flatMap { weights[$0.name] } ?? firstRouter)?.dtype
            expertBytes = provider.heldBytes ?? dtype?.byteCount(routedParameters) ?? 0
        } else {
            let resident = ResidentExperts(
                Dictionary(
                    uniqueKeysWithValues: residentExperts.map { key, tensors in
                        let names = keys.expert(key)
                        return (key, ExpertWeights(gate: tensors[names.gate]!, up: tensors[names.up]!, down: tensors[names.down]!))
                    }))
            resolved = resident
            expertBytes = resident.byteCount
        }

        func take(_ name: String) -> Tensor { dense[name]! }
        func linear(_ prefix: String, bias: Bool = false) -> Linear {
            Linear(weight: take("\(prefix).weight"), bias: bias ? take("\(prefix).bias") : nil)
        }
        func expertBiases(layer: Int) -> MoEBlock.ExpertBiases {
            let names = keys.expertBiases(layer: layer)
            return MoEBlock.ExpertBiases(gate: take(names.gate), up: take(names.up), down: take(names.down))
        }
        var layers: [DecoderLayer] = []
        for index in 0..<c.layerCount {
            let attention = { (name: String) in keys.layer(index, "self_attn.\(name)") }
            let mixer: DecoderLayer.Mixer
            switch c.attention[index] {
            case .grouped(let window):
                let queryKeyNorm: Attention.QueryKeyNorm =
                    switch c.queryKeyNorm {
                    case .none: .none
                    case .perHead: .perHead(query: take(attention("q_norm.weight")), key: take(attention("k_norm.weight")))
                    case .acrossHeads: .acrossHeads(query: take(attention("q_norm.weight")), key: take(attention("k_norm.weight")))
                    }
                mixer = .grouped(
                    Attention(
                        heads: c.attentionHeads, kvHeads: c.keyValueHeads, headDim: c.headDim,
                        query: linear(attention("q_proj"), bias: c.queryKeyValueBias),
                        key: linear(attention("k_proj"), bias: c.queryKeyValueBias),
                        value: linear(attention("v_proj"), bias: c.queryKeyValueBias),
                        output: linear(attention("o_proj"), bias: c.outputBias),
                        queryKeyNorm: queryKeyNorm, normEps: c.rmsNormEps, rope: c.rope.frequencies(rotaryDim: c.rotaryDim ?? c.headDim),
                        window: window,
                        sinks: c.attentionSinks ? take(attention("sinks")) : nil))
            case .latent(let latent):
                mixer = .latent(Self.latentAttention(latent, layer: index, configuration: c, keys: keys, take: take))
            }
            let feedForward: DecoderLayer.FeedForward
            switch c.feedForward[index] {
            case .dense:
                let mlp = { (name: String) in keys.layer(index, "mlp.\(name)") }
                feedForward = .dense(
                    GatedMLP(
                        gate: linear(mlp("gate_proj"), bias: c.mlpBias), up: linear(mlp("up_proj"), bias: c.mlpBias),
                        down: linear(mlp("down_proj"), bias: c.mlpBias)))
            case .mixture(let mixture):
                var shared: MoEBlock.SharedExperts? = nil
                if let sharedConfiguration = mixture.shared {
                    let mlps = (0..<sharedConfiguration.count).map { s in
                        let names = keys.sharedExpert(layer: index, index: s)
                        return GatedMLP(ExpertWeights(gate: take(names.gate), up: take(names.up), down: take(names.down)))
                    }
                    shared = MoEBlock.SharedExperts(
                        mlps: mlps,
                        gate: sharedConfiguration.gated ? take(keys.sharedExpertGate(layer: index)) : nil)
                }
                feedForward = .mixture(
                    MoEBlock(
                        layer: index, configuration: mixture, router: take(keys.router(layer: index)),
                        routerBias: mixture.routerBias ? take(keys.routerLogitBias(layer: index)) : nil,
                        selectionBias: mixture.selectionBias ? take(keys.routerBias(layer: index)) : nil,
                        expertBiases: mixture.expertBias ? expertBiases(layer: index) : nil,
                        shared: shared, experts: resolved))
            }
            layers.append(
                DecoderLayer(
                    inputNorm: take(keys.layer(index, "input_layernorm.weight")),
                    postAttentionNorm: take(keys.layer(index, "post_attention_layernorm.weight")),
                    normEps: c.rmsNormEps, mixer: mixer, feedForward: feedForward))
        }

        configuration = c
        self.keys = keys
        self.configJSON = configJSON
        self.layout = layout
        self.dense = dense
        experts = resolved
        embedding = take(keys.embedding)
        self.layers = layers
        nextMixtureLayer = layers.indices.map { index in layers.indices.dropFirst(index + 1).first { layers[$0].mixture != nil } }
        finalNorm = take(keys.finalNorm)
        // A tied head is the embedding table.
        lmHead = c.tieWordEmbeddings ? embedding : take(keys.lmHead)
        lookahead = c.lookahead.map {
            LookaheadRouter(
                hidden: linear(CheckpointKeys.lookaheadHidden, bias: true),
                output: linear(CheckpointKeys.lookaheadOutput, bias: true), steps: $0.steps, experts: $0.experts)
        }
        summary = c.summary
        parameterCounts = ParameterCounts(
            dense: denseParameters, expert: routedParameters,
            activePerToken: denseParameters + activeRoutedParameters,
            denseBytes: denseBytes, expertBytes: expertBytes)
    }

    /// Layer `layer`'s multi-head latent attention over the tensors `take` returns (named by
    /// `keys`), read in `latent.layout`.
    private static func latentAttention(
        _ latent: LatentAttentionConfiguration, layer: Int, configuration c: TransformerConfiguration, keys: CheckpointKeys,
        take: (String) -> Tensor
    ) -> LatentAttention {
        let name = { (name: String) in keys.layer(layer, "self_attn.\(name)") }
        // The absorbed query product is a matmul, which needs f32.
        func f32(_ tensor: Tensor) -> Tensor { tensor.dtype == .f32 ? tensor : tensor.converted(to: .f32) }
        let d = c.headDim, v = latent.valueDim, l = latent.latentDim, r = latent.ropeDim
        let query: LatentAttention.QueryProjection, queryLayout: LatentAttention.QueryLayout, style: RoPE.Style
        let latentDown: Linear, latentNorm: Tensor, ropeKey: Linear
        let keyUp: LatentAttention.UpProjection, valueUp: LatentAttention.UpProjection
        switch latent.layout {
        case .chronos:
            query = .direct(Linear(weight: take(name("q_proj.weight")), bias: nil))
            queryLayout = .ropeFirst
            style = .halfSplit
            latentDown = Linear(weight: take(name("kv_down_proj.weight")), bias: nil)
            latentNorm = take(name("kv_norm.weight"))
            ropeKey = Linear(weight: take(name("k_rope_proj.weight")), bias: nil)
            keyUp = .init(weight: f32(take(name("k_up_proj.weight"))), width: d, stride: d, offset: 0)
            valueUp = .init(weight: take(name("v_up_proj.weight")), width: v, stride: v, offset: 0)
        case .deepSeek(let interleaved):
            query =
                latent.queryLatentDim == nil
                ? .direct(Linear(weight: take(name("q_proj.weight")), bias: nil))
                : .lowRank(
                    down: Linear(weight: take(name("q_a_proj.weight")), bias: nil), norm: take(name("q_a_layernorm.weight")),
                    up: Linear(weight: take(name("q_b_proj.weight")), bias: nil))
            queryLayout = .ropeLast
            style = interleaved ? .interleaved : .halfSplit
            // kv_a_proj_with_mqa holds W_dkv's rows, then W_kr's.
            let down = take(name("kv_a_proj_with_mqa.weight"))
            latentDown = Linear(weight: down.slice(0..<l), bias: nil)
            ropeKey = Linear(weight: down.slice(l..<(l + r)), bias: nil)
            latentNorm = take(name("kv_a_layernorm.weight"))
            // kv_b_proj holds, per head, W_uk,h's rows, then W_uv,h's.
            let up = f32(take(name("kv_b_proj.weight")))
            keyUp = .init(weight: up, width: d, stride: d + v, offset: 0)
            valueUp = .init(weight: up, width: v, stride: d + v, offset: d)
        }
        return LatentAttention(
            heads: c.attentionHeads, headDim: d, valueDim: v, ropeDim: r, latentDim: l, query: query, queryLayout: queryLayout,
            latentDown: latentDown, latentNorm: latentNorm, ropeKey: ropeKey, keyUp: keyUp, valueUp: valueUp,
            output: Linear(weight: take(name("o_proj.weight")), bias: c.outputBias ? take(name("o_proj.bias")) : nil),
            normEps: latent.normEps, rope: c.rope.frequencies(rotaryDim: r), ropeStyle: style,
            scale: latent.scoreScale / Float(d + r).squareRoot())
    }

    public func makeCache() -> ModelCache {
        ModelCache(
            layers: configuration.attention.map { attention -> any KVCache in
                switch attention {
                case .grouped(window: nil): StandardKVCache()
                // One position beyond the window, so that a failed decode step can be undone.
                case .grouped(window: let window?): SlidingWindowKVCache(window: window, extraPositions: 1)
                case .latent(let latent): LatentKVCache(latentDim: latent.latentDim, ropeDim: latent.ropeDim)
                }
            })
    }

    public func forward(_ sequences: [ForwardSequence], options: ForwardOptions) throws -> [ForwardOutput] {
        let c = configuration
        for sequence in sequences {
            guard sequence.cache.layers.count == layers.count else {
                throw ModelError.cacheMismatch(expectedLayers: layers.count, foundLayers: sequence.cache.layers.count)
            }
            if let bad = sequence.ids.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
                throw ModelError.tokenOutOfRange(id: bad, vocabSize: c.vocabSize)
            }
        }
        guard Set(sequences.map { ObjectIdentifier($0.cache) }).count == sequences.count else { throw ModelError.sharedCache }
        // Sequences with no ids take no part in the pass.
        let running = sequences.indices.filter { !sequences[$0].ids.isEmpty }
        var outputs = sequences.map { emptyOutput(offset: $0.cache.offset, options: options) }
        guard !running.isEmpty else { return outputs }
        var rows: [Range<Int>] = [], ids: [Int] = []
        for index in running {
            rows.append(ids.count..<(ids.count + sequences[index].ids.count))
            ids += sequences[index].ids
        }
        let caches = running.map { sequences[$0].cache }, offsets = caches.map(\.offset)
        let tokens = ids.count

        let lookaheadInputLayer = options.predictsLookahead ? c.lookahead?.inputLayer : nil
        var generator = SplitMix64(seed: options.fallbackMaskSeed)
        var h = Tensor.embedding(embedding, ids: ids)
        var routings: [LayerRouting] = [], hidden: [Int: Tensor] = [:], lookaheadInput: Tensor? = nil
        for (index, layer) in layers.enumerated() {
            var availability: ((Int, Int) -> Float)? = nil
            if let moe = layer.mixture {
                var dropped: [Bool]? = nil
                if options.fallbackMaskProbability > 0 {
                    let p = Double(options.fallbackMaskProbability)
                    dropped = (0..<(tokens * moe.configuration.topK)).map { _ in generator.nextUnit() < p }
                }
                let mask = options.availability
                if !mask.isEmpty || dropped != nil {
                    availability = { slot, expert in
                        if let dropped, dropped[slot] { return 0 }
                        return mask[ExpertKey(layer: index, expert: expert)] ?? 1
                    }
                }
            }
            // Each sequence whose observer asks previews the next MoE layer from its own last row.
            var beforeRouted: ((Tensor) -> Void)? = nil
            let previewing = zip(caches, rows).compactMap { cache, rows in
                cache.observer.flatMap { $0.previewsNextLayer ? ($0, rows) : nil }
            }
            if !previewing.isEmpty, let next = nextMixtureLayer[index] {
                beforeRouted = { stream in
                    for (observer, rows) in previewing {
                        observer.previewed(layer: next, experts: self.layers[next].previewExperts(stream: stream.slice(rows))!)
                    }
                }
            }
            let layerSequences = zip(caches, rows).map { cache, rows in
                DecoderLayer.Sequence(rows: rows, cache: cache.layers[index], observer: cache.observer, provider: cache.experts)
            }
            let step = try layer(h, sequences: layerSequences, availability: availability, beforeRouted: beforeRouted)
            h = step.output
            for (cache, rows) in zip(caches, rows) {
                cache.observer?.layerFinished(index, hidden: running.count == 1 ? h : h.slice(rows))
            }
            if options.hiddenLayers.contains(index) { hidden[index] = h }
            if index == lookaheadInputLayer { lookaheadInput = h }
            if options.recordsRouting, let routing = step.routing, let input = step.mixtureInput {
                let k = routing.selected.count / tokens
                routings.append(
                    LayerRouting(
                        layer: index, input: input, routerLogits: routing.logits, routerProbabilities: routing.probabilities,
                        selectedExperts: (0..<tokens).map { Array(routing.selected[($0 * k)..<(($0 + 1) * k)]) },
                        combineWeights: routing.combine.reshaped([tokens, k]),
                        availability: (0..<tokens).map { Array(routing.availability[($0 * k)..<(($0 + 1) * k)]) }))
            }
        }
        for cache in caches {
            if let failure = (cache.experts ?? experts).failure { throw failure }
        }
        for (cache, rows) in zip(caches, rows) { cache.advance(by: rows.count) }

        let logits = Tensor.linear(h.rmsNorm(weight: finalNorm, eps: c.rmsNormEps), weight: lmHead)
        var lookaheadLogits: Tensor? = nil
        if let head = lookahead, let input = lookaheadInput {
            lookaheadLogits = head(options.detachesLookaheadInput ? input.detached() : input)
        }
        // One sequence's output is the pass's tensors as they are (the gradient graph of a
        // training step); several sequences each get their rows.
        for (position, index) in running.enumerated() {
            let part = { (tensor: Tensor) in running.count == 1 ? tensor : tensor.slice(rows[position]) }
            let span = rows[position]
            outputs[index] = ForwardOutput(
                positionOffset: offsets[position], logits: part(logits),
                layers: routings.map { routing in
                    LayerRouting(
                        layer: routing.layer, input: part(routing.input), routerLogits: part(routing.routerLogits),
                        routerProbabilities: part(routing.routerProbabilities),
                        selectedExperts: Array(routing.selectedExperts[span]), combineWeights: part(routing.combineWeights),
                        availability: Array(routing.availability[span]))
                },
                hidden: hidden.mapValues(part), lookahead: lookaheadLogits.map { LookaheadPrediction(logits: part($0)) })
        }
        return outputs
    }

    /// The output of a forward pass over no tokens: every tensor with 0 rows.
    private func emptyOutput(offset: Int, options: ForwardOptions) -> ForwardOutput {
        let c = configuration
        var routings: [LayerRouting] = []
        if options.recordsRouting {
            for (layer, block) in c.feedForward.enumerated() {
                guard case .mixture(let mixture) = block else { continue }
                let experts = Tensor(zeros: [0, mixture.expertCount])
                routings.append(
                    LayerRouting(
                        layer: layer, input: Tensor(zeros: [0, c.hiddenSize]), routerLogits: experts,
                        routerProbabilities: experts, selectedExperts: [],
                        combineWeights: Tensor(zeros: [0, mixture.topK]), availability: []))
            }
        }
        let hidden = Dictionary(uniqueKeysWithValues: options.hiddenLayers.map { ($0, Tensor(zeros: [0, c.hiddenSize])) })
        let prediction =
            options.predictsLookahead
            ? c.lookahead.map {
                LookaheadPrediction(logits: Tensor(zeros: [0, $0.steps + 1, $0.experts]))
            } : nil
        return ForwardOutput(
            positionOffset: offset, logits: Tensor(zeros: [0, c.vocabSize]), layers: routings, hidden: hidden,
            lookahead: prediction)
    }

    public func checkpointNames(for key: ExpertKey) -> ExpertWeightNames? {
        guard key.layer >= 0, key.layer < configuration.layerCount,
            case .mixture(let mixture) = configuration.feedForward[key.layer],
            key.expert >= 0, key.expert < mixture.expertCount
        else { return nil }
        return keys.expert(key)
    }

    /// Every parameter tensor the model computes with, by checkpoint name and in checkpoint
    /// order: the very tensors (not copies), so updating them in place updates the model.
    /// Routed experts are those the provider returns now; a non-resident one is left out.
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        layout.compactMap { spec in
            guard let key = spec.expert else { return (spec.name, dense[spec.name]!) }
            return expertTensor(spec.name, key: key).map { (spec.name, $0) }
        }
    }

    /// Writes `config.json` and every parameter, routed experts included, as
    /// `model.safetensors` into `directory` (created if needed); each file is replaced
    /// atomically, the weights first. A parameter named in `types` is converted to that type
    /// (a block format quantises it) as it is written, one at a time; `progress` hears after
    /// each how many are written of how many. Fails if the provider does not have every expert.
    public func save(
        to directory: URL, types: [String: DType] = [:], progress: ((_ written: Int, _ total: Int) -> Void)? = nil
    ) throws {
        let tensors = try layout.map { spec -> (name: String, tensor: Tensor) in
            guard let key = spec.expert else { return (spec.name, dense[spec.name]!) }
            guard let tensor = expertTensor(spec.name, key: key) else {
                throw ModelError.missingTensor(name: spec.name, directory: "the expert provider")
            }
            return (spec.name, tensor)
        }
        let entries = tensors.map {
            SafetensorsWriter.Entry(name: $0.name, dtype: types[$0.name] ?? $0.tensor.dtype, shape: $0.tensor.shape)
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: ModelDirectory(directory).checkpoint) { index in
            defer { progress?(index + 1, entries.count) }
            let tensor = tensors[index].tensor, type = entries[index].dtype
            return tensor.dtype == type ? tensor : tensor.converted(to: type)
        }
        try AtomicFile.write(configJSON, to: ModelDirectory(directory).config)
    }

    /// The projection `name` of routed expert `key`, if the provider has it.
    private func expertTensor(_ name: String, key: ExpertKey) -> Tensor? {
        guard let weights = experts.weights(for: key) else { return nil }
        let names = keys.expert(key)
        return name == names.gate ? weights.gate : name == names.up ? weights.up : weights.down
    }
}

extension TransformerConfiguration.FeedForward {
    /// Whether this is a routed mixture.
    var isMixture: Bool {
        if case .mixture = self { true } else { false }
    }
}
