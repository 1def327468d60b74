import ArgumentParser
import ChronosModel
import ChronosStorage
import Foundation

extension QuantizationRecipe: ExpressibleByArgument {}

/// `chronos quantize`: a new model directory with the model's matrices in GGML block formats.
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a copy of a model directory with its matrices quantised to GGML block formats.",
        discussion: """
            --type names a llama-quantize recipe: q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, q3_k_m, \
            q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m or q6_k. Most matrices get the recipe's type; as in \
            llama.cpp, the LM head gets q6_k (q8_0 under q8_0), and the _m recipes give some layers' value \
            and down projections more bits. Norms, biases, routers and the lookahead head keep their \
            float type. A matrix whose rows are not whole blocks of its type falls back to a smaller \
            block (q4_k to q5_0, q6_k to q8_0, …).

            The copy is written into a temporary folder beside --out and renamed into place when \
            complete; --out must not exist. The tokenizer and the other files of the directory are \
            copied; an expert cache is not (pack the quantised model with `chronos pack`).
            """)

    @Argument(help: "Model directory with float weights.") var directory: String
    @Option(name: .customLong("type"), help: "The recipe (see above).") var recipe: QuantizationRecipe
    @Option(help: "The new model directory (must not exist).") var out: String

    func validate() throws {
        if FileManager.default.fileExists(atPath: out) {
            throw ValidationError("--out '\(out)' exists: quantize writes a new directory and never replaces one")
        }
    }

    func run() throws {
        let progress = TensorProgress(verb: "quantised")
        let outcome = try ModelQuantizer.quantize(
            URL(fileURLWithPath: directory), recipe: recipe, to: URL(fileURLWithPath: out), progress: progress.report)
        let mix = outcome.tensorsByType.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }
        print(
            "quantised \(directory) with \(recipe.rawValue) into \(out): \(InspectCommand.bytes(outcome.bytesBefore)) → \(InspectCommand.bytes(outcome.bytesAfter)) "
                + String(format: "(%.2f bits a weight; tensors: %@)", outcome.bitsPerWeight, mix.joined(separator: ", ")))
    }
}
