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
    public static func apply(
        _ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, rotaryDim: Int? = nil,
        positionOffset: Int, base: Float, style: Style = .halfSplit, inverse: Bool = false
    ) {
        let d = rotaryDim ?? headDim
        precondition(d % 2 == 0 && d <= headDim, "rotary dimension \(d) must be even and ≤ head dimension \(headDim)")
        let half = d / 2
        let table = AngleTable.shared.table(base: base, rotaryDim: d, positions: positionOffset + tokens)
        table.cosines.withUnsafeBufferPointer { cosTable in
            table.sines.withUnsafeBufferPointer { sinTable in
                for t in 0..<tokens {
                    let cosines = cosTable.baseAddress! + (positionOffset + t) * half
                    let sines = sinTable.baseAddress! + (positionOffset + t) * half
                    let sign: Float = inverse ? -1 : 1
                    for h in 0..<heads {
                        let v = x + (t * heads + h) * headDim
                        for i in 0..<half {
                            let (a, b) = style == .halfSplit ? (i, i + half) : (2 * i, 2 * i + 1)
                            let xa = v[a], xb = v[b], sine = sign * sines[i]
                            v[a] = xa * cosines[i] - xb * sine
                            v[b] = xb * cosines[i] + xa * sine
                        }
                    }
                }
            }
        }
    }

    /// cos θ and sin θ for every position and pair, computed once per (base, dimension) and
    /// grown as longer sequences arrive: RoPE runs twice per layer and again in the backward
    /// pass, always on the same angles.
    final class AngleTable: @unchecked Sendable {
        static let shared = AngleTable()

        struct Entry {
            let cosines: [Float]
            let sines: [Float]
            let positions: Int
        }

        private var entries: [String: Entry] = [:]
        private let lock = NSLock()

        /// Angles θ = position · base^(−2i/d) for positions 0..<`positions` (at least), row-major
        /// `[position][i]`, in double precision before rounding: positions reach tens of thousands.
        func table(base: Float, rotaryDim d: Int, positions: Int) -> Entry {
            let key = "\(base)/\(d)"
            lock.lock()
            defer { lock.unlock() }
            if let entry = entries[key], entry.positions >= positions { return entry }
            let count = max(positions, 2 * (entries[key]?.positions ?? 0), 256)
            let half = d / 2
            let frequencies = (0..<half).map { pow(Double(base), -2 * Double($0) / Double(d)) }
            var cosines = [Float](repeating: 0, count: count * half), sines = cosines
            for p in 0..<count {
                for i in 0..<half {
                    let angle = Double(p) * frequencies[i]
                    cosines[p * half + i] = Float(cos(angle))
                    sines[p * half + i] = Float(sin(angle))
                }
            }
            let entry = Entry(cosines: cosines, sines: sines, positions: count)
            entries[key] = entry
            return entry
        }
    }
}
