import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Hands Chronos-native models to the PyTorch ecosystem and takes them back (`chronos export`,
/// `chronos import`), so that they can be trained with `torch.distributed` and served by
/// engines that scale, then packed and streamed here again.
///
/// Two layouts are written:
/// - `transformers`: the checkpoint as it is (its names are already Hugging Face's), with
///   `config.json` naming `modeling_chronos.py` (written beside it) in `auto_map`, so
///   `AutoModelForCausalLM.from_pretrained(OUT, trust_remote_code=True)` loads it;
/// - `deepseek_v2`: a plain DeepSeek-V2 checkpoint, which engines load with no custom code, for
///   a model whose every layer is latent attention with DeepSeek-V2's routing (`train pretrain
///   --attention mla`). The tensors are rearranged, never recomputed: each query head's RoPE part
///   moves behind its no-RoPE part and its dimensions are permuted from rotate-half pairs (i,
///   i + r/2) to DeepSeek's adjacent pairs (2i, 2i+1), the same permutation applied to the RoPE
///   key, so every score is unchanged; the latent and RoPE-key projections join as
///   `kv_a_proj_with_mqa`, the key and value up-projections interleave per head as `kv_b_proj`,
///   and the shared experts join into one wide MLP. The lookahead head, which DeepSeek-V2 has no
///   place for, travels beside it as `chronos_lookahead.safetensors`.
///
/// Import reads either layout (and any transformers checkpoint of a Chronos model, such as one
/// trained elsewhere) back into a Chronos model directory; an export imports to the original
/// tensors bit for bit. Every directory is written whole or not at all (`ModelDirectory.create`).
public enum ModelExport {
    /// A layout `export` writes.
    public enum Format: String, CaseIterable, Sendable {
        /// A transformers checkpoint with its PyTorch module, loaded with `trust_remote_code=True`.
        case transformers
        /// A plain DeepSeek-V2 checkpoint.
        case deepSeekV2 = "deepseek_v2"
    }

    /// A model that cannot be exported or imported, and why.
    public struct Unsupported: Error, CustomStringConvertible {
        /// The model directory.
        public let directory: String
        /// What stands in the way.
        public let reason: String
        /// Names the directory and the reason.
        public var description: String { "\(directory): \(reason)" }
    }

    /// What an export or import wrote.
    public struct Outcome: Sendable {
        /// Tensors written to the checkpoint.
        public var tensors = 0
        /// Bytes of the checkpoint's tensors.
        public var bytes = 0
        /// Whether the lookahead head was freshly initialised (an imported DeepSeek-V2 checkpoint without one).
        public var initialisedLookahead = false
    }

    /// Writes the Chronos-native model in `source` (a stripped checkpoint's experts come from its
    /// cache) as `format` into the new directory `target`, with the tokenizer, the trained
    /// predictors and the other companion files. `progress` hears after each tensor how many
    /// are written of how many.
    @discardableResult
    public static func export(
        _ source: URL, as format: Format, to target: URL, progress: ((_ written: Int, _ total: Int) -> Void)? = nil
    ) throws -> Outcome {
        let configuration = try chronosConfiguration(source)
        let model = try ModelLoader.load(directory: source)
        let parameters = model.namedParameters()
        if let quantized = parameters.first(where: { $0.tensor.dtype.isQuantized }) {
            throw Unsupported(
                directory: source.path,
                reason: "\(quantized.name) is \(quantized.tensor.dtype.rawValue), which PyTorch cannot read: export the float model")
        }
        let dtype = Dictionary(grouping: parameters, by: \.tensor.dtype).max { $0.value.count < $1.value.count }?.key ?? .f32
        var config = try jsonObject(JSONEncoder().encode(configuration))
        var tensors = parameters
        var lookahead: [(name: String, tensor: Tensor)] = []
        switch format {
        case .transformers:
            config["architectures"] = ["ChronosForCausalLM"]
            // transformers checks any `layer_types` against its own vocabulary.
            config["layer_types"] = configuration.attentionKinds.map(\.transformersName)
            config["auto_map"] = [
                "AutoConfig": "modeling_chronos.ChronosConfig", "AutoModelForCausalLM": "modeling_chronos.ChronosForCausalLM"
            ]
        case .deepSeekV2:
            try checkDeepSeekShape(configuration, directory: source.path)
            config = deepSeekConfig(configuration)
            let weights = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.tensor) })
            tensors = deepSeekTensors(weights, configuration: configuration)
            lookahead = parameters.filter { $0.name.hasPrefix("lookahead.") }
        }
        config["dtype"] = torchName(dtype)
        var outcome = Outcome()
        try ModelDirectory.create(at: target, companionsFrom: source) { staging in
            outcome = try write(tensors, to: ModelDirectory(staging).checkpoint, progress: progress)
            try AtomicFile.write(
                JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]), to: ModelDirectory(staging).config)
            switch format {
            case .transformers:
                try AtomicFile.write(modelingModule(), to: ModelDirectory(staging).modelingModule)
            case .deepSeekV2:
                try SafetensorsWriter.write(
                    lookahead, metadata: ["format": "pt"], to: ModelDirectory(staging).exportedLookahead)
            }
        }
        return outcome
    }

    /// Reads the transformers checkpoint in `source` (`model_type` `chronos`, or `deepseek_v2` in
    /// the shape `export` writes) into the new Chronos model directory `target`, with its
    /// companion files. A DeepSeek-V2 checkpoint without `chronos_lookahead.safetensors` gets a
    /// freshly initialised lookahead head (train it with `chronos train lookahead`).
    @discardableResult
    public static func importModel(
        _ source: URL, to target: URL, progress: ((_ written: Int, _ total: Int) -> Void)? = nil
    ) throws -> Outcome {
        let modelType = try ModelRegistry.modelType(directory: source)
        let checkpoint = try SafetensorsCheckpoint(directory: source)
        var weights: [String: Tensor] = [:]
        for name in checkpoint.tensorNames { weights[name] = try checkpoint.tensor(named: name) }
        var configuration: ChronosConfiguration
        var outcome = Outcome()
        switch modelType {
        case ChronosConfiguration.modelType:
            configuration = try ChronosConfiguration(directory: source)
            configuration.architectures = ["ChronosForCausalLM"]
        case "deepseek_v2":
            configuration = try chronosConfiguration(DeepSeekConfiguration(directory: source), directory: source.path)
            weights = try chronosTensors(weights, configuration: configuration)
            let lookaheadURL = ModelDirectory(source).exportedLookahead
            if FileManager.default.fileExists(atPath: lookaheadURL.path) {
                let file = try SafetensorsFile(url: lookaheadURL)
                for name in file.tensorNames { weights[name] = try file.tensor(named: name) }
                let rows = weights[ChronosWeightNames.lookaheadOutput + ".weight"]?.shape.first ?? configuration.experts
                configuration.lookaheadSteps = rows / configuration.experts - 1
            } else {
                let fresh = try TransformerLanguageModel.initialize(configuration: configuration, seed: 0)
                for (name, tensor) in fresh where name.hasPrefix("lookahead.") { weights[name] = tensor }
                outcome.initialisedLookahead = true
            }
        default:
            throw Unsupported(
                directory: source.path, reason: "model_type '\(modelType)' cannot be imported: only 'chronos' and 'deepseek_v2' can")
        }
        if configuration.tieWordEmbeddings { weights[ChronosWeightNames.lmHead] = nil }
        // Building the model checks every tensor's name and shape against the configuration.
        let model = try TransformerLanguageModel(configuration: configuration, weights: weights)
        try ModelDirectory.create(at: target, companionsFrom: source) { staging in
            try model.save(to: staging, progress: progress)
        }
        let parameters = model.namedParameters()
        outcome.tensors = parameters.count
        outcome.bytes = parameters.reduce(0) { $0 + $1.tensor.byteCount }
        return outcome
    }

    /// The configuration of the Chronos-native model in `directory`, or `Unsupported` naming the
    /// architecture it has instead.
    private static func chronosConfiguration(_ directory: URL) throws -> ChronosConfiguration {
        let modelType = try ModelRegistry.modelType(directory: directory)
        guard modelType == ChronosConfiguration.modelType else {
            throw Unsupported(directory: directory.path, reason: "only Chronos-native models are exported; this one is '\(modelType)'")
        }
        return try ChronosConfiguration(directory: directory)
    }

    /// Writes `tensors` as one safetensors file, reporting progress.
    private static func write(
        _ tensors: [(name: String, tensor: Tensor)], to url: URL, progress: ((Int, Int) -> Void)?
    ) throws -> Outcome {
        let entries = tensors.map { SafetensorsWriter.Entry(name: $0.name, dtype: $0.tensor.dtype, shape: $0.tensor.shape) }
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: url) { index in
            defer { progress?(index + 1, entries.count) }
            return tensors[index].tensor
        }
        return Outcome(tensors: tensors.count, bytes: tensors.reduce(0) { $0 + $1.tensor.byteCount })
    }

    /// The bytes of `modeling_chronos.py`, from this module's resources.
    private static func modelingModule() throws -> Data {
        guard let url = Bundle.module.url(forResource: "modeling_chronos", withExtension: "py") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "modeling_chronos.py in the ChronosStorage resources"])
        }
        return try Data(contentsOf: url)
    }

    /// `data` as a JSON object.
    private static func jsonObject(_ data: Data) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.coderReadCorrupt)
        }
        return object
    }

    /// PyTorch's name for `dtype`.
    private static func torchName(_ dtype: DType) -> String {
        switch dtype {
        case .bf16: "bfloat16"
        case .f16: "float16"
        default: "float32"
        }
    }
}

// MARK: - DeepSeek-V2

extension ModelExport {
    /// Refuses a Chronos model that a DeepSeek-V2 checkpoint cannot express, naming the setting.
    private static func checkDeepSeekShape(_ c: ChronosConfiguration, directory: String) throws {
        func require(_ condition: Bool, _ reason: String) throws {
            if !condition { throw Unsupported(directory: directory, reason: "cannot be a deepseek_v2 checkpoint: \(reason)") }
        }
        try require(
            c.attentionKinds.allSatisfy { $0 == .mla },
            "layer_types has sliding-window layers; DeepSeek-V2 has latent attention in every layer (train with --attention mla)")
        try require(
            !c.normTopKProb,
            "norm_topk_prob is true; DeepSeek-V2's router never renormalises the chosen scores (train with --attention mla)")
        try require(c.sharedExperts > 0, "num_shared_experts is 0; DeepSeek-V2 always has a shared expert")
        try require(
            c.sharedExpertIntermediateSize % c.moeIntermediateSize == 0,
            "shared_expert_intermediate_size (\(c.sharedExpertIntermediateSize)) is not a multiple of moe_intermediate_size (\(c.moeIntermediateSize))"
        )
        // transformers' DeepSeek-V2 normalises the key/value latent with ε = 1e-6 whatever rms_norm_eps says.
        try require(c.rmsNormEps == 1e-6, "rms_norm_eps is \(c.rmsNormEps); the latent norm of DeepSeek-V2 uses 1e-6")
    }

    /// `config.json` of the DeepSeek-V2 checkpoint of `c` (transformers 5's spelling, with the
    /// plain `rope_theta` older readers take). `routed_scaling_factor` is left at its default of
    /// 1: JSON would write 1.0 as the integer 1, which transformers refuses for a float field.
    private static func deepSeekConfig(_ c: ChronosConfiguration) -> [String: Any] {
        let shared = c.sharedExperts * c.sharedExpertIntermediateSize / c.moeIntermediateSize
        var config: [String: Any] = [
            "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "vocab_size": c.vocabSize,
            "hidden_size": c.hiddenSize, "intermediate_size": shared * c.moeIntermediateSize,
            "moe_intermediate_size": c.moeIntermediateSize, "num_hidden_layers": c.hiddenLayers,
            "num_attention_heads": c.attentionHeads, "num_key_value_heads": c.attentionHeads, "q_lora_rank": NSNull(),
            "kv_lora_rank": c.kvLatentDim, "qk_nope_head_dim": c.headDim, "qk_rope_head_dim": c.ropeDim, "v_head_dim": c.headDim,
            "n_routed_experts": c.experts, "num_experts_per_tok": c.expertsPerToken, "n_shared_experts": shared,
            "first_k_dense_replace": 0, "moe_layer_freq": 1, "topk_method": "greedy", "n_group": NSNull(), "topk_group": NSNull(),
            "scoring_func": "softmax", "norm_topk_prob": false, "attention_bias": false,
            "hidden_act": "silu", "rms_norm_eps": decimal(c.rmsNormEps), "rope_theta": decimal(c.ropeTheta),
            "rope_parameters": ["rope_theta": decimal(c.ropeTheta), "rope_type": "default"],
            "tie_word_embeddings": c.tieWordEmbeddings, "use_cache": true
        ]
        if let maxPositionEmbeddings = c.maxPositionEmbeddings { config["max_position_embeddings"] = maxPositionEmbeddings }
        if let bos = c.bosTokenId { config["bos_token_id"] = bos }
        if c.eosTokenId.count == 1 {
            config["eos_token_id"] = c.eosTokenId[0]
        } else if !c.eosTokenId.isEmpty {
            config["eos_token_id"] = c.eosTokenId
        }
        if let pad = c.padTokenId { config["pad_token_id"] = pad }
        return config
    }

    /// The checks a DeepSeek-V2 configuration passes to be read back as a Chronos model, and that model's configuration.
    private static func chronosConfiguration(_ d: DeepSeekConfiguration, directory: String) throws -> ChronosConfiguration {
        func require(_ condition: Bool, _ field: String, _ value: Any) throws {
            if !condition {
                throw Unsupported(directory: directory, reason: "\(field) = \(value) has no Chronos equivalent")
            }
        }
        try require(d.qLoraRank == nil, "q_lora_rank", d.qLoraRank.map(String.init) ?? "null")
        try require(d.firstKDenseReplace == 0, "first_k_dense_replace", d.firstKDenseReplace)
        try require(d.topkMethod == "greedy", "topk_method", d.topkMethod)
        try require(d.scoringFunc == "softmax", "scoring_func", d.scoringFunc)
        try require(!d.normTopKProb, "norm_topk_prob", d.normTopKProb)
        try require(d.routedScalingFactor == 1, "routed_scaling_factor", d.routedScalingFactor)
        try require(d.vHeadDim == d.qkNopeHeadDim, "v_head_dim", d.vHeadDim)
        try require(d.sharedExperts > 0, "n_shared_experts", d.sharedExperts)
        try require(d.rope.ropeType == "default", "rope type", d.rope.ropeType)
        try require(d.rmsNormEps == 1e-6, "rms_norm_eps", d.rmsNormEps)
        var c = ChronosConfiguration(
            vocabSize: d.vocabSize, hiddenSize: d.hiddenSize, hiddenLayers: d.hiddenLayers, attentionHeads: d.attentionHeads,
            keyValueHeads: d.attentionHeads, headDim: d.qkNopeHeadDim, kvLatentDim: d.kvLoraRank, ropeDim: d.qkRopeHeadDim,
            layerTypes: Array(repeating: .mla, count: d.hiddenLayers), experts: d.routedExperts, expertsPerToken: d.expertsPerToken,
            sharedExperts: d.sharedExperts, moeIntermediateSize: d.moeIntermediateSize,
            sharedExpertIntermediateSize: d.moeIntermediateSize, normTopKProb: false, rmsNormEps: d.rmsNormEps,
            ropeTheta: d.rope.ropeTheta, tieWordEmbeddings: d.tieWordEmbeddings, maxPositionEmbeddings: d.maxPositionEmbeddings,
            bosTokenId: d.bosTokenId, eosTokenId: d.eosTokenId)
        c.architectures = ["ChronosForCausalLM"]
        try c.validate(file: directory)
        return c
    }

    /// `value` as the shortest decimal that reads back as it (1e-06, not 9.99999997e-07).
    private static func decimal(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }

    /// Positions of the `width` rotate-half RoPE dimensions in DeepSeek's interleaved order:
    /// its dimension 2i is dimension i, its 2i + 1 is i + width/2.
    private static func interleavedOrder(_ width: Int) -> [Int] {
        (0..<(width / 2)).flatMap { [$0, $0 + width / 2] }
    }

    /// The inverse of `interleavedOrder`: where each rotate-half dimension sits in DeepSeek's order.
    private static func halfSplitOrder(_ width: Int) -> [Int] {
        (0..<(width / 2)).map { 2 * $0 } + (0..<(width / 2)).map { 2 * $0 + 1 }
    }

    /// The Chronos weights `w` under DeepSeek-V2's names and layout, in checkpoint order.
    private static func deepSeekTensors(_ w: [String: Tensor], configuration c: ChronosConfiguration) -> [(name: String, tensor: Tensor)] {
        let heads = c.attentionHeads, d = c.headDim, r = c.ropeDim, l = c.kvLatentDim
        var out: [(String, Tensor)] = [
            (ChronosWeightNames.embedding, w[ChronosWeightNames.embedding]!),
            (ChronosWeightNames.finalNorm, w[ChronosWeightNames.finalNorm]!),
            // The head is written even when tied, for readers that do not tie.
            (ChronosWeightNames.lmHead, w[ChronosWeightNames.lmHead] ?? w[ChronosWeightNames.embedding]!)
        ]
        for layer in 0..<c.hiddenLayers {
            func chronos(_ name: String) -> Tensor { w[ChronosWeightNames.layer(layer, name)]! }
            func add(_ name: String, _ tensor: Tensor) { out.append((ChronosWeightNames.layer(layer, name), tensor)) }
            let q = chronos("self_attn.q_proj.weight"), kRope = chronos("self_attn.k_rope_proj.weight")
            let rope = interleavedOrder(r)
            add(
                "self_attn.q_proj.weight",
                q.stackingRows(
                    (0..<heads).flatMap { h -> [Range<Int>] in
                        let base = h * (r + d)
                        return [(base + r)..<(base + r + d)] + rope.map { (base + $0)..<(base + $0 + 1) }
                    }))
            let ropeRows: [(tensor: Tensor, rows: Range<Int>)] = rope.map { (kRope, $0..<($0 + 1)) }
            add("self_attn.kv_a_proj_with_mqa.weight", Tensor.stackingRows([(chronos("self_attn.kv_down_proj.weight"), 0..<l)] + ropeRows))
            add("self_attn.kv_a_layernorm.weight", chronos("self_attn.kv_norm.weight"))
            let kUp = chronos("self_attn.k_up_proj.weight"), vUp = chronos("self_attn.v_up_proj.weight")
            let headRows: [(tensor: Tensor, rows: Range<Int>)] = (0..<heads).flatMap { h -> [(tensor: Tensor, rows: Range<Int>)] in
                let rows = (h * d)..<((h + 1) * d)
                return [(kUp, rows), (vUp, rows)]
            }
            add("self_attn.kv_b_proj.weight", Tensor.stackingRows(headRows))
            for name in ["self_attn.o_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight", "mlp.gate.weight"] {
                add(name, chronos(name))
            }
            for expert in 0..<c.experts {
                let names = ChronosWeightNames.expert(ExpertKey(layer: layer, expert: expert))
                for name in [names.gate, names.up, names.down] { out.append((name, w[name]!)) }
            }
            let shared = (0..<c.sharedExperts).map { ChronosWeightNames.sharedExpert(layer: layer, index: $0) }
            add(
                "mlp.shared_experts.gate_proj.weight", Tensor.stackingRows(shared.map { (w[$0.gate]!, 0..<c.sharedExpertIntermediateSize) })
            )
            add("mlp.shared_experts.up_proj.weight", Tensor.stackingRows(shared.map { (w[$0.up]!, 0..<c.sharedExpertIntermediateSize) }))
            add("mlp.shared_experts.down_proj.weight", Tensor.joiningColumns(shared.map { w[$0.down]! }))
        }
        return out
    }

    /// DeepSeek-V2 weights `w` (as `deepSeekTensors` writes them) under Chronos's names and layout.
    private static func chronosTensors(_ w: [String: Tensor], configuration c: ChronosConfiguration) throws -> [String: Tensor] {
        let heads = c.attentionHeads, d = c.headDim, r = c.ropeDim, l = c.kvLatentDim
        var out: [String: Tensor] = [:]
        func take(_ name: String, rows: Int, columns: Int) throws -> Tensor {
            guard let tensor = w[name] else { throw ModelError.missingTensor(name: name, directory: "the deepseek_v2 checkpoint") }
            guard tensor.shape == [rows, columns] else {
                throw ModelError.shapeMismatch(tensor: name, expected: [rows, columns], found: tensor.shape)
            }
            guard !tensor.dtype.isQuantized else { throw ModelError.unsupportedDType(tensor: name, dtype: tensor.dtype.rawValue) }
            return tensor
        }
        let moved = Set(
            [
                "self_attn.q_proj.weight", "self_attn.kv_a_proj_with_mqa.weight", "self_attn.kv_b_proj.weight",
                "self_attn.kv_a_layernorm.weight"
            ]
                + ["gate", "up", "down"].map { "mlp.shared_experts.\($0)_proj.weight" })
        for (name, tensor) in w where !moved.contains(where: { name.hasSuffix(".\($0)") }) { out[name] = tensor }
        let rope = halfSplitOrder(r)
        for layer in 0..<c.hiddenLayers {
            func name(_ part: String) -> String { ChronosWeightNames.layer(layer, part) }
            let q = try take(name("self_attn.q_proj.weight"), rows: heads * (d + r), columns: c.hiddenSize)
            out[name("self_attn.q_proj.weight")] = q.stackingRows(
                (0..<heads).flatMap { h -> [Range<Int>] in
                    let base = h * (d + r)
                    return rope.map { (base + d + $0)..<(base + d + $0 + 1) } + [base..<(base + d)]
                })
            let kvA = try take(name("self_attn.kv_a_proj_with_mqa.weight"), rows: l + r, columns: c.hiddenSize)
            out[name("self_attn.kv_down_proj.weight")] = kvA.stackingRows([0..<l])
            out[name("self_attn.k_rope_proj.weight")] = kvA.stackingRows(rope.map { (l + $0)..<(l + $0 + 1) })
            out[name("self_attn.kv_norm.weight")] = w[name("self_attn.kv_a_layernorm.weight")]
            let kvB = try take(name("self_attn.kv_b_proj.weight"), rows: heads * 2 * d, columns: l)
            out[name("self_attn.k_up_proj.weight")] = kvB.stackingRows((0..<heads).map { (2 * $0 * d)..<((2 * $0 + 1) * d) })
            out[name("self_attn.v_up_proj.weight")] = kvB.stackingRows((0..<heads).map { ((2 * $0 + 1) * d)..<((2 * $0 + 2) * d) })
            let width = c.sharedExpertIntermediateSize, total = c.sharedExperts * width
            let gate = try take(name("mlp.shared_experts.gate_proj.weight"), rows: total, columns: c.hiddenSize)
            let up = try take(name("mlp.shared_experts.up_proj.weight"), rows: total, columns: c.hiddenSize)
            let down = try take(name("mlp.shared_experts.down_proj.weight"), rows: c.hiddenSize, columns: total)
            for s in 0..<c.sharedExperts {
                let names = ChronosWeightNames.sharedExpert(layer: layer, index: s), part = (s * width)..<((s + 1) * width)
                out[names.gate] = gate.stackingRows([part])
                out[names.up] = up.stackingRows([part])
                out[names.down] = down.columns(part)
            }
        }
        return out
    }
}

extension Tensor {
    /// Rows of 2-D float tensors of one width, stacked in the order given; the bytes are copied
    /// unchanged when the parts share a type, and all are widened to f32 when they do not.
    static func stackingRows(_ parts: [(tensor: Tensor, rows: Range<Int>)]) -> Tensor {
        let dtype = commonType(parts.map(\.tensor)), columns = parts[0].tensor.shape[1], rowBytes = dtype.byteCount(columns)
        let out = Tensor(zeros: [parts.reduce(0) { $0 + $1.rows.count }, columns], dtype: dtype)
        var row = 0
        for (tensor, rows) in parts {
            let source = tensor.dtype == dtype ? tensor.contiguous() : tensor.converted(to: dtype)
            (out.rawPointer + row * rowBytes).copyMemory(
                from: source.rawPointer + rows.lowerBound * rowBytes, byteCount: rows.count * rowBytes)
            row += rows.count
        }
        return out
    }

    /// This 2-D tensor's `ranges` of rows, stacked in the order given.
    func stackingRows(_ ranges: [Range<Int>]) -> Tensor {
        Tensor.stackingRows(ranges.map { (self, $0) })
    }

    /// 2-D float tensors with equal row counts, side by side (in f32 when their types differ).
    static func joiningColumns(_ parts: [Tensor]) -> Tensor {
        let dtype = commonType(parts), rows = parts[0].shape[0]
        let out = Tensor(zeros: [rows, parts.reduce(0) { $0 + $1.shape[1] }], dtype: dtype)
        let outRow = dtype.byteCount(out.shape[1])
        var offset = 0
        for part in parts {
            let source = part.dtype == dtype ? part.contiguous() : part.converted(to: dtype), partRow = dtype.byteCount(part.shape[1])
            for row in 0..<rows {
                (out.rawPointer + row * outRow + offset).copyMemory(from: source.rawPointer + row * partRow, byteCount: partRow)
            }
            offset += partRow
        }
        return out
    }

    /// Columns `range` of this 2-D float tensor, as a new tensor.
    func columns(_ range: Range<Int>) -> Tensor {
        let rows = shape[0], source = contiguous(), sourceRow = dtype.byteCount(shape[1]), outRow = dtype.byteCount(range.count)
        let out = Tensor(zeros: [rows, range.count], dtype: dtype)
        for row in 0..<rows {
            (out.rawPointer + row * outRow).copyMemory(
                from: source.rawPointer + row * sourceRow + dtype.byteCount(range.lowerBound), byteCount: outRow)
        }
        return out
    }

    /// The type of `tensors` when they share one, else f32.
    private static func commonType(_ tensors: [Tensor]) -> DType {
        Set(tensors.map(\.dtype)).count == 1 ? tensors[0].dtype : .f32
    }
}
