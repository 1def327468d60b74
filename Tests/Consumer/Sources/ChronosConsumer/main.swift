import ChronosModel
import ChronosTensor

// Multiplies a batch of activations by bf16 weights with the kernels this processor selects.
let weights = Tensor(shape: [3, 40], values: (0..<120).map { Float($0 % 7) - 3 }, dtype: .bf16)
let x = Tensor(shape: [6, 40], values: (0..<240).map { Float($0 % 5) - 2 })
let y = Tensor.linear(x, weight: weights)
print("instruction set \(InstructionSet.current); y[0] = \(y.floats.prefix(3))")
