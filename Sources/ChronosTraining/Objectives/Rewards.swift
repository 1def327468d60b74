import ChronosFormats
import ChronosModel
import ChronosStorage
import ChronosTensor
import Foundation

/// A reward for GRPO: scores one generated answer to a prompt. Higher is better; only the
/// differences within a group of answers to the same prompt matter to training.
public protocol RewardFunction: AnyObject {
    /// The name `--reward` selects it by.
    var name: String { get }
    /// The reward of `completion` (the decoded answer, without its stop token) for `prompt`.
    func reward(_ completion: String, for prompt: DefinitionPrompt) throws -> Double
}

/// Errors in choosing a reward.
public enum RewardError: Error, CustomStringConvertible {
    /// No reward has this name.
    case unknown(String)
    /// The model-based reward needs a model directory.
    case missingRewardModel
    /// The reward model's directory has no tokenizer.
    case missingTokenizer(URL)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .unknown(let name): "unknown reward \(name.debugDescription); choose one of \(Rewards.names.joined(separator: ", "))"
        case .missingRewardModel: "the model-likelihood reward needs a reward model directory (--reward-model)"
        case .missingTokenizer(let url): "\(url.path) has no tokenizer.json for the reward model"
        }
    }
}

/// The rewards `--reward` can name.
public enum Rewards {
    /// Every reward name.
    public static let names = [DefinitionReward.rewardName, LengthDiversityReward.rewardName, ModelLikelihoodReward.rewardName]

    /// The reward called `name`; the model-based one loads `rewardModel`.
    public static func make(_ name: String, rewardModel: URL? = nil) throws -> any RewardFunction {
        switch name {
        case DefinitionReward.rewardName: return DefinitionReward()
        case LengthDiversityReward.rewardName: return LengthDiversityReward()
        case ModelLikelihoodReward.rewardName:
            guard let rewardModel else { throw RewardError.missingRewardModel }
            return try ModelLikelihoodReward(directory: rewardModel)
        default: throw RewardError.unknown(name)
        }
    }
}

/// The programmatic reward of the definitions task: token-level F1 of the answer's definition
/// against the reference, plus `formatWeight` when the answer has the `WORD (POS): ` header of
/// the training answers. In [0, 1 + formatWeight].
public final class DefinitionReward: RewardFunction {
    /// `definition-f1`.
    public static let rewardName = "definition-f1"
    public var name: String { Self.rewardName }
    /// The bonus for the answer format.
    public let formatWeight: Double

    /// A reward with the given format bonus.
    public init(formatWeight: Double = 0.2) {
        self.formatWeight = formatWeight
    }

    public func reward(_ completion: String, for prompt: DefinitionPrompt) -> Double {
        DefinitionScoring.definitionF1(answer: completion, reference: prompt.reference)
            + (DefinitionScoring.hasAnswerFormat(completion, word: prompt.word) ? formatWeight : 0)
    }
}

/// A simple reward on the shape of an answer: half for a length near `targetWords` words
/// (1 − |n − target| / target, at least 0), half for diversity (distinct words / words). In [0, 1].
public final class LengthDiversityReward: RewardFunction {
    /// `length-diversity`.
    public static let rewardName = "length-diversity"
    public var name: String { Self.rewardName }
    /// The answer length, in words, that scores best.
    public let targetWords: Int

    /// A reward preferring answers of about `targetWords` words.
    public init(targetWords: Int = 16) {
        self.targetWords = targetWords
    }

    public func reward(_ completion: String, for prompt: DefinitionPrompt) -> Double {
        let words = completion.lowercased().split(whereSeparator: \.isWhitespace)
        guard !words.isEmpty else { return 0 }
        let length = max(0, 1 - abs(Double(words.count - targetWords)) / Double(targetWords))
        let diversity = Double(Set(words).count) / Double(words.count)
        return 0.5 * length + 0.5 * diversity
    }
}

/// A model-based reward: how well another model, reading the question and the answer,
/// predicts the reference definition. With the text `QUESTION\nANSWER\n` as context, the
/// reward is the model's per-token likelihood of the reference, exp((1/n) Σ log p(ref_t | …)),
/// in (0, 1]. Any loadable model serves (`ModelRegistry.load`) with the tokenizer in its directory.
public final class ModelLikelihoodReward: RewardFunction {
    /// `model-likelihood`.
    public static let rewardName = "model-likelihood"
    public var name: String { Self.rewardName }
    /// The scoring model.
    public let model: any LanguageModel
    /// Its tokenizer.
    public let tokenizer: Tokenizer
    /// Put before the context when its tokenizer configuration names one.
    public let beginningOfSequence: Int?

    /// A reward scored by `model` with `tokenizer`.
    public init(model: any LanguageModel, tokenizer: Tokenizer, beginningOfSequence: Int? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.beginningOfSequence = beginningOfSequence
    }

    /// Loads the reward model and tokenizer of `directory`.
    public convenience init(directory: URL) throws {
        let tokenizerURL = ModelDirectory(directory).tokenizer
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else { throw RewardError.missingTokenizer(directory) }
        let tokenizer = try Tokenizer(contentsOf: tokenizerURL)
        let configURL = ModelDirectory(directory).tokenizerConfig
        let bos =
            FileManager.default.fileExists(atPath: configURL.path)
            ? try SpecialTokenIds(config: TokenizerConfig(contentsOf: configURL), tokenizer: tokenizer).bos : nil
        try self.init(model: ModelLoader.load(directory: directory), tokenizer: tokenizer, beginningOfSequence: bos)
    }

    public func reward(_ completion: String, for prompt: DefinitionPrompt) throws -> Double {
        let question = prompt.prompt.last { $0.role == "user" }?.content ?? ""
        let context =
            (beginningOfSequence.map { [$0] } ?? [])
            + tokenizer.encode("\(question)\n\(completion)\n", matchSpecialTokens: false)
        let reference = tokenizer.encode(prompt.reference, matchSpecialTokens: false)
        guard !reference.isEmpty else { return 0 }
        let ids = context + reference
        let logits = try Autograd.recording(false) { try model.forward(Array(ids.dropLast()), cache: model.makeCache()) }
        let targets = ids.indices.dropFirst().map { $0 >= context.count ? ids[$0] : CrossEntropy.ignoreIndex }
        return Foundation.exp(-Double(Tensor.crossEntropy(logits: logits, targets: targets).floats[0]))
    }
}
