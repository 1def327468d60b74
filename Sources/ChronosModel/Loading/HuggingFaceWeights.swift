import ChronosTensor

/// The checkpoint conventions of the Hugging Face families, settled before loading:
///
/// - transformers 5 stores each MoE layer's routed experts fused, as
///   `model.layers.L.mlp.experts.gate_up_proj` `[E, 2·I, H]` (each expert's gate rows, then its
///   up rows) and `model.layers.L.mlp.experts.down_proj` `[E, H, I]`; they are split into the
///   per-expert `gate`, `up` and `down` tensors of transformers 4's layout (views, no copy).
///   Where the family keeps its MoE block under another module (Mixtral's `block_sparse_moe`),
///   the fused layout's `mlp.*` names of that block are renamed to it.
/// - A tied LM head's copy (`lm_head.weight`) and rotary-embedding buffers
///   (`*.rotary_emb.inv_freq`) are dropped: the model does not read them.
enum HuggingFaceWeights {
    /// `weights` with the fused experts split and the unread tensors dropped.
    static func sanitize(
        _ weights: [String: Tensor], configuration c: TransformerConfiguration, keys: CheckpointKeys,
        location: String
    ) throws -> [String: Tensor] {
        var weights = weights.filter { !$0.key.hasSuffix(".rotary_emb.inv_freq") }
        if c.tieWordEmbeddings { weights[keys.lmHead] = nil }
        for (layer, block) in c.feedForward.enumerated() {
            guard case .mixture(let mixture) = block else { continue }
            let fusedPrefix = keys.layer(layer, "mlp.")
            if keys.mixtureModule != "mlp", weights[fusedPrefix + "experts.gate_up_proj"] != nil {
                for name in weights.keys where name.hasPrefix(fusedPrefix) {
                    weights[keys.layer(layer, keys.mixtureModule + ".") + name.dropFirst(fusedPrefix.count)] = weights.removeValue(
                        forKey: name)
                }
            }
            let experts = keys.layer(layer, "\(keys.mixtureModule).experts.")
            let gateUpName = experts + "gate_up_proj", downName = experts + "down_proj"
            guard let gateUp = weights.removeValue(forKey: gateUpName) else { continue }
            guard let down = weights.removeValue(forKey: downName) else {
                throw ModelError.missingTensor(name: downName, directory: location)
            }
            let count = mixture.expertCount, width = mixture.intermediateSize, hidden = c.hiddenSize
            guard gateUp.shape == [count, 2 * width, hidden] else {
                throw ModelError.shapeMismatch(tensor: gateUpName, expected: [count, 2 * width, hidden], found: gateUp.shape)
            }
            guard down.shape == [count, hidden, width] else {
                throw ModelError.shapeMismatch(tensor: downName, expected: [count, hidden, width], found: down.shape)
            }
            let gateUpRows = gateUp.contiguous().reshaped([count * 2 * width, hidden])
            let downRows = down.contiguous().reshaped([count * hidden, width])
            for expert in 0..<count {
                let names = keys.expert(ExpertKey(layer: layer, expert: expert))
                let first = expert * 2 * width
                weights[names.gate] = gateUpRows.slice(first..<(first + width))
                weights[names.up] = gateUpRows.slice((first + width)..<(first + 2 * width))
                weights[names.down] = downRows.slice((expert * hidden)..<((expert + 1) * hidden))
            }
        }
        return weights
    }
}
