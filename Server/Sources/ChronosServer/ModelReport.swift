import ChronosEngine
import ChronosModel
import ChronosStorage

/// `GET /v1/chronos/model`: what the served model is and what it needs, as `chronos inspect`
/// prints it, with the weight bytes in memory at an expert budget.
///
/// `memory` is for `budget` when the request gives one (`?budget=0.3`, `30%`, `300MB`, as
/// `--expert-budget` reads it), else for the budget the server runs with: the dense weights, which
/// are always resident, plus the routed experts' bytes the budget allows.
enum ModelReport {
    /// The report for `model`, its memory at `budget` (nil: the serving budget).
    static func json(for model: ServedModel, budget: ExpertBudget?) -> JSONValue {
        let offloaded = model.offloaded
        let summary = offloaded.model.summary
        let counts = offloaded.model.parameterCounts
        let expertBytes = budget?.bytes(ofTotal: offloaded.totalExpertBytes) ?? offloaded.budgetBytes
        var experts: JSONValue = nil
        if summary.isMixtureOfExperts {
            experts = [
                "moe_layers": number(summary.expertsPerLayer.filter { $0 > 0 }.count),
                "per_layer": number(summary.expertsPerLayer.max() ?? 0),
                "per_token": number(summary.expertsPerToken), "shared_expert": .bool(summary.hasSharedExpert)
            ]
        }
        let bytesPerToken = (offloaded.model as? TransformerLanguageModel)?.weightBytesPerToken
        return [
            "model": .string(model.id), "model_type": .string(summary.modelType),
            "architecture": summary.architecture.map { .string($0) } ?? nil, "layers": number(summary.layerCount),
            "hidden_size": number(summary.hiddenSize), "attention_heads": number(summary.attentionHeads),
            "key_value_heads": number(summary.keyValueHeads), "head_dim": number(summary.headDim), "vocab_size": number(summary.vocabSize),
            "context": summary.maxPositionEmbeddings.map(number) ?? nil, "experts": experts,
            "parameters": [
                "total": number(counts.total), "active_per_token": number(counts.activePerToken), "dense": number(counts.dense),
                "expert": number(counts.expert)
            ],
            "bytes": [
                "dense": number(counts.denseBytes), "expert": number(counts.expertBytes), "total": number(counts.totalBytes),
                "per_token": bytesPerToken.map(number) ?? nil
            ],
            "serving": [
                "mode": .string(offloaded.settings.mode.rawValue), "budget_bytes": number(offloaded.budgetBytes),
                "total_expert_bytes": number(offloaded.totalExpertBytes)
            ],
            "memory": [
                "budget": .string((budget ?? .bytes(offloaded.budgetBytes)).description), "expert_bytes": number(expertBytes),
                "total_bytes": number(counts.denseBytes + expertBytes)
            ]
        ]
    }

    /// An integer as a JSON number.
    private static func number(_ value: Int) -> JSONValue { .number(Double(value)) }
}
