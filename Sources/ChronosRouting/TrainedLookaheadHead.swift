import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// A lookahead router trained from an activation trace for any MoE model, the model itself left
/// untouched: from the hidden state of token t after an early decoder layer (`inputLayer`), for
/// every future offset k = 1…K and
/// every MoE layer, a distribution over that layer's experts (groups ordered offset-major:
/// group (k − 1)·M + m is offset k, MoE layer m). Unlike the Chronos-native head, which predicts
/// one distribution of expert ids shared by all layers, it predicts each layer separately.
///
/// Saved as `lookahead.safetensors` in the model directory (`ExpertDistributionNetwork`'s
/// layout, `chronos_predictor` = `lookahead`, plus `steps` = K); the offload runtime uses it
/// in place of a native head when the file is there.
public struct TrainedLookaheadHead: Sendable {
    /// The file name in a model directory.
    public static let fileName = ModelDirectory.Name.lookaheadHead
    /// The value of `chronos_predictor` in its metadata.
    static let kind = "lookahead"

    /// The network: input the hidden state, K·M groups of E experts.
    public var network: ExpertDistributionNetwork
    /// K: the furthest future token predicted.
    public let steps: Int
    /// Decoder indices of the MoE layers, in group order.
    public let layers: [Int]
    /// The decoder layer after which it reads the hidden state.
    public let inputLayer: Int

    /// A fresh head for `layers` with `experts` experts each, predicting `steps` tokens ahead
    /// from hidden states of `hiddenSize` taken after decoder layer `inputLayer`, with a hidden
    /// layer of `width`.
    public init(hiddenSize: Int, inputLayer: Int, layers: [Int], experts: Int, steps: Int, width: Int, seed: UInt64) {
        network = ExpertDistributionNetwork(
            inputWidth: hiddenSize, width: width, groups: steps * layers.count, experts: experts, seed: seed)
        self.steps = steps
        self.layers = layers
        self.inputLayer = inputLayer
    }

    /// For the hidden state of token t: `[k − 1][m]` is the distribution over the
    /// experts of MoE layer `layers[m]` at token t + k.
    public func probabilities(hidden: [Float]) -> [[[Float]]] {
        let groups = network.probabilities(hidden)
        return (0..<steps).map { k in Array(groups[(k * layers.count)..<((k + 1) * layers.count)]) }
    }

    /// For the hidden state of token t: `[k − 1][m]` is the `count` most probable
    /// experts of MoE layer `layers[m]` at token t + k, most probable first.
    public func topExperts(hidden: [Float], count: Int) -> [[[Int]]] {
        probabilities(hidden: hidden).map { layers in
            layers.map { distribution in
                distribution.withUnsafeBufferPointer { p in
                    Selection.topK(p.baseAddress!, count: distribution.count, k: min(count, distribution.count)).map(\.index)
                }
            }
        }
    }

    /// Writes `lookahead.safetensors` into the model directory `directory`, atomically.
    public func save(in directory: URL) throws {
        try network.write(
            to: directory.appendingPathComponent(Self.fileName), kind: Self.kind, layers: layers,
            inputLayer: inputLayer, extra: ["steps": String(steps)])
    }

    /// The head saved in the model directory `directory`, checked against `summary`; nil when
    /// there is none, an error when it does not fit the model.
    public static func load(from directory: URL, summary: ModelSummary) throws -> TrainedLookaheadHead? {
        var steps = 0
        let loaded = try ExpertDistributionNetwork.load(fileName, in: directory, kind: kind, summary: summary) { metadata in
            guard let k = metadata["steps"].flatMap(Int.init), k > 0 else {
                throw PredictorFileError(
                    file: directory.appendingPathComponent(fileName).path,
                    reason: "its metadata lacks a positive 'steps'")
            }
            steps = k
            return k
        }
        guard let (network, layers, inputLayer, _) = loaded else { return nil }
        return TrainedLookaheadHead(network: network, steps: steps, layers: layers, inputLayer: inputLayer)
    }

    private init(network: ExpertDistributionNetwork, steps: Int, layers: [Int], inputLayer: Int) {
        self.network = network
        self.steps = steps
        self.layers = layers
        self.inputLayer = inputLayer
    }
}
