import ChronosFormats
import ChronosModel
import ChronosTensor
import Foundation

/// Writes a copy of a model directory with its matrices in GGML block formats, each tensor's
/// type chosen by a `QuantizationRecipe` (what `chronos quantize` runs).
public enum ModelQuantizer {
    /// What a quantisation wrote.
    public struct Outcome: Sendable {
        /// Weight bytes before and after.
        public var bytesBefore = 0, bytesAfter = 0
        /// Parameters of the model.
        public var parameters = 0
        /// How many tensors each type got.
        public var tensorsByType: [DType: Int] = [:]
        /// Average bits a weight costs after quantisation.
        public var bitsPerWeight: Double { Double(bytesAfter * 8) / Double(max(1, parameters)) }
    }

    /// A source directory that cannot be quantised.
    public struct AlreadyQuantized: Error, CustomStringConvertible {
        /// The directory.
        public let directory: String
        /// A tensor already in a block format, and its type.
        public let tensor: String, dtype: DType
        /// Names the tensor.
        public var description: String {
            "\(directory) is already quantised (\(tensor) is \(dtype.rawValue)): quantise from the float model"
        }
    }

    /// Quantises the model in `source` (a stripped checkpoint's experts come from its cache) by
    /// `recipe` into the new directory `target`, which must not exist: the checkpoint and config
    /// are written into a temporary folder beside it, with the tokenizer and the other small
    /// files of the directory copied, and the folder is renamed to `target` when complete.
    /// `progress` hears after each tensor how many are written of how many.
    @discardableResult
    public static func quantize(
        _ source: URL, recipe: QuantizationRecipe, to target: URL, progress: ((_ written: Int, _ total: Int) -> Void)? = nil
    ) throws -> Outcome {
        let model = try ModelLoader.load(directory: source)
        let parameters = model.namedParameters()
        if let quantized = parameters.first(where: { $0.tensor.dtype.isQuantized }) {
            throw AlreadyQuantized(directory: source.path, tensor: quantized.name, dtype: quantized.tensor.dtype)
        }
        let dtypes = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.tensor.dtype) })
        let shape = model.quantizationShape
        var types: [String: DType] = [:], outcome = Outcome()
        for (name, role, tensorShape, _) in model.parameterRoles {
            guard let dtype = dtypes[name] else { continue }
            let type = recipe.type(for: role, shape: tensorShape, dtype: dtype, model: shape), count = tensorShape.reduce(1, *)
            types[name] = type
            outcome.tensorsByType[type, default: 0] += 1
            outcome.bytesBefore += dtype.byteCount(count)
            outcome.bytesAfter += type.byteCount(count)
            outcome.parameters += count
        }

        try ModelDirectory.create(at: target, companionsFrom: source) { staging in
            try model.save(to: staging, types: types, progress: progress)
        }
        return outcome
    }
}
