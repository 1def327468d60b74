import ChronosTensor
import Foundation

/// AdamW (decoupled weight decay) over named parameter tensors, updated in place:
///
///     m ← β1·m + (1−β1)·g,   v ← β2·v + (1−β2)·g²
///     θ ← θ − lr·( m̂ / (√v̂ + ε) + λ·θ ),   m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ)
///
/// Parameters whose names mark them as norms, biases or embeddings get no weight decay.
public final class AdamW {
    /// Hyper-parameters.
    public struct Settings: Codable, Sendable, Equatable {
        /// First-moment decay.
        public var beta1: Float = 0.9
        /// Second-moment decay.
        public var beta2: Float = 0.95
        /// Added to √v̂ for stability.
        public var epsilon: Float = 1e-8
        /// Decoupled weight decay λ.
        public var weightDecay: Float = 0.1
        /// Defaults: β1 0.9, β2 0.95, ε 1e-8, λ 0.1.
        public init() {}
    }

    /// The settings in use.
    public let settings: Settings
    /// Updates applied so far (t in the bias correction).
    public private(set) var step = 0
    /// First and second moments by parameter name.
    public private(set) var moments: [String: (m: Tensor, v: Tensor)] = [:]

    /// An optimiser with no history.
    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Whether weight decay applies to the parameter called `name` (not to norms, biases, embeddings).
    public static func decays(_ name: String) -> Bool {
        let lower = name.lowercased()
        return !(lower.contains("norm") || lower.hasSuffix("bias") || lower.contains("embed"))
    }

    /// Applies one update with learning rate `lr` to every parameter that has a gradient.
    public func update(_ parameters: [(name: String, tensor: Tensor)], learningRate lr: Float) {
        step += 1
        let s = settings
        let correction1 = 1 - Foundation.pow(s.beta1, Float(step))
        let correction2 = 1 - Foundation.pow(s.beta2, Float(step))
        for (name, parameter) in parameters {
            guard let gradient = parameter.gradient?.contiguous() else { continue }
            precondition(parameter.dtype == .f32 && parameter.isContiguous, "\(name): AdamW updates contiguous f32 parameters")
            let state = moments[name] ?? (Tensor(zeros: parameter.shape), Tensor(zeros: parameter.shape))
            moments[name] = state
            let decay = Self.decays(name) ? s.weightDecay : 0
            let theta = parameter.floatPointer, g = gradient.floatPointer, m = state.m.floatPointer, v = state.v.floatPointer
            ThreadPool.shared.parallelChunks(parameter.count, minChunk: 1 << 14) { range in
                for i in range {
                    m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i]
                    v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i]
                    let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + s.epsilon)
                    theta[i] -= lr * (update + decay * theta[i])
                }
            }
        }
    }

    /// Restores the step count and moments saved from an earlier run.
    public func restore(step: Int, moments: [String: (m: Tensor, v: Tensor)]) {
        self.step = step
        self.moments = moments
    }
}

/// Linear warmup to the peak learning rate, then cosine decay to a floor (10 % of the peak).
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    /// The rate reached at the end of warmup.
    public var peak: Float
    /// Steps of linear warmup from 0.
    public var warmupSteps: Int
    /// Total steps; the cosine reaches the floor here and stays.
    public var totalSteps: Int
    /// The final rate as a fraction of the peak.
    public var floorFraction: Float = 0.1

    /// A schedule with the given peak, warmup and length.
    public init(peak: Float, warmupSteps: Int, totalSteps: Int, floorFraction: Float = 0.1) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.floorFraction = floorFraction
    }

    /// The learning rate of step `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Float(step - warmupSteps) / Float(span))
        let floor = peak * floorFraction
        return floor + (peak - floor) * 0.5 * (1 + Foundation.cos(Float.pi * progress))
    }
}

/// Gradient clipping by global norm.
public enum GradientClipping {
    /// Scales every gradient so that their joint L2 norm is at most `maxNorm`; returns the norm
    /// before clipping.
    @discardableResult
    public static func clip(_ parameters: [(name: String, tensor: Tensor)], maxNorm: Float) -> Float {
        var total: Double = 0
        for (_, p) in parameters {
            guard let g = p.gradient?.contiguous() else { continue }
            total += Double(Elementwise.sumOfSquares(g.floatPointer, count: g.count))
        }
        let norm = Float(total.squareRoot())
        if norm > maxNorm && norm > 0 {
            let scale = maxNorm / norm
            for (_, p) in parameters {
                guard let g = p.gradient, g.isContiguous else { continue }
                Elementwise.scale(g.floatPointer, by: scale, g.floatPointer, count: g.count)
            }
        }
        return norm
    }
}
