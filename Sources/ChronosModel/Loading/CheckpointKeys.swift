/// How an architecture's checkpoint names its tensors: the one place where a family's naming
/// differs from the Hugging Face layout the layers are written against.
struct CheckpointKeys: Sendable {
    /// Module name of the MoE block inside a decoder layer (`mlp`, or `block_sparse_moe` in Mixtral).
    var mixtureModule = "mlp"
    /// Module names of an expert's gate, up and down projections.
    var expertProjections = ExpertWeightNames(gate: "gate_proj", up: "up_proj", down: "down_proj")

    /// The token embedding table `[vocab, hidden]`.
    var embedding: String { "model.embed_tokens.weight" }
    /// The LM head `[vocab, hidden]` (absent when tied to the embedding).
    var lmHead: String { "lm_head.weight" }
    /// The final RMSNorm weight.
    var finalNorm: String { "model.norm.weight" }

    /// A tensor of decoder layer `layer`, e.g. `self_attn.q_proj.weight`.
    func layer(_ layer: Int, _ name: String) -> String { "model.layers.\(layer).\(name)" }

    /// The router `[experts, hidden]` of layer `layer`.
    func router(layer: Int) -> String { self.layer(layer, "\(mixtureModule).gate.weight") }

    /// The projections of a routed expert.
    func expert(_ key: ExpertKey) -> ExpertWeightNames {
        let prefix = layer(key.layer, "\(mixtureModule).experts.\(key.expert)")
        return ExpertWeightNames(gate: "\(prefix).\(expertProjections.gate).weight",
                                 up: "\(prefix).\(expertProjections.up).weight",
                                 down: "\(prefix).\(expertProjections.down).weight")
    }

    /// A projection (`gate_proj`, `up_proj`, `down_proj`) of layer `layer`'s shared expert.
    func sharedExpert(layer: Int, _ projection: String) -> String {
        self.layer(layer, "\(mixtureModule).shared_expert.\(projection).weight")
    }

    /// The `[1, hidden]` gate of layer `layer`'s shared expert.
    func sharedExpertGate(layer: Int) -> String { self.layer(layer, "\(mixtureModule).shared_expert_gate.weight") }
}
