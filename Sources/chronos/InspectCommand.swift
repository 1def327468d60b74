import ArgumentParser
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// `chronos inspect`: what a model is and what it needs to run.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a model's architecture, parameter counts and the memory it needs.")

    @Argument(help: "Model directory.") var directory: String

    func run() throws {
        let model = try ModelLoader.load(directory: URL(fileURLWithPath: directory))
        let s = model.summary, p = model.parameterCounts
        print("architecture       \(s.modelType)\(s.architecture.map { " (\($0))" } ?? "")")
        print(
            "layers             \(s.layerCount), hidden \(s.hiddenSize), heads \(s.attentionHeads) / \(s.keyValueHeads) KV, head dim \(s.headDim), vocabulary \(s.vocabSize)"
        )
        if s.isMixtureOfExperts {
            let moeLayers = s.expertsPerLayer.filter { $0 > 0 }.count
            print(
                "experts            \(s.expertsPerLayer.max() ?? 0) per MoE layer on \(moeLayers) layers, top-\(s.expertsPerToken)\(s.hasSharedExpert ? ", shared expert" : "")"
            )
        }
        print("parameters         \(Self.count(p.total)) total, \(Self.count(p.activePerToken)) active per token")
        print("dense weights      \(Self.bytes(p.denseBytes)) (\(Self.count(p.dense)) parameters), always resident")
        print("expert weights     \(Self.bytes(p.expertBytes)) (\(Self.count(p.expert)) parameters)")
        print("fully resident     \(Self.bytes(p.totalBytes)) of weights in memory")
        printWeightTypes(model)
    }

    /// Each kind of tensor's types, and the weight bytes one decoded token reads: every dense
    /// matrix, one embedding row, and the routed experts' average share (top-k of each layer's).
    private func printWeightTypes(_ model: TransformerLanguageModel) {
        let dtypes = Dictionary(model.namedParameters().map { ($0.name, $0.tensor.dtype) }, uniquingKeysWith: { a, _ in a })
        let s = model.summary
        var kinds: [(kind: String, types: [DType: Int])] = []
        var bytesPerToken = 0.0
        for (name, role, shape, expert) in model.parameterRoles {
            guard let dtype = dtypes[name] else { continue }
            let kind = Self.kind(role, routed: expert != nil)
            if let index = kinds.firstIndex(where: { $0.kind == kind }) {
                kinds[index].types[dtype, default: 0] += 1
            } else {
                kinds.append((kind, [dtype: 1]))
            }
            let bytes = Double(dtype.byteCount(shape.reduce(1, *)))
            switch role {
            case .embedding: bytesPerToken += bytes / Double(max(1, shape[0]))
            default:
                if let expert {
                    let experts = s.expertsPerLayer[expert.layer]
                    bytesPerToken += bytes * Double(s.expertsPerToken) / Double(max(1, experts))
                } else {
                    bytesPerToken += bytes
                }
            }
        }
        for (index, entry) in kinds.enumerated() {
            let types = entry.types.sorted { $0.value > $1.value }.map { "\($0.key.rawValue) ×\($0.value)" }.joined(separator: ", ")
            print("\(index == 0 ? "weight types" : "            ")       \(entry.kind): \(types)")
        }
        print("bytes a token reads \(Self.bytes(Int(bytesPerToken))) of weights (dense matrices, one embedding row, top-k experts)")
    }

    /// The kind of tensor `role` names, as `inspect` groups them.
    private static func kind(_ role: ParameterRole, routed: Bool) -> String {
        switch role {
        case .embedding: "embedding"
        case .output: "LM head"
        case .attentionQuery, .attentionKey, .attentionValue, .attentionOutput: "attention"
        case .feedForwardGate, .feedForwardUp: routed ? "routed experts gate/up" : "feed-forward gate/up"
        case .feedForwardDown: routed ? "routed experts down" : "feed-forward down"
        case .router: "routers"
        case .vector: "norms and biases"
        case .lookahead: "lookahead head"
        }
    }

    static func count(_ n: Int) -> String {
        switch n {
        case 1_000_000_000...: String(format: "%.2fB", Double(n) / 1e9)
        case 1_000_000...: String(format: "%.2fM", Double(n) / 1e6)
        case 1_000...: String(format: "%.1fK", Double(n) / 1e3)
        default: "\(n)"
        }
    }

    static func bytes(_ n: Int) -> String {
        switch n {
        case (1 << 30)...: String(format: "%.2f GiB", Double(n) / Double(1 << 30))
        case (1 << 20)...: String(format: "%.1f MiB", Double(n) / Double(1 << 20))
        case (1 << 10)...: String(format: "%.1f KiB", Double(n) / Double(1 << 10))
        default: "\(n) B"
        }
    }
}
