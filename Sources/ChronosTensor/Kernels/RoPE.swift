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

    /// The angular frequency of each rotated pair and the factor on cos and sin: what RoPE and
    /// its scaled variants (linear, Llama 3, YaRN) differ in.
    public struct Frequencies: Sendable, Hashable {
        /// ω_i of pair i: at position p the pair rotates by θ_i = p·ω_i.
        public let inverseFrequencies: [Double]
        /// Factor multiplying cos θ and sin θ (YaRN's attention factor; 1 otherwise).
        public let attentionFactor: Float

        /// Frequencies `inverseFrequencies` (one per pair), cos and sin scaled by `attentionFactor`.
        public init(inverseFrequencies: [Double], attentionFactor: Float = 1) {
            self.inverseFrequencies = inverseFrequencies
            self.attentionFactor = attentionFactor
        }

        /// Plain RoPE over `rotaryDim` (even) dimensions: ω_i = base^(−2i/d).
        public init(base: Float, rotaryDim d: Int) {
            self.init(inverseFrequencies: (0..<(d / 2)).map { pow(Double(base), -2 * Double($0) / Double(d)) })
        }

        /// The number of dimensions rotated: two per frequency.
        public var rotaryDim: Int { 2 * inverseFrequencies.count }
    }

    /// Rotates, in place, `x` laid out `[tokens × heads × headDim]`; token t sits at position
    /// `positionOffset + t`. The first `frequencies.rotaryDim` dimensions of each head rotate,
    /// pair i by θ_i = position · ω_i, scaled by the attention factor s:
    ///
    ///     x'[a] = s·(x[a]·cos θ_i − x[b]·sin θ_i),   x'[b] = s·(x[b]·cos θ_i + x[a]·sin θ_i)
    ///
    /// With `inverse`, rotates by −θ_i instead: the transpose of the map, which is how a
    /// gradient flows back through it.
    public static func apply(
        _ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, frequencies: Frequencies,
        positionOffset: Int, style: Style = .halfSplit, inverse: Bool = false
    ) {
        let d = frequencies.rotaryDim
        precondition(d <= headDim, "rotary dimension \(d) must be ≤ head dimension \(headDim)")
        let half = d / 2
        let table = AngleTable.shared.table(frequencies, positions: positionOffset + tokens)
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

    /// `apply` with plain RoPE frequencies base^(−2i/d) over the first `rotaryDim` (even)
    /// dimensions, all of them when nil.
    public static func apply(
        _ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, headDim: Int, rotaryDim: Int? = nil,
        positionOffset: Int, base: Float, style: Style = .halfSplit, inverse: Bool = false
    ) {
        let d = rotaryDim ?? headDim
        precondition(d % 2 == 0 && d <= headDim, "rotary dimension \(d) must be even and ≤ head dimension \(headDim)")
        apply(
            x, tokens: tokens, heads: heads, headDim: headDim, frequencies: Frequencies(base: base, rotaryDim: d),
            positionOffset: positionOffset, style: style, inverse: inverse)
    }

    /// s·cos θ and s·sin θ for every position and pair, computed once per set of frequencies and
    /// grown as longer sequences arrive: RoPE runs twice per layer and again in the backward
    /// pass, always on the same angles.
    final class AngleTable: @unchecked Sendable {
        static let shared = AngleTable()

        struct Entry {
            let cosines: [Float]
            let sines: [Float]
            let positions: Int
        }

        private var entries: [Frequencies: Entry] = [:]
        private let lock = NSLock()

        /// Angles θ = position · ω_i for positions 0..<`positions` (at least), row-major
        /// `[position][i]`, in double precision before rounding: positions reach tens of thousands.
        func table(_ frequencies: Frequencies, positions: Int) -> Entry {
            lock.lock()
            defer { lock.unlock() }
            if let entry = entries[frequencies], entry.positions >= positions { return entry }
            let count = max(positions, 2 * (entries[frequencies]?.positions ?? 0), 256)
            let half = frequencies.inverseFrequencies.count
            let omega = frequencies.inverseFrequencies, scale = Double(frequencies.attentionFactor)
            var cosines = [Float](repeating: 0, count: count * half), sines = cosines
            for p in 0..<count {
                for i in 0..<half {
                    let angle = Double(p) * omega[i]
                    cosines[p * half + i] = Float(scale * cos(angle))
                    sines[p * half + i] = Float(scale * sin(angle))
                }
            }
            let entry = Entry(cosines: cosines, sines: sines, positions: count)
            entries[frequencies] = entry
            return entry
        }
    }
}
