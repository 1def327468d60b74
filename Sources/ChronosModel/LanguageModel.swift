import ChronosTensor

/// A causal language model: token ids in, next-token logits out, with a KV cache carrying the
/// prefix between calls.
///
/// The same forward code serves a whole prompt (prefill), one token at a time (decode) and
/// training; routed experts come from the model's `ExpertProvider`.
public protocol LanguageModel: AnyObject, Sendable {
    /// Architecture and sizes, as read from `config.json`.
    var summary: ModelSummary { get }
    /// Parameter and byte counts, for `chronos inspect` and memory budgets.
    var parameterCounts: ParameterCounts { get }
    /// Where the MoE layers get routed experts' weights.
    var experts: any ExpertProvider { get }

    /// An empty cache for one generation.
    func makeCache() -> ModelCache

    /// Runs several sequences in one pass, each sequence's `ids` at positions `cache.offset…` of
    /// its own cache, attending to its cached prefix and to its ids before each, and advances
    /// each cache by its `ids.count`: for each sequence, the logits `[ids.count, vocabSize]` and
    /// whatever else `options` asks for. The weights are read once for all the sequences'
    /// tokens, which is what makes a pass over several generations cheaper than one pass each.
    /// Under `Autograd.recording` every tensor of the output is in the gradient graph.
    func forward(_ sequences: [ForwardSequence], options: ForwardOptions) throws -> [ForwardOutput]

    /// The checkpoint tensor names of a routed expert, or nil when `key` names no expert.
    func checkpointNames(for key: ExpertKey) -> ExpertWeightNames?
}

/// One sequence's part of a forward pass: its next ids and its cache.
public struct ForwardSequence {
    /// The ids to run, at positions `cache.offset…`.
    public var ids: [Int]
    /// The sequence's cache: its prefix, observer and expert provider.
    public var cache: ModelCache

    /// `ids` of the sequence whose state is `cache`.
    public init(ids: [Int], cache: ModelCache) {
        self.ids = ids
        self.cache = cache
    }
}

extension LanguageModel {
    /// Runs `ids` at positions `cache.offset…`, each attending to the cached prefix and to the
    /// ids before it, and advances the cache by `ids.count`: the logits `[ids.count, vocabSize]`
    /// and whatever else `options` asks for.
    public func forward(_ ids: [Int], cache: ModelCache, options: ForwardOptions) throws -> ForwardOutput {
        try forward([ForwardSequence(ids: ids, cache: cache)], options: options)[0]
    }

    /// Logits `[ids.count, vocabSize]` for `ids` placed at positions `cache.offset…`, each
    /// attending to the cached prefix and to the ids before it; advances the cache by `ids.count`.
    public func forward(_ ids: [Int], cache: ModelCache) throws -> Tensor {
        try forward(ids, cache: cache, options: .recordingAll).logits
    }
}

/// What a model is: its family and the sizes that matter to memory and routing.
public struct ModelSummary: Sendable, Equatable {
    /// `model_type` from `config.json` (`llama`, `mixtral`, …).
    public var modelType: String
    /// The first of `architectures` in `config.json` (`MixtralForCausalLM`, …), when present.
    public var architecture: String?
    /// Rows of the embedding table and of the logits.
    public var vocabSize: Int
    /// Width of the residual stream.
    public var hiddenSize: Int
    /// Number of decoder layers.
    public var layerCount: Int
    /// Query heads, key/value heads and the width of one head.
    public var attentionHeads: Int, keyValueHeads: Int, headDim: Int
    /// Routed experts of each layer (0 for a dense layer).
    public var expertsPerLayer: [Int]
    /// Experts each token is routed to in an MoE layer (0 for a dense model).
    public var expertsPerToken: Int
    /// Whether the MoE layers also have an always-active shared expert.
    public var hasSharedExpert: Bool
    /// Whether the LM head is the embedding table (`tie_word_embeddings`).
    public var tiedEmbeddings: Bool
    /// `bos_token_id` from `config.json`, when present.
    public var bosTokenId: Int?
    /// `eos_token_id` from `config.json` (one id or several), empty when absent.
    public var eosTokenIds: [Int]
    /// `max_position_embeddings` from `config.json`, when present.
    public var maxPositionEmbeddings: Int?
    /// K of the lookahead router head (it predicts tokens t … t+K), nil without one.
    public var lookaheadSteps: Int?

    /// A summary with every field given.
    public init(
        modelType: String, architecture: String?, vocabSize: Int, hiddenSize: Int, layerCount: Int,
        attentionHeads: Int, keyValueHeads: Int, headDim: Int, expertsPerLayer: [Int], expertsPerToken: Int,
        hasSharedExpert: Bool, tiedEmbeddings: Bool, bosTokenId: Int?, eosTokenIds: [Int], maxPositionEmbeddings: Int?,
        lookaheadSteps: Int? = nil
    ) {
        self.modelType = modelType
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads
        self.headDim = headDim
        self.expertsPerLayer = expertsPerLayer
        self.expertsPerToken = expertsPerToken
        self.hasSharedExpert = hasSharedExpert
        self.tiedEmbeddings = tiedEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.lookaheadSteps = lookaheadSteps
    }

    /// Whether any layer routes tokens to experts.
    public var isMixtureOfExperts: Bool { expertsPerLayer.contains { $0 > 0 } }
}

/// How many parameters a model has, how many one token uses, and the bytes they occupy.
public struct ParameterCounts: Sendable, Equatable {
    /// Parameters outside the routed experts: embeddings, attention, norms, routers, shared
    /// experts, dense MLPs and the LM head (a tied head counts once).
    public var dense: Int
    /// Parameters of all routed experts.
    public var expert: Int
    /// Parameters one token uses: the dense ones plus top-k experts in each MoE layer.
    public var activePerToken: Int
    /// Bytes of the dense parameters, in their stored dtypes.
    public var denseBytes: Int
    /// Bytes of all routed experts, in their stored dtypes.
    public var expertBytes: Int

    /// Counts with every field given.
    public init(dense: Int, expert: Int, activePerToken: Int, denseBytes: Int, expertBytes: Int) {
        self.dense = dense
        self.expert = expert
        self.activePerToken = activePerToken
        self.denseBytes = denseBytes
        self.expertBytes = expertBytes
    }

    /// Every parameter.
    public var total: Int { dense + expert }
    /// Every byte.
    public var totalBytes: Int { denseBytes + expertBytes }
}
