import ChronosTensor

/// One routed expert of one MoE layer: the unit of residency.
public struct ExpertKey: Hashable, Sendable, CustomStringConvertible {
    /// Decoder layer index, from 0.
    public let layer: Int
    /// Expert index within the layer, as the router numbers it.
    public let expert: Int

    /// The expert `expert` of layer `layer`.
    public init(layer: Int, expert: Int) {
        self.layer = layer
        self.expert = expert
    }

    /// `L<layer>/E<expert>`.
    public var description: String { "L\(layer)/E\(expert)" }
}

/// The three projections of one SwiGLU expert, in the PyTorch `[out, in]` layout:
/// `E(x) = down · (SiLU(gate · x) ⊙ (up · x))`.
public struct ExpertWeights: Sendable {
    /// `[intermediate, hidden]`.
    public let gate: Tensor
    /// `[intermediate, hidden]`.
    public let up: Tensor
    /// `[hidden, intermediate]`.
    public let down: Tensor

    /// Wraps the three projections.
    public init(gate: Tensor, up: Tensor, down: Tensor) {
        self.gate = gate
        self.up = up
        self.down = down
    }

    /// Bytes the three tensors occupy.
    public var byteCount: Int { gate.byteCount + up.byteCount + down.byteCount }

    /// The first byte of the gate projection: where a packed expert's range begins.
    public var firstByte: UnsafeRawPointer { UnsafeRawPointer(gate.rawPointer) }
}

/// The checkpoint tensor names of one expert's projections.
public struct ExpertWeightNames: Hashable, Sendable {
    /// Name of the gate projection (`w1` in Mixtral checkpoints).
    public let gate: String
    /// Name of the up projection (`w3` in Mixtral checkpoints).
    public let up: String
    /// Name of the down projection (`w2` in Mixtral checkpoints).
    public let down: String

    /// The three names.
    public init(gate: String, up: String, down: String) {
        self.gate = gate
        self.up = up
        self.down = down
    }
}

/// Where the MoE block gets routed experts' weights: the seam between the model and the storage
/// tiers.
///
/// `weights(for:)` returns nil when the expert is not resident now; the MoE block then applies
/// its documented lossy fallback (see `MoEBlock`) instead of waiting.
///
/// The MoE block first announces every distinct expert a layer selected with `willNeed(_:)`,
/// then asks for them one at a time in the order it returns and keeps each only while it
/// computes with it, so a provider can load the misses of one layer concurrently, have the
/// block compute with the experts it holds while the others load, and hold few at once. A
/// provider is an object: sequences of one pass that share it ask it for each expert once.
public protocol ExpertProvider: AnyObject, Sendable {
    /// The weights of `key`, or nil when they are not resident.
    func weights(for key: ExpertKey) -> ExpertWeights?

    /// A hint that `keys` (distinct) are needed now; returns them in the order they should be
    /// asked for.
    @discardableResult
    func willNeed(_ keys: [ExpertKey]) -> [ExpertKey]

    /// Why the provider cannot go on — an expert whose bytes failed verification, or a read that
    /// failed for good where the run must not fall back — or nil. A forward pass that finds it
    /// set throws it instead of returning logits computed without the expert.
    var failure: (any Error)? { get }

    /// Bytes of every expert as the provider holds them, when it holds them all.
    var heldBytes: Int? { get }
}

extension ExpertProvider {
    /// None: a provider that cannot fail.
    public var failure: (any Error)? { nil }

    /// Unknown: a provider that does not hold every expert.
    public var heldBytes: Int? { nil }

    /// Returns `keys` as they are: a provider that holds every expert has nothing to prepare.
    @discardableResult
    public func willNeed(_ keys: [ExpertKey]) -> [ExpertKey] { keys }
}

/// Every expert held in memory (or memory-mapped from the checkpoint): the provider tests and
/// training use, and the ceiling the storage tiers are measured against.
public final class ResidentExperts: ExpertProvider {
    /// The weights of every expert.
    public let experts: [ExpertKey: ExpertWeights]
    /// Checks each expert's bytes on first use, for weights that view mapped files.
    private let verification: ExpertVerification?

    /// A provider that returns `experts[key]`, after `verification` (if any) passed it.
    public init(_ experts: [ExpertKey: ExpertWeights], verification: ExpertVerification? = nil) {
        self.experts = experts
        self.verification = verification
    }

    /// `experts[key]`, or nil when its bytes failed verification.
    public func weights(for key: ExpertKey) -> ExpertWeights? {
        guard let weights = experts[key] else { return nil }
        if let verification, !verification.check(key, base: weights.firstByte) { return nil }
        return weights
    }

    /// The verification's first mismatch.
    public var failure: (any Error)? { verification?.failure }

    /// Bytes all the experts occupy.
    public var byteCount: Int { experts.values.reduce(0) { $0 + $1.byteCount } }

    /// `byteCount`.
    public var heldBytes: Int? { byteCount }
}
