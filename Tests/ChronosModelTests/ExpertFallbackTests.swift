import ChronosFormats
import ChronosModel
import ChronosTensor
import ChronosTestSupport
import Synchronization
import XCTest

/// A provider that serves `base`'s experts, except those in `missing` (not resident) and those
/// in `substitutes` (served with other weights).
final class EditedExperts: ExpertProvider {
    let base: any ExpertProvider
    let missing: Set<ExpertKey>
    let substitutes: [ExpertKey: ExpertWeights]
    private let asked = Mutex<[ExpertKey]>([])

    /// Every key asked for, in order.
    var requests: [ExpertKey] { asked.withLock { $0 } }

    init(_ base: any ExpertProvider, missing: Set<ExpertKey> = [], substitutes: [ExpertKey: ExpertWeights] = [:]) {
        self.base = base
        self.missing = missing
        self.substitutes = substitutes
    }

    func weights(for key: ExpertKey) -> ExpertWeights? {
        asked.withLock { $0.append(key) }
        if missing.contains(key) { return nil }
        return substitutes[key] ?? base.weights(for: key)
    }
}

/// The lossy fallback when a routed expert is not resident, checked by building, for each case,
/// a provider whose resident weights must give exactly the fallback's output.
final class ExpertFallbackTests: XCTestCase {
    /// Logits and routing decisions of `ids` through `model`.
    private func run(_ model: any LanguageModel, _ ids: [Int]) throws -> (logits: [Float], decisions: [RoutingDecision]) {
        let cache = model.makeCache(), log = ForwardLog()
        cache.observer = log
        return (try model.forward(ids, cache: cache).floats, log.decisions)
    }

    func testProviderServingEverythingGivesIdenticalLogits() throws {
        for oracle in [OracleCase.mixtral, .qwen2MoE, .qwen3MoE] {
            let ids = try OracleReference.load(oracle.rawValue).inputIds
            let resident = try oracle.load()
            let provider = EditedExperts(resident.experts)
            let served = try oracle.load(experts: provider)
            XCTAssertEqual(try run(served, ids).logits, try run(resident, ids).logits, oracle.rawValue)
            XCTAssertFalse(provider.requests.isEmpty)
            XCTAssertEqual(served.parameterCounts, resident.parameterCounts, oracle.rawValue)
        }
    }

    /// The first token's choice in layer 0 (its two experts, best first) and the model.
    private func firstChoice(_ oracle: OracleCase) throws -> (model: any LanguageModel, token: Int, first: ExpertKey, second: ExpertKey) {
        let model = try oracle.load(), token = try OracleReference.load(oracle.rawValue).inputIds[0]
        let decision = try run(model, [token]).decisions.first { $0.layer == 0 }!
        return (model, token, ExpertKey(layer: 0, expert: decision.experts[0]), ExpertKey(layer: 0, expert: decision.experts[1]))
    }

    func testMixtralRenormalisesOverResidentExperts() throws {
        let (model, token, first, second) = try firstChoice(.mixtral)
        let reference = try run(model, [token])

        // With `second` missing, all weight goes to `first`: the same as serving `first`'s
        // weights in `second`'s place, since the two weights sum to 1.
        let fallback = try run(try OracleCase.mixtral.load(experts: EditedExperts(model.experts, missing: [second])), [token])
        let equivalent = try run(
            try OracleCase.mixtral.load(
                experts: EditedExperts(
                    model.experts, substitutes: [second: model.experts.weights(for: first)!])), [token])
        XCTAssertGreaterThan(maxAbsoluteDifference(fallback.logits, reference.logits), 1e-3, "the fallback changed nothing")
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(fallback.logits, equivalent.logits), 1e-5)

        // The observer still reports the router's decision, and which expert was missing.
        let decision = fallback.decisions.first { $0.layer == 0 }!
        XCTAssertEqual(decision.experts, [first.expert, second.expert])
        XCTAssertEqual(decision.missing, [second.expert])
        XCTAssertEqual(decision.weights, reference.decisions.first { $0.layer == 0 }!.weights)
    }

    func testMixtralWithNoResidentSelectedExpertDropsTheRoutedPart() throws {
        let (model, token, first, second) = try firstChoice(.mixtral)
        let fallback = try run(try OracleCase.mixtral.load(experts: EditedExperts(model.experts, missing: [first, second])), [token])
        let zero = { (w: Tensor) in Tensor(zeros: w.shape) }
        let zeros = { (key: ExpertKey) in
            let w = model.experts.weights(for: key)!
            return ExpertWeights(gate: zero(w.gate), up: zero(w.up), down: zero(w.down))
        }
        let equivalent = try run(
            try OracleCase.mixtral.load(
                experts: EditedExperts(
                    model.experts, substitutes: [first: zeros(first), second: zeros(second)])), [token])
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(fallback.logits, equivalent.logits), 1e-5)
        XCTAssertEqual(fallback.decisions.first { $0.layer == 0 }!.missing, [first.expert, second.expert])
    }

    func testQwen2MoEMovesMissingWeightToTheSharedExpert() throws {
        let (model, token, _, second) = try firstChoice(.qwen2MoE)
        let reference = try run(model, [token])

        // With `second` missing, its weight multiplies the shared expert instead: the same as
        // serving the shared expert's weights in `second`'s place.
        let checkpoint = try SafetensorsCheckpoint(directory: OracleCase.qwen2MoE.directory)
        let shared = { (name: String) in try checkpoint.tensor(named: "model.layers.0.mlp.shared_expert.\(name).weight") }
        let sharedWeights = ExpertWeights(gate: try shared("gate_proj"), up: try shared("up_proj"), down: try shared("down_proj"))
        let fallback = try run(try OracleCase.qwen2MoE.load(experts: EditedExperts(model.experts, missing: [second])), [token])
        let equivalent = try run(
            try OracleCase.qwen2MoE.load(
                experts: EditedExperts(
                    model.experts, substitutes: [second: sharedWeights])), [token])
        XCTAssertGreaterThan(maxAbsoluteDifference(fallback.logits, reference.logits), 1e-3, "the fallback changed nothing")
        XCTAssertLessThanOrEqual(maxAbsoluteDifference(fallback.logits, equivalent.logits), 1e-5)
        XCTAssertEqual(fallback.decisions.first { $0.layer == 0 }!.missing, [second.expert])
    }

    func testMissingExpertOnlyAffectsTokensThatChoseIt() throws {
        let model = try OracleCase.mixtral.load(), reference = try OracleReference.load("mixtral")
        // Expert 1 of layer 1 is chosen by few prompt tokens; the others must not change.
        let key = ExpertKey(layer: 1, expert: 1)
        let users = Set(reference.routerTopK![1].indices.filter { reference.routerTopK![1][$0].contains(1) })
        XCTAssertFalse(users.isEmpty)
        let full = try run(model, reference.inputIds).logits
        let fallback = try run(try OracleCase.mixtral.load(experts: EditedExperts(model.experts, missing: [key])), reference.inputIds)
            .logits
        let vocab = model.summary.vocabSize
        for position in reference.inputIds.indices {
            let rows = (position * vocab)..<((position + 1) * vocab)
            let difference = maxAbsoluteDifference(Array(fallback[rows]), Array(full[rows]))
            if users.contains(position) {
                XCTAssertGreaterThan(difference, 1e-4, "position \(position)")
            } else {
                XCTAssertEqual(difference, 0, "position \(position)")
            }
        }
    }
}
