import ChronosTensor
import Foundation

/// The rotary position embedding of a model, checked (`RoPEParameters.rotaryEmbedding`): plain
/// RoPE, or one of the scaled variants that stretch a pretrained context, each computing its
/// frequencies as Hugging Face transformers does (`modeling_rope_utils.py`).
struct RotaryEmbedding: Sendable, Equatable {
    /// How the plain frequencies ω_i = θ^(−2i/d) are changed.
    enum Scaling: Sendable, Equatable {
        /// Plain RoPE.
        case none
        /// Every frequency divided by `factor` (position interpolation).
        case linear(factor: Double)
        /// Llama 3.1: wavelengths beyond `originalContext / lowFrequencyFactor` divided by `factor`,
        /// those below `originalContext / highFrequencyFactor` kept, those between interpolated.
        case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContext: Int)
        /// YaRN: frequencies blended between interpolated (ω/factor) and kept by a linear ramp
        /// over the dimensions whose rotations in `originalContext` lie between `betaSlow` and
        /// `betaFast`; cos and sin scaled by `attentionFactor`. `mscaleAllDim` is read only by
        /// multi-head latent attention (`latentScoreScale`).
        case yarn(
            factor: Double, originalContext: Int, betaFast: Double, betaSlow: Double, attentionFactor: Double, truncate: Bool,
            mscaleAllDim: Double)
    }

    /// Base θ of the plain frequencies.
    var theta: Float
    var scaling: Scaling

    /// Plain RoPE with base `theta`.
    static func plain(theta: Float) -> RotaryEmbedding { RotaryEmbedding(theta: theta, scaling: .none) }

    /// YaRN's magnitude correction 0.1·m·ln(s) + 1 for a stretch s (1 when s ≤ 1).
    static func yarnMscale(_ scale: Double, _ m: Double) -> Double {
        scale <= 1 ? 1 : 0.1 * m * log(scale) + 1
    }

    /// The frequencies of `rotaryDim` (even) rotated dimensions.
    func frequencies(rotaryDim d: Int) -> RoPE.Frequencies {
        let unscaled = RoPE.Frequencies(base: theta, rotaryDim: d)
        let plain = unscaled.inverseFrequencies
        switch scaling {
        case .none:
            return unscaled
        case .linear(let factor):
            return RoPE.Frequencies(inverseFrequencies: plain.map { $0 / factor })
        case .llama3(let factor, let low, let high, let context):
            let lowWavelength = Double(context) / low, highWavelength = Double(context) / high
            return RoPE.Frequencies(
                inverseFrequencies: plain.map { omega in
                    let wavelength = 2 * Double.pi / omega
                    if wavelength < highWavelength { return omega }
                    if wavelength > lowWavelength { return omega / factor }
                    let smooth = (Double(context) / wavelength - low) / (high - low)
                    return (1 - smooth) * omega / factor + smooth * omega
                })
        case .yarn(let factor, let context, let betaFast, let betaSlow, let attentionFactor, let truncate, _):
            // The dimension whose pair turns `rotations` times over the original context.
            func dimension(_ rotations: Double) -> Double {
                Double(d) * log(Double(context) / (rotations * 2 * Double.pi)) / (2 * log(Double(theta)))
            }
            var low = dimension(betaFast), high = dimension(betaSlow)
            if truncate { (low, high) = (low.rounded(.down), high.rounded(.up)) }
            low = max(low, 0)
            high = min(high, Double(d - 1))
            if low == high { high += 0.001 }
            return RoPE.Frequencies(
                inverseFrequencies: plain.enumerated().map { i, omega in
                    // The share kept unscaled: 1 below `low`, 0 above `high`.
                    let extrapolation = 1 - min(max((Double(i) - low) / (high - low), 0), 1)
                    return omega / factor * (1 - extrapolation) + omega * extrapolation
                },
                attentionFactor: Float(attentionFactor))
        }
    }

    /// The factor multi-head latent attention (DeepSeek) applies to its softmax scale 1/√d:
    /// YaRN's magnitude correction for `mscale_all_dim`, squared, as the reference
    /// implementation does for the dimensions RoPE does not reach; 1 otherwise.
    var latentScoreScale: Float {
        guard case .yarn(let factor, _, _, _, _, _, let mscaleAllDim) = scaling, mscaleAllDim != 0 else { return 1 }
        let mscale = Self.yarnMscale(factor, mscaleAllDim)
        return Float(mscale * mscale)
    }
}
