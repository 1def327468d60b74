/// Where expert weights live, from slowest to fastest.
public enum ResidencyTier: String, Sendable, CaseIterable, Codable {
    /// In the cluster files only.
    case disk
    /// Read into memory speculatively (predicted, not yet needed): the RAM staging tier.
    case staging
    /// Compute-ready: experts the MoE blocks are using or have just used.
    case hot
}

/// The byte budgets of the in-memory tiers. Their sum is the expert budget; neither is ever
/// exceeded.
public struct ResidencyBudget: Sendable, Equatable, Codable {
    /// Bytes the hot set may hold.
    public var hot: Int
    /// Bytes the staging tier may hold.
    public var staging: Int

    /// Budgets of `hot` and `staging` bytes.
    public init(hot: Int, staging: Int) {
        self.hot = max(0, hot)
        self.staging = max(0, staging)
    }

    /// `total` bytes split: `stagingFraction` of them for staging, the rest for the hot set.
    public init(total: Int, stagingFraction: Double) {
        let staging = Int(Double(total) * min(max(stagingFraction, 0), 1))
        self.init(hot: total - staging, staging: staging)
    }

    /// Both tiers together.
    public var total: Int { hot + staging }

    /// The budget of `tier` (0 for disk, which holds everything).
    public subscript(tier: ResidencyTier) -> Int {
        switch tier {
        case .hot: hot
        case .staging: staging
        case .disk: 0
        }
    }
}
