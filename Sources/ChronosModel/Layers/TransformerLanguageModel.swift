import ChronosFormats
import ChronosTensor

/// The decoder-only transformer all the Hugging Face families here share: embedding, decoder
/// layers, final RMSNorm and LM head. Architectures differ only in their configuration and
/// checkpoint names.
final class TransformerLanguageModel: LanguageModel {
    let configuration: TransformerConfiguration
    let keys: CheckpointKeys
    let summary: ModelSummary
    let parameterCounts: ParameterCounts
    let experts: any ExpertProvider
    /// `[vocab, hidden]`.
    let embedding: Tensor
    let layers: [DecoderLayer]
    let finalNorm: Tensor
    /// `[vocab, hidden]`: the embedding table itself when tied.
    let lmHead: Tensor

    /// Loads the weights `configuration` describes from `checkpoint`; routed experts come from
    /// `experts`, or are all loaded from the checkpoint when it is nil.
    init(configuration c: TransformerConfiguration, keys: CheckpointKeys, checkpoint: SafetensorsCheckpoint,
         experts provider: (any ExpertProvider)?) throws {
        let weights = CheckpointWeights(checkpoint)
        let hidden = c.hiddenSize, qWidth = c.attentionHeads * c.headDim, kvWidth = c.keyValueHeads * c.headDim

        embedding = try weights.load(keys.embedding, shape: [c.vocabSize, hidden])
        var layers: [DecoderLayer] = []
        var routedParameters = 0, activeRoutedParameters = 0
        // Routed experts are resolved after the dense weights so the provider is shared by all layers.
        var mixtures: [(layer: Int, configuration: MixtureConfiguration, router: Tensor, shared: MoEBlock.SharedExperts?)] = []
        var denseLayers: [Int: GatedMLP] = [:]
        var attentions: [Attention] = [], norms: [(Tensor, Tensor)] = []

        for layer in 0..<c.layerCount {
            let attention = { (name: String) in keys.layer(layer, "self_attn.\(name)") }
            let queryKeyNorm: Attention.QueryKeyNorm
            switch c.queryKeyNorm {
            case .none:
                queryKeyNorm = .none
            case .perHead:
                queryKeyNorm = .perHead(query: try weights.load(attention("q_norm.weight"), shape: [c.headDim]),
                                        key: try weights.load(attention("k_norm.weight"), shape: [c.headDim]))
            case .acrossHeads:
                queryKeyNorm = .acrossHeads(query: try weights.load(attention("q_norm.weight"), shape: [qWidth]),
                                            key: try weights.load(attention("k_norm.weight"), shape: [kvWidth]))
            }
            attentions.append(Attention(
                heads: c.attentionHeads, kvHeads: c.keyValueHeads, headDim: c.headDim,
                query: try weights.linear(attention("q_proj"), out: qWidth, in: hidden, bias: c.queryKeyValueBias),
                key: try weights.linear(attention("k_proj"), out: kvWidth, in: hidden, bias: c.queryKeyValueBias),
                value: try weights.linear(attention("v_proj"), out: kvWidth, in: hidden, bias: c.queryKeyValueBias),
                output: try weights.linear(attention("o_proj"), out: hidden, in: qWidth, bias: c.outputBias),
                queryKeyNorm: queryKeyNorm, normEps: c.rmsNormEps, ropeTheta: c.ropeTheta, window: c.slidingWindows[layer]))
            norms.append((try weights.load(keys.layer(layer, "input_layernorm.weight"), shape: [hidden]),
                          try weights.load(keys.layer(layer, "post_attention_layernorm.weight"), shape: [hidden])))

            switch c.feedForward[layer] {
            case let .dense(width):
                let mlp = { (name: String) in keys.layer(layer, "mlp.\(name)") }
                denseLayers[layer] = GatedMLP(
                    gate: try weights.linear(mlp("gate_proj"), out: width, in: hidden, bias: c.mlpBias),
                    up: try weights.linear(mlp("up_proj"), out: width, in: hidden, bias: c.mlpBias),
                    down: try weights.linear(mlp("down_proj"), out: hidden, in: width, bias: c.mlpBias))
            case let .mixture(mixture):
                let router = try weights.load(keys.router(layer: layer), shape: [mixture.expertCount, hidden])
                var shared: MoEBlock.SharedExperts? = nil
                if let width = mixture.sharedExpertIntermediateSize {
                    let projection = { (name: String, out: Int, inFeatures: Int) in
                        Linear(weight: try weights.load(keys.sharedExpert(layer: layer, name), shape: [out, inFeatures]), bias: nil)
                    }
                    shared = MoEBlock.SharedExperts(
                        mlps: [GatedMLP(gate: try projection("gate_proj", width, hidden), up: try projection("up_proj", width, hidden),
                                        down: try projection("down_proj", hidden, width))],
                        gate: try weights.load(keys.sharedExpertGate(layer: layer), shape: [1, hidden]))
                }
                mixtures.append((layer, mixture, router, shared))
                let perExpert = 3 * hidden * mixture.intermediateSize
                routedParameters += mixture.expertCount * perExpert
                activeRoutedParameters += mixture.topK * perExpert
            }
        }
        finalNorm = try weights.load(keys.finalNorm, shape: [hidden])
        // A tied head is the embedding table; a checkpoint may still carry an lm_head copy, which is ignored.
        lmHead = c.tieWordEmbeddings ? embedding : try weights.load(keys.lmHead, shape: [c.vocabSize, hidden])
        let denseParameters = weights.parameterCount, denseBytes = weights.byteCount

        let expertBytes: Int, resolved: any ExpertProvider
        if let provider {
            resolved = provider
            expertBytes = routedParameters * Self.expertElementSize(checkpoint, keys: keys, mixtures: mixtures.map { ($0.layer, $0.router) })
        } else {
            let resident = try weights.experts(c, keys: keys)
            resolved = resident
            expertBytes = resident.byteCount
        }
        experts = resolved

        let blocks = Dictionary(uniqueKeysWithValues: mixtures.map { mixture in
            (mixture.layer, MoEBlock(layer: mixture.layer, configuration: mixture.configuration, router: mixture.router,
                                     shared: mixture.shared, experts: resolved))
        })
        for layer in 0..<c.layerCount {
            let feedForward: DecoderLayer.FeedForward = if let block = blocks[layer] { .mixture(block) } else { .dense(denseLayers[layer]!) }
            layers.append(DecoderLayer(inputNorm: norms[layer].0, postAttentionNorm: norms[layer].1, normEps: c.rmsNormEps,
                                       attention: attentions[layer], feedForward: feedForward))
        }
        self.layers = layers
        self.configuration = c
        self.keys = keys
        summary = c.summary
        parameterCounts = ParameterCounts(dense: denseParameters, expert: routedParameters,
                                          activePerToken: denseParameters + activeRoutedParameters,
                                          denseBytes: denseBytes, expertBytes: expertBytes)
    }

    /// Bytes per expert element when the experts are not loaded here: the checkpoint's dtype
    /// for them if it holds them, else the router's.
    private static func expertElementSize(_ checkpoint: SafetensorsCheckpoint, keys: CheckpointKeys,
                                          mixtures: [(layer: Int, router: Tensor)]) -> Int {
        guard let first = mixtures.first else { return 0 }
        let name = keys.expert(ExpertKey(layer: first.layer, expert: 0)).gate
        if let info = try? checkpoint.info(named: name) { return info.dtype.byteSize }
        return first.router.dtype.byteSize
    }

    func makeCache() -> ModelCache {
        ModelCache(layerCount: layers.count)
    }

    func forward(_ ids: [Int], cache: ModelCache) throws -> Tensor {
        guard cache.layers.count == layers.count else {
            throw ModelError.cacheMismatch(expectedLayers: layers.count, foundLayers: cache.layers.count)
        }
        if let bad = ids.first(where: { $0 < 0 || $0 >= configuration.vocabSize }) {
            throw ModelError.tokenOutOfRange(id: bad, vocabSize: configuration.vocabSize)
        }
        guard !ids.isEmpty else { return Tensor(zeros: [0, configuration.vocabSize]) }
        var h = Tensor.embedding(embedding, ids: ids)
        for (index, (layer, cacheLayer)) in zip(layers, cache.layers).enumerated() {
            var beforeRouted: ((Tensor) -> Void)? = nil
            if let preview = cache.nextLayerObserver,
               let next = layers.indices.dropFirst(index + 1).first(where: { layers[$0].isMixture }) {
                beforeRouted = { stream in preview(next, self.layers[next].previewExperts(stream: stream)!) }
            }
            h = layer(h, cache: cacheLayer, observer: cache.routingObserver, beforeRouted: beforeRouted)
            cache.hiddenObserver?(index, h)
        }
        if let failure = experts.failure { throw failure }
        cache.advance(by: ids.count)
        return Tensor.linear(h.rmsNorm(weight: finalNorm, eps: configuration.rmsNormEps), weight: lmHead)
    }

    func checkpointNames(for key: ExpertKey) -> ExpertWeightNames? {
        guard key.layer >= 0, key.layer < configuration.layerCount,
              case let .mixture(mixture) = configuration.feedForward[key.layer],
              key.expert >= 0, key.expert < mixture.expertCount else { return nil }
        return keys.expert(key)
    }
}
