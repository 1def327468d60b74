import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// The network behind the predictors trained from traces (the intent classifier and the
/// trained lookahead head): from a hidden state, G independent distributions over E experts.
///
///     x̂      = x / √(mean(x²) + ε)          the input at unit RMS
///     z      = SiLU(W_1 · x̂ + b_1)          W_1: [W, H]
///     logits = W_2 · z + b_2                W_2: [G·E, W], row g·E + e
///     P_g    = softmax_e(logits[g·E ..< (g+1)·E])
///
/// The input is RMS-normalised first: hidden states of trained models run at RMS in the tens,
/// which saturates an unnormalised first layer, and training then falls back to the experts'
/// overall frequencies, whatever the input says.
///
/// On disk it is a safetensors file in the model directory holding `hidden.weight`,
/// `hidden.bias`, `output.weight` and `output.bias` (f32), with `__metadata__` naming the kind
/// of predictor (`chronos_predictor`), `input_norm` (`rms`), the decoder indices of the MoE
/// layers it predicts (`layers`, comma-separated), `experts`, `hidden_size` and the decoder
/// layer after which it reads the hidden state (`input_layer`; 0 when absent), plus the
/// predictor's own keys.
public struct ExpertDistributionNetwork: Sendable {
    /// W_1, b_1, W_2, b_2, in that order (leaves of the gradient graph while training).
    public var parameters: [(name: String, tensor: Tensor)]
    /// G: distributions produced per input.
    public let groups: Int
    /// E: experts per distribution.
    public let experts: Int

    /// The tensor names, in `parameters` order.
    static let names = ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]

    /// A freshly initialised network for inputs of `inputWidth` (uniform ±1/√fan-in, seeded).
    public init(inputWidth: Int, width: Int, groups: Int, experts: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        func uniform(_ shape: [Int], fanIn: Int) -> Tensor {
            let bound = 1 / Float(fanIn).squareRoot()
            let count = shape.reduce(1, *)
            return Tensor(shape: shape, values: (0..<count).map { _ in Float(random.nextUnit() * 2 - 1) * bound })
        }
        self.init(
            validated: [
                uniform([width, inputWidth], fanIn: inputWidth), Tensor(zeros: [width]),
                uniform([groups * experts, width], fanIn: width), Tensor(zeros: [groups * experts])
            ],
            groups: groups, experts: experts)
    }

    private init(validated tensors: [Tensor], groups: Int, experts: Int) {
        parameters = zip(Self.names, tensors).map { ($0, $1) }
        self.groups = groups
        self.experts = experts
    }

    /// H: the input width.
    public var inputWidth: Int { parameters[0].tensor.shape[1] }
    /// W: the hidden width.
    public var width: Int { parameters[0].tensor.shape[0] }

    /// Logits `[N, G, E]` for inputs `[N, H]` (recorded for gradients while recording is on).
    public func logits(_ x: Tensor) -> Tensor {
        let p = parameters.map(\.tensor)
        let unit = Tensor(shape: [inputWidth], values: [Float](repeating: 1, count: inputWidth))
        let z = Tensor.linear(x.rmsNorm(weight: unit, eps: 1e-6), weight: p[0], bias: p[1]).silu()
        return Tensor.linear(z, weight: p[2], bias: p[3]).reshaped([x.shape[0], groups, experts])
    }

    /// The G distributions for one input of `inputWidth` floats.
    public func probabilities(_ x: [Float]) -> [[Float]] {
        let probabilities = logits(Tensor(shape: [1, x.count], values: x)).reshaped([groups, experts]).softmax().floats
        return (0..<groups).map { Array(probabilities[($0 * experts)..<(($0 + 1) * experts)]) }
    }

    /// Writes the network to `url`, atomically, as a predictor of `kind` over MoE layers
    /// `layers` reading the hidden state after decoder layer `inputLayer`, with the metadata
    /// `read` and `check` expect plus `extra`.
    public func write(to url: URL, kind: String, layers: [Int], inputLayer: Int, extra: [String: String]) throws {
        let metadata = extra.merging([
            "chronos_predictor": kind, "input_norm": "rms", "layers": layers.map(String.init).joined(separator: ","),
            "experts": String(experts), "hidden_size": String(inputWidth), "input_layer": String(inputLayer)
        ]) { _, common in common }
        try SafetensorsWriter.write(parameters.map { ($0.name, $0.tensor.detached().contiguous()) }, metadata: metadata, to: url)
    }

    /// Reads a network written by `write`, with its metadata; `kind` must match the file's
    /// `chronos_predictor`, and the tensors must agree with `layers`·`steps` groups of `experts`.
    private static func read(_ url: URL, kind: String, groupsPerLayer: (_ metadata: [String: String]) throws -> Int)
        throws -> (network: ExpertDistributionNetwork, layers: [Int], inputLayer: Int, metadata: [String: String])
    {
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(url: url)
        } catch {
            throw PredictorFileError(file: url.path, reason: "\(error)")
        }
        let metadata = file.metadata
        func invalid(_ reason: String) -> PredictorFileError { PredictorFileError(file: url.path, reason: reason) }
        guard metadata["chronos_predictor"] == kind else {
            throw invalid("it is not a \(kind) predictor (chronos_predictor is \(metadata["chronos_predictor"] ?? "missing"))")
        }
        guard metadata["input_norm"] == "rms" else {
            throw invalid("it was trained on unnormalised inputs by an earlier version (retrain it)")
        }
        let layers = (metadata["layers"] ?? "").split(separator: ",").compactMap { Int($0) }
        guard !layers.isEmpty, let experts = metadata["experts"].flatMap(Int.init), experts > 0 else {
            throw invalid("its metadata lacks the MoE layers or the expert count")
        }
        var inputLayer = 0
        if let text = metadata["input_layer"] {
            guard let layer = Int(text), layer >= 0 else { throw invalid("its input_layer '\(text)' is not a decoder layer index") }
            inputLayer = layer
        }
        let groups = try layers.count * groupsPerLayer(metadata)
        let tensors = try names.map { name -> Tensor in
            do {
                return try file.tensor(named: name).converted(to: .f32)
            } catch {
                throw invalid("\(error)")
            }
        }
        let width = tensors[0].shape.first ?? 0, input = tensors[0].shape.count == 2 ? tensors[0].shape[1] : 0
        let expected = [[width, input], [width], [groups * experts, width], [groups * experts]]
        for (index, tensor) in tensors.enumerated() where tensor.shape != expected[index] {
            throw invalid("tensor '\(names[index])' has shape \(tensor.shape), expected \(expected[index])")
        }
        return (ExpertDistributionNetwork(validated: tensors, groups: groups, experts: experts), layers, inputLayer, metadata)
    }

    /// The predictor of `kind` saved as `fileName` in the model directory `directory`, read and
    /// checked against `summary`'s model; nil when there is none, an error when it does not fit.
    static func load(
        _ fileName: String, in directory: URL, kind: String, summary: ModelSummary,
        groupsPerLayer: (_ metadata: [String: String]) throws -> Int
    )
        throws -> (network: ExpertDistributionNetwork, layers: [Int], inputLayer: Int, metadata: [String: String])?
    {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let loaded = try read(url, kind: kind, groupsPerLayer: groupsPerLayer)
        try check(
            file: url.path, layers: loaded.layers, experts: loaded.network.experts, inputWidth: loaded.network.inputWidth,
            inputLayer: loaded.inputLayer, against: summary)
        return loaded
    }

    /// Checks that a predictor over `layers` with `experts` experts and inputs of `inputWidth`
    /// taken after decoder layer `inputLayer` fits `summary`'s model; the error names `file`.
    private static func check(
        file: String, layers: [Int], experts: Int, inputWidth: Int, inputLayer: Int,
        against summary: ModelSummary
    ) throws {
        guard inputLayer < summary.expertsPerLayer.count else {
            throw PredictorFileError(
                file: file,
                reason:
                    "it reads the hidden state after decoder layer \(inputLayer); the model has \(summary.expertsPerLayer.count) layers (retrain it)"
            )
        }
        let moeLayers = summary.expertsPerLayer.indices.filter { summary.expertsPerLayer[$0] > 0 }
        guard layers == moeLayers, moeLayers.allSatisfy({ summary.expertsPerLayer[$0] == experts }), inputWidth == summary.hiddenSize else {
            throw PredictorFileError(
                file: file,
                reason:
                    "it predicts \(experts) experts in layers \(layers) from hidden states of width \(inputWidth); the model has MoE layers \(moeLayers) of \(moeLayers.map { summary.expertsPerLayer[$0] }) experts and hidden size \(summary.hiddenSize) (retrain it)"
            )
        }
    }
}

/// A predictor file that cannot be used with this model.
public struct PredictorFileError: Error, CustomStringConvertible {
    /// The file.
    public var file: String
    /// What is wrong.
    public var reason: String

    /// A one-line explanation.
    public var description: String { "\(file): \(reason)" }
}
