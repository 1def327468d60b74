import Foundation

/// Rotary position embedding (RoPE): rotates pairs of dimensions of each head by an angle
/// proportional to the token's position, θ_i = position · base^(−2i/d).
public enum RoPE {
    /// Which dimensions form a rotated pair.
    public enum Style: String, Sendable, Codable {
        /// Pairs (i, i + d/2): the Hugging Face "rotate_half" layout (Llama, Mixtral, Qwen).
        case halfSplit
        /// Pairs (2i, 2i + 1): the original interleaved layout (GPT-J).
        case interleaved
    }

    /// Rotates, in place, `x` laid out `[tokens × heads × headDim]`; token t sits at position
    /// `positionOffset + t`. Only the first `rotaryDim` (even) dimensions of each head rotate:
    ///
    ///     x'[a] = x[a]·cos θ_i − x[b]·sin θ_i,   x'[b] = x[b]·cos θ_i + x[a]·sin θ_i
    ///
    /// With `inverse`, rotates by −θ_i instead: the transpose of the rotation, which is how a
    /// gradient flows back through it.
    public static func apply(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, rotaryDim: Int? = nil,
                             positionOffset: Int, base: Float, style: Style = .halfSplit, inverse: Bool = false) {
        let d = rotaryDim ?? headDim
        precondition(d % 2 == 0 && d <= headDim, "rotary dimension \(d) must be even and ≤ head dimension \(headDim)")
        let half = d / 2
        let inverseFrequencies = (0..<half).map { pow(Double(base), -2 * Double($0) / Double(d)) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * half) { table in
            let cosines = table.baseAddress!, sines = cosines + half
            for t in 0..<tokens {
                let position = Double(positionOffset + t)
                for i in 0..<half {
                    // Angles in double precision: positions reach tens of thousands.
                    let angle = position * inverseFrequencies[i]
                    cosines[i] = Float(cos(angle))
                    sines[i] = Float(inverse ? -sin(angle) : sin(angle))
                }
                for h in 0..<heads {
                    let v = x + (t * heads + h) * headDim
                    for i in 0..<half {
                        let (a, b) = style == .halfSplit ? (i, i + half) : (2 * i, 2 * i + 1)
                        let xa = v[a], xb = v[b]
                        v[a] = xa * cosines[i] - xb * sines[i]
                        v[b] = xb * cosines[i] + xa * sines[i]
                    }
                }
            }
        }
    }
}
