/// What a speculative load was made for: the record its fate (used before it left memory, or
/// not) counts toward.
enum LoadPurpose: Hashable {
    /// The prompt-level set.
    case prompt
    /// A lookahead prediction of `source` for `offset` steps ahead.
    case lookahead(LookaheadSource, offset: Int)
    /// A next-layer preview.
    case preview
}

/// Measured chances that an expert is used in the coming step, from what happened so far: by
/// the age of its last use (steps since), by the offset k at which a lookahead source (the
/// head, or the repetition of earlier text) predicted it, each source on its own record (and
/// on a second one for the experts it named while they were not in memory, which decides
/// whether its predictions are loaded), for members of the prompt-level set, and (within a
/// step) for the experts a layer's router previewed one layer early. The scored eviction ranks
/// experts by these, so an uninformative predictor (or a model whose routing does not repeat)
/// earns little weight on its own record. Beside them, each `LoadPurpose` keeps the share of its
/// loads that were used before they left memory, which decides whether it loads at all.
///
/// Each rate is (hits + s·prior) / (exposures + s·1) with a prior strength s of 4: the prior
/// 0.5/a for age a, 0 for every lookahead offset and the next-layer preview (a prediction earns
/// weight only by its record: every prediction is scored, loaded or not, so a good predictor
/// shows itself within a step or two), the given prompt prior, and 0.5 for a share of loads used.
struct ReuseCalibration {
    /// Oldest age tracked; older uses count as never.
    static let maximumAge = 16
    private static let priorStrength = 4.0

    private var ageHits = [Double](repeating: 0, count: maximumAge + 1)
    private var ageExposures = [Double](repeating: 0, count: maximumAge + 1)
    private var offsetHits: [LookaheadSource: [Double]] = [:]
    private var offsetExposures: [LookaheadSource: [Double]] = [:]
    private var loadHits: [LookaheadSource: [Double]] = [:]
    private var loadExposures: [LookaheadSource: [Double]] = [:]
    private var promptHits = 0.0, promptExposures = 0.0
    private var nextLayerHits: [Double] = [], nextLayerExposures: [Double] = []
    private var loadsUsed: [LoadPurpose: Double] = [:], loadsSettled: [LoadPurpose: Double] = [:]
    private var stepsSeen = 0.0, pairsUsed = 0.0
    let promptPrior: Double

    init(promptPrior: Double) { self.promptPrior = promptPrior }

    /// P(used in a step | last used `age` steps before); 0 beyond `maximumAge`.
    func recency(age: Int) -> Double {
        let a = max(1, age)
        guard a <= Self.maximumAge else { return 0 }
        return (ageHits[a] + Self.priorStrength * 0.5 / Double(a)) / (ageExposures[a] + Self.priorStrength)
    }

    /// P(used in step t + k | predicted for it by `source` after step t).
    func prediction(offset k: Int, source: LookaheadSource) -> Double {
        Self.rate(offsetHits[source] ?? [], offsetExposures[source] ?? [], offset: k)
    }

    /// P(used in step t + k | predicted for it by `source` after step t while not in memory):
    /// what loading such a prediction has been worth.
    func load(offset k: Int, source: LookaheadSource) -> Double {
        Self.rate(loadHits[source] ?? [], loadExposures[source] ?? [], offset: k)
    }

    /// P(used by its layer | previewed for it one layer early at `rank` (0: the router's first
    /// choice) while not in memory).
    func nextLayer(rank: Int) -> Double {
        guard rank < nextLayerHits.count else { return 0 }
        return nextLayerHits[rank] / (nextLayerExposures[rank] + Self.priorStrength)
    }

    /// P(used in a step | in the prompt-level set).
    var prompt: Double { (promptHits + Self.priorStrength * promptPrior) / (promptExposures + Self.priorStrength) }

    /// The share of experts loaded for `purpose` that were used before they left memory (prior
    /// 0.5): what such a load has been worth so far. A right prediction still wastes its load
    /// when memory is too small to keep it until its token comes.
    func usefulness(of purpose: LoadPurpose) -> Double {
        ((loadsUsed[purpose] ?? 0) + Self.priorStrength * 0.5) / ((loadsSettled[purpose] ?? 0) + Self.priorStrength)
    }

    mutating func exposeAge(_ age: Int, hit: Bool) {
        guard age >= 1, age <= Self.maximumAge else { return }
        ageExposures[age] += 1
        if hit { ageHits[age] += 1 }
    }

    mutating func exposeOffset(_ k: Int, source: LookaheadSource, hit: Bool) {
        Self.expose(&offsetHits[source, default: []], &offsetExposures[source, default: []], offset: k, hit: hit)
    }

    mutating func exposeLoad(_ k: Int, source: LookaheadSource, hit: Bool) {
        Self.expose(&loadHits[source, default: []], &loadExposures[source, default: []], offset: k, hit: hit)
    }

    /// The rate at offset `k` of a per-offset record (prior 0).
    private static func rate(_ hits: [Double], _ exposures: [Double], offset k: Int) -> Double {
        let i = k - 1
        guard i >= 0, i < hits.count else { return 0 }
        return hits[i] / (exposures[i] + priorStrength)
    }

    /// Counts one prediction for offset `k` in a per-offset record.
    private static func expose(_ hits: inout [Double], _ exposures: inout [Double], offset k: Int, hit: Bool) {
        guard k >= 1 else { return }
        while hits.count < k {
            hits.append(0)
            exposures.append(0)
        }
        exposures[k - 1] += 1
        if hit { hits[k - 1] += 1 }
    }

    /// The share of all (layer, expert) pairs a step uses, on average: the precision of a
    /// predictor that guesses at random (0 before any step).
    func baseRate(totalPairs: Int) -> Double {
        stepsSeen > 0 && totalPairs > 0 ? pairsUsed / (stepsSeen * Double(totalPairs)) : 0
    }

    mutating func recordStep(pairsUsed count: Int) {
        stepsSeen += 1
        pairsUsed += Double(count)
    }

    mutating func settleLoad(_ purpose: LoadPurpose, used: Bool) {
        loadsSettled[purpose, default: 0] += 1
        if used { loadsUsed[purpose, default: 0] += 1 }
    }

    mutating func exposeNextLayer(rank: Int, hit: Bool) {
        while nextLayerHits.count <= rank {
            nextLayerHits.append(0)
            nextLayerExposures.append(0)
        }
        nextLayerExposures[rank] += 1
        if hit { nextLayerHits[rank] += 1 }
    }

    mutating func exposePrompt(hit: Bool) {
        promptExposures += 1
        if hit { promptHits += 1 }
    }
}
