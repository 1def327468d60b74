import ChronosTensor

/// How `chronos quantize` chooses each tensor's block format: llama.cpp's `llama-quantize`
/// recipes (`Q4_K_M` and the rest), which give most tensors the recipe's base type and some more
/// bits where the error costs most (the LM head, some value and down projections).
///
/// Vectors (norms, biases), routers and the lookahead head stay in their float type; a matrix
/// whose rows are not whole blocks of its type falls back as llama.cpp's does (Q4_K to Q5_0,
/// Q6_K to Q8_0, …, to f16 when not even 32 divides a row).
public enum QuantizationRecipe: String, CaseIterable, Sendable {
    // llama-quantize's names for its recipes.
    // swift-format-ignore: AlwaysUseLowerCamelCase
    case q8_0, q4_0, q4_1, q5_0, q5_1
    // swift-format-ignore: AlwaysUseLowerCamelCase
    case q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k

    /// The type most tensors get.
    public var baseType: DType {
        switch self {
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        case .q2_k: .q2_k
        case .q3_k_s, .q3_k_m, .q3_k_l: .q3_k
        case .q4_k_s, .q4_k_m: .q4_k
        case .q5_k_s, .q5_k_m: .q5_k
        case .q6_k: .q6_k
        }
    }

    /// The shape of the model a recipe adapts to.
    public struct ModelShape: Sendable {
        /// Decoder layers.
        public var layers: Int
        /// Routed experts per MoE layer (1 for a dense model).
        public var experts: Int
        /// Query heads per key-value head.
        public var queryGroups: Int

        /// The shape of a model of `layers` layers, `experts` routed experts per MoE layer and
        /// `queryGroups` query heads per key-value head.
        public init(layers: Int, experts: Int, queryGroups: Int) {
            self.layers = layers
            self.experts = experts
            self.queryGroups = queryGroups
        }
    }

    /// The type for a tensor of `role`, `shape` and float type `dtype`; `dtype` itself where
    /// the tensor stays in float.
    public func type(for role: ParameterRole, shape: [Int], dtype: DType, model: ModelShape) -> DType {
        guard shape.count == 2, let chosen = chosenType(for: role, columns: shape[1], model: model) else { return dtype }
        return Self.fallback(chosen, columns: shape[1])
    }

    /// llama.cpp's choice before the shape check; nil for the tensors that stay in float.
    private func chosenType(for role: ParameterRole, columns: Int, model: ModelShape) -> DType? {
        let base = baseType
        // llama.cpp's "more bits" layers: the first and last eighth, and every third in between.
        func moreBits(_ layer: Int) -> Bool {
            let n = model.layers
            return layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2
        }
        switch role {
        case .vector, .router, .lookahead:
            return nil
        case .output:
            if columns % DType.q6_k.blockElements != 0 { return .q8_0 }
            return base == .q8_0 ? .q8_0 : .q6_k
        case .embedding, .attentionQuery, .feedForwardGate, .feedForwardUp:
            return base
        case .attentionValue(let layer):
            var type = base
            switch self {
            case .q2_k: type = model.queryGroups >= 4 ? .q4_k : .q3_k
            case .q3_k_m: type = layer < 2 ? .q5_k : .q4_k
            case .q3_k_l: type = .q5_k
            case .q4_k_m, .q5_k_m: if moreBits(layer) { type = .q6_k }
            case .q4_k_s: if layer < 4 { type = .q5_k }
            default: break
            }
            return model.experts == 8 ? .q8_0 : type
        case .attentionKey:
            return model.experts == 8 ? .q8_0 : base
        case .attentionOutput:
            if model.experts == 8 {
                return [.q2_k, .q3_k_s, .q3_k_m, .q4_k_s, .q4_k_m].contains(self) ? .q5_k : base
            }
            switch self {
            case .q2_k: return .q3_k
            case .q3_k_m: return .q4_k
            case .q3_k_l: return .q5_k
            default: return base
            }
        case .feedForwardDown(let layer):
            let n = model.layers
            switch self {
            case .q2_k: return .q3_k
            case .q3_k_m: return layer < n / 16 ? .q5_k : .q4_k
            case .q3_k_l: return .q5_k
            case .q4_k_m, .q5_k_m: return moreBits(layer) ? .q6_k : base
            case .q4_k_s: return layer < n / 8 ? .q5_k : base
            default: return base
            }
        }
    }

    /// `type`, or llama.cpp's fallback when a row of `columns` values is not whole blocks of it.
    static func fallback(_ type: DType, columns: Int) -> DType {
        if columns % type.blockElements == 0 { return type }
        let smaller: DType =
            switch type {
            case .q2_k, .q3_k: .q4_0
            case .q4_k: .q5_0
            case .q5_k: .q5_1
            case .q6_k: .q8_0
            default: type
            }
        return columns % smaller.blockElements == 0 ? smaller : .f16
    }
}

extension TransformerLanguageModel {
    /// The shape a quantisation recipe adapts to.
    public var quantizationShape: QuantizationRecipe.ModelShape {
        let c = configuration
        let experts = c.feedForward.lazy.compactMap { block -> Int? in
            if case .mixture(let mixture) = block { mixture.expertCount } else { nil }
        }.first
        return .init(layers: c.layerCount, experts: experts ?? 1, queryGroups: c.attentionHeads / max(1, c.keyValueHeads))
    }

    /// Every parameter's checkpoint name, role, shape and routed expert (if any), in checkpoint order.
    public var parameterRoles: [(name: String, role: ParameterRole, shape: [Int], expert: ExpertKey?)] {
        layout.map { ($0.name, $0.role, $0.shape, $0.expert) }
    }
}
