/// What the MoE block gets when an expert it needs is not resident.
public enum MissPolicy: String, Sendable, CaseIterable, Codable {
    /// Block on that expert only (its read jumps the prefetch queue); output is identical to
    /// running with every expert resident.
    case wait
    /// Do not wait: the expert's load starts, and the block computes without it now. A model
    /// with shared experts moves the missing weight to them (soft fallback); a model without
    /// renormalises over the resident experts. Lossy.
    case fallback
    /// Read the expert on the decode thread itself, as a runtime without a prefetcher would:
    /// the reactive baseline. Output is identical to running with every expert resident.
    case sync
}

/// How a full tier picks the expert to give up.
public enum EvictionPolicy: String, Sendable, CaseIterable, Codable {
    /// The lowest estimated chance of use soon, 1 − (1 − r)(1 − p): r is the measured rate at
    /// which experts last used as many steps ago are used again, p the measured precision of the
    /// lookahead at the offset it predicts the expert for (or of the prompt-level set), both
    /// counted over the run so far with a weak prior. Ties go to the least recently used.
    case scored
    /// The least recently used, predictions ignored.
    case lru
}
