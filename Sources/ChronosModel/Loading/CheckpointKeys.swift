/// How an architecture's checkpoint names its tensors: the one place where a family's naming
/// differs from the Hugging Face layout the layers are written against.
struct CheckpointKeys: Sendable {
    /// Module name of the MoE block inside a decoder layer (`mlp`, or `block_sparse_moe` in Mixtral).
    var mixtureModule = "mlp"
    /// Module name of the router inside the MoE block (`gate`, or `router` in gpt-oss).
    var routerModule = "gate"
    /// Module names of an expert's gate, up and down projections.
    var expertProjections = ExpertWeightNames(gate: "gate_proj", up: "up_proj", down: "down_proj")
    /// How the shared experts are named.
    var sharedExperts = SharedExpertNaming.single

    /// The two ways MoE checkpoints name their shared experts.
    enum SharedExpertNaming: Sendable {
        /// One `shared_expert` and its `shared_expert_gate` (Qwen2-MoE).
        case single
        /// `shared_experts.S`, S = 0, 1, … (Chronos).
        case indexed
        /// One `shared_experts`, all of them as one wider MLP (DeepSeek).
        case concatenated
    }

    /// The token embedding table `[vocab, hidden]`.
    var embedding: String { "model.embed_tokens.weight" }
    /// The LM head `[vocab, hidden]` (absent when tied to the embedding).
    var lmHead: String { "lm_head.weight" }
    /// The final RMSNorm weight.
    var finalNorm: String { "model.norm.weight" }

    /// A tensor of decoder layer `layer`, e.g. `self_attn.q_proj.weight`.
    func layer(_ layer: Int, _ name: String) -> String { "model.layers.\(layer).\(name)" }

    /// The router `[experts, hidden]` of layer `layer`.
    func router(layer: Int) -> String { self.layer(layer, "\(mixtureModule).\(routerModule).weight") }

    /// The bias `[experts]` of layer `layer`'s router logits (gpt-oss).
    func routerLogitBias(layer: Int) -> String { self.layer(layer, "\(mixtureModule).\(routerModule).bias") }

    /// The selection bias `[experts]` of layer `layer`'s router (DeepSeek-V3).
    func routerBias(layer: Int) -> String { self.layer(layer, "\(mixtureModule).gate.e_score_correction_bias") }

    /// The projections of a routed expert.
    func expert(_ key: ExpertKey) -> ExpertWeightNames {
        let prefix = layer(key.layer, "\(mixtureModule).experts.\(key.expert)")
        return ExpertWeightNames(
            gate: "\(prefix).\(expertProjections.gate).weight",
            up: "\(prefix).\(expertProjections.up).weight",
            down: "\(prefix).\(expertProjections.down).weight")
    }

    /// The biases of layer `layer`'s routed experts' gate, up and down projections, each stacked
    /// over the experts (`[experts, width]`) and kept with the router rather than with each
    /// expert (gpt-oss).
    func expertBiases(layer: Int) -> ExpertWeightNames {
        let prefix = self.layer(layer, "\(mixtureModule).experts")
        return ExpertWeightNames(
            gate: "\(prefix).\(expertProjections.gate)_bias", up: "\(prefix).\(expertProjections.up)_bias",
            down: "\(prefix).\(expertProjections.down)_bias")
    }

    /// The projections of shared expert `index` of layer `layer`.
    func sharedExpert(layer: Int, index: Int) -> ExpertWeightNames {
        let prefix =
            switch sharedExperts {
            case .single: self.layer(layer, "\(mixtureModule).shared_expert")
            case .indexed: self.layer(layer, "\(mixtureModule).shared_experts.\(index)")
            case .concatenated: self.layer(layer, "\(mixtureModule).shared_experts")
            }
        return ExpertWeightNames(gate: "\(prefix).gate_proj.weight", up: "\(prefix).up_proj.weight", down: "\(prefix).down_proj.weight")
    }

    /// The `[1, hidden]` gate of layer `layer`'s shared experts.
    func sharedExpertGate(layer: Int) -> String { self.layer(layer, "\(mixtureModule).shared_expert_gate.weight") }
}

extension CheckpointKeys {
    /// The names of a Chronos-native checkpoint: the Hugging Face layout, shared experts indexed.
    static let chronos = CheckpointKeys(sharedExperts: .indexed)
    /// The names of a DeepSeek-V2/V3 checkpoint: the Hugging Face layout, one wide `shared_experts` MLP.
    static let deepSeek = CheckpointKeys(sharedExperts: .concatenated)
    /// Prefix of the lookahead router's first layer (`.weight`, `.bias`).
    static let lookaheadHidden = "lookahead.fc1"
    /// Prefix of the lookahead router's output layer (`.weight`, `.bias`).
    static let lookaheadOutput = "lookahead.fc2"
}
