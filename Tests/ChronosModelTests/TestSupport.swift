import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// The expected outputs the transformers oracle recorded for one `hf-tiny` case.
struct OracleReference: Decodable {
    let inputIds: [Int]
    let logits: [[Double]]
    let greedy: [Int]
    let routerTopK: [[[Int]]]?
    let routerWeights: [[[Double]]]?

    enum CodingKeys: String, CodingKey {
        case inputIds = "input_ids"
        case logits
        case greedy
        case routerTopK = "router_topk"
        case routerWeights = "router_weights"
    }

    /// The reference of the case in `Tests/Fixtures/hf-tiny/<name>`.
    static func load(_ name: String) throws -> OracleReference {
        let data = try Data(contentsOf: Fixtures.url("hf-tiny/\(name)/reference.json"))
        return try JSONDecoder().decode(OracleReference.self, from: data)
    }
}

/// The `hf-tiny` oracle cases.
enum OracleCase: String, CaseIterable {
    case llamaDense = "llama_dense"
    case mixtral
    case qwen2MoE = "qwen2_moe"
    case qwen3MoE = "qwen3_moe"
    case llamaLinear = "llama_linear"
    case llamaLlama3 = "llama_llama3"
    case llamaYarn = "llama_yarn"
    case deepSeekV2 = "deepseek_v2"
    case deepSeekV2QueryLatent = "deepseek_v2_q_lora"
    case deepSeekV3 = "deepseek_v3"
    case gptOss = "gpt_oss"
    case glm4MoE = "glm4_moe"
    case glm4MoEAir = "glm4_moe_air"

    /// The cases `Tests/Fixtures/gguf-models` holds GGUF conversions of.
    static let convertedToGGUF: [OracleCase] = [.llamaDense, .mixtral, .qwen2MoE, .qwen3MoE]

    var directory: URL { Fixtures.url("hf-tiny/\(rawValue)") }
    /// The same weights as transformers 5 saves them with its experts fused (MoE cases only).
    var fusedDirectory: URL { Fixtures.url("hf-tiny-fused/\(rawValue)") }

    func load(experts: (any ExpertProvider)? = nil) throws -> any LanguageModel {
        try ModelRegistry.load(directory: directory, experts: experts)
    }
}

/// Largest |a − b| over two equally long arrays (infinity when the lengths differ).
func maxAbsoluteDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Index of the largest value (the first on ties).
func argmax(_ values: [Float]) -> Int {
    values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }!
}

/// Model directories made for a test from a fixture: its config edited, its tensors changed.
enum FixtureDirectory {
    /// A new directory holding `fixture`'s `config.json` as edited by `editConfig` and its
    /// tensors as edited by `editTensors` (all in one `model.safetensors`).
    static func make(
        from fixture: OracleCase,
        editConfig: (inout [String: Any]) -> Void = { _ in },
        editTensors: (inout [(name: String, tensor: Tensor)]) -> Void = { _ in }
    ) throws -> URL {
        let directory = try Fixtures.temporaryDirectory()
        var config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.directory.appendingPathComponent("config.json")))
            as! [String: Any]
        editConfig(&config)
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
            .write(to: directory.appendingPathComponent("config.json"))
        var tensors = try fixtureTensors(fixture)
        editTensors(&tensors)
        try SafetensorsWriter.write(tensors, to: directory.appendingPathComponent("model.safetensors"))
        return directory
    }

    /// Every tensor of a fixture checkpoint, in file order.
    static func fixtureTensors(_ fixture: OracleCase) throws -> [(name: String, tensor: Tensor)] {
        let checkpoint = try SafetensorsCheckpoint(directory: fixture.directory)
        return try checkpoint.tensorNames.map { ($0, try checkpoint.tensor(named: $0)) }
    }
}
