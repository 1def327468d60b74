import ChronosFormats
import ChronosModel
import ChronosTensor
import XCTest

final class ExpertVerificationTests: XCTestCase {
    /// One expert whose three projections lie back to back in one buffer, as a cache packs them.
    func expert(values: [Float]) -> (ExpertWeights, bytes: [UInt8]) {
        let tensor = Tensor(shape: [3, 2], values: values)
        let storage = tensor.storage
        let gate = Tensor(dtype: .f32, shape: [2], offset: 0, storage: storage)
        let up = Tensor(dtype: .f32, shape: [2], offset: 2, storage: storage)
        let down = Tensor(dtype: .f32, shape: [2], offset: 4, storage: storage)
        let bytes = Array(UnsafeRawBufferPointer(start: storage.base, count: 24))
        return (ExpertWeights(gate: gate, up: up, down: down), bytes)
    }

    func testAnExpertIsCheckedOnFirstUseAndAMismatchIsTheProvidersFailure() {
        let good = ExpertKey(layer: 0, expert: 0), bad = ExpertKey(layer: 0, expert: 1)
        let (goodWeights, goodBytes) = expert(values: [1, 2, 3, 4, 5, 6])
        let (badWeights, _) = expert(values: [1, 2, 3, 4, 5, 7])
        let recorded = ContentHash.xxh64(goodBytes)
        let verification = ExpertVerification(records: [
            good: .init(file: "cluster_000.ctsr", hash: recorded, length: 24),
            bad: .init(file: "cluster_001.ctsr", hash: recorded, length: 24)
        ])
        let provider = ResidentExperts([good: goodWeights, bad: badWeights], verification: verification)
        XCTAssertNotNil(provider.weights(for: good))
        XCTAssertNil(provider.failure)
        XCTAssertNil(provider.weights(for: bad), "corrupted bytes are never computed with")
        let failure = provider.failure as? CorruptExpertError
        XCTAssertEqual(failure?.expert, bad)
        XCTAssertEqual(failure?.file, "cluster_001.ctsr")
        XCTAssertTrue("\(failure!)".contains("corrupted"), "\(failure!)")
        XCTAssertNotNil(provider.weights(for: good), "a verified expert stays usable")
    }
}

final class ConfigurationLimitTests: XCTestCase {
    func testSizesBeyondTheLimitsAreRefusedByFieldBeforeAnythingIsAllocated() throws {
        for (field, edit) in [
            ("num_experts", { (c: inout ChronosConfiguration) in c.experts = 1_000_000_000 }),
            ("hidden_size", { $0.hiddenSize = -1 }), ("vocab_size", { $0.vocabSize = 1 << 40 }),
            ("lookahead_steps", { $0.lookaheadSteps = -2 }),
            ("max_position_embeddings", { $0.maxPositionEmbeddings = 0 })
        ] {
            var configuration = TinyChronos.configuration()
            edit(&configuration)
            XCTAssertThrowsError(try configuration.validate(), field) { error in
                guard case ModelError.malformedConfig(_, let found, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(found, field)
                XCTAssertTrue(reason.contains("between") || reason.contains("must"), reason)
            }
        }
        XCTAssertNoThrow(try TinyChronos.configuration().validate())
    }

    func testACheckpointTensorTheConfigurationDoesNotUseIsRefused() throws {
        // Weights with a shared expert, read under a configuration without one: the shared
        // expert's weights would be silently ignored.
        let weights = try TinyChronos.weights(TinyChronos.configuration(sharedExperts: 1))
        XCTAssertThrowsError(try TransformerLanguageModel(configuration: TinyChronos.configuration(sharedExperts: 0), weights: weights)) {
            error in
            guard case ModelError.unusedTensor(let name, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(name.contains("shared_experts"), name)
        }
    }
}
