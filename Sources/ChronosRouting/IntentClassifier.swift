import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// The intent classifier: from a prompt, the experts the generation that follows will use, per
/// MoE layer. Its input is the mean over the prompt's tokens of the hidden state after an early
/// decoder layer (`inputLayer`), so it can run as soon as that layer of the prefill is done,
/// while the later layers still compute; its output per MoE layer is a distribution over that layer's experts, trained
/// to match how often each expert is routed to over the next `horizon` tokens.
///
/// Saved as `intent.safetensors` in the model directory (`ExpertDistributionNetwork`'s layout,
/// `chronos_predictor` = `intent`, plus `horizon`).
public struct IntentClassifier: Sendable {
    /// The file name in a model directory.
    public static let fileName = ModelDirectory.Name.intentClassifier
    /// The value of `chronos_predictor` in its metadata.
    static let kind = "intent"

    /// The network: input the mean hidden state, one group per MoE layer.
    public var network: ExpertDistributionNetwork
    /// Decoder indices of the MoE layers, in group order.
    public let layers: [Int]
    /// The decoder layer after which it reads the hidden state.
    public let inputLayer: Int
    /// Generated tokens whose routing the targets counted.
    public let horizon: Int

    /// A fresh classifier for `layers` with `experts` experts each, from hidden states of
    /// `hiddenSize` taken after decoder layer `inputLayer`, with a hidden layer of `width`.
    public init(hiddenSize: Int, inputLayer: Int, layers: [Int], experts: Int, horizon: Int, width: Int, seed: UInt64) {
        network = ExpertDistributionNetwork(inputWidth: hiddenSize, width: width, groups: layers.count, experts: experts, seed: seed)
        self.layers = layers
        self.inputLayer = inputLayer
        self.horizon = horizon
    }

    /// The mean over rows of `hidden` (`[tokens, H]`): the classifier's input for a prompt.
    public static func features(_ hidden: Tensor) -> [Float] {
        hidden.sumRows().scaled(by: 1 / Float(max(1, hidden.shape[0]))).floats
    }

    /// The classifier's input for a traced prompt: the mean of its tokens' hidden states.
    public static func features(_ prompt: [ActivationTrace.Token]) -> [Float] {
        let width = prompt.first?.hidden.count ?? 0
        return features(Tensor(shape: [prompt.count, width], values: prompt.flatMap(\.hidden)))
    }

    /// The predicted share of the generation's routing that goes to each (layer, expert) pair
    /// (each MoE layer's shares sum to 1), for the prompt's hidden states `[tokens, H]` after
    /// layer `inputLayer`.
    public func scores(hidden: Tensor) -> [ExpertKey: Float] {
        scores(features: Self.features(hidden))
    }

    /// The predicted shares for a mean hidden state.
    public func scores(features: [Float]) -> [ExpertKey: Float] {
        var scores: [ExpertKey: Float] = [:]
        for (slot, distribution) in network.probabilities(features).enumerated() {
            for (expert, p) in distribution.enumerated() { scores[ExpertKey(layer: layers[slot], expert: expert)] = p }
        }
        return scores
    }

    /// Writes `intent.safetensors` into the model directory `directory`, atomically.
    public func save(in directory: URL) throws {
        try network.write(
            to: directory.appendingPathComponent(Self.fileName), kind: Self.kind, layers: layers,
            inputLayer: inputLayer, extra: ["horizon": String(horizon)])
    }

    /// The classifier saved in the model directory `directory`, checked against `summary`; nil
    /// when there is none, an error when it does not fit the model.
    public static func load(from directory: URL, summary: ModelSummary) throws -> IntentClassifier? {
        guard
            let (network, layers, inputLayer, metadata) = try ExpertDistributionNetwork.load(
                fileName, in: directory, kind: kind, summary: summary, groupsPerLayer: { _ in 1 })
        else { return nil }
        return IntentClassifier(
            network: network, layers: layers, inputLayer: inputLayer,
            horizon: metadata["horizon"].flatMap(Int.init) ?? 0)
    }

    private init(network: ExpertDistributionNetwork, layers: [Int], inputLayer: Int, horizon: Int) {
        self.network = network
        self.layers = layers
        self.inputLayer = inputLayer
        self.horizon = horizon
    }
}

/// The expert predictor: turns scores of (layer, expert) pairs into the set to load, under a
/// byte budget.
public enum ExpertPredictor {
    /// The pairs of highest score (ties: lower layer, then lower expert) whose bytes, added in
    /// that order, fit in `budget`; a pair too large for what is left is skipped.
    public static func hotSet(scores: [ExpertKey: Float], bytes: (ExpertKey) -> Int, budget: Int) -> [ExpertKey] {
        let ranked = scores.sorted { a, b in
            a.value != b.value ? a.value > b.value : (a.key.layer, a.key.expert) < (b.key.layer, b.key.expert)
        }
        var left = budget, chosen: [ExpertKey] = []
        for (key, _) in ranked {
            let size = bytes(key)
            guard size <= left else { continue }
            left -= size
            chosen.append(key)
        }
        return chosen
    }
}
