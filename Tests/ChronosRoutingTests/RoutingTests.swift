import ChronosModel
import ChronosRouting
import ChronosStorage
import ChronosTensor
import ChronosTestSupport
import Foundation
import XCTest

/// A tiny Chronos-native model (2 layers of 6 experts, top-2) with weights scaled so routing varies.
private func tinyChronosModel() throws -> URL {
    let configuration = ChronosConfiguration(
        vocabSize: 32, hiddenSize: 16, hiddenLayers: 2, attentionHeads: 2, keyValueHeads: 1, headDim: 8, kvLatentDim: 8,
        ropeDim: 4, slidingWindow: 8, layerTypes: [.mla, .sliding], experts: 6, expertsPerToken: 2,
        sharedExperts: 1, moeIntermediateSize: 12, sharedExpertIntermediateSize: 10, normTopKProb: true,
        lookaheadSteps: 2, maxPositionEmbeddings: 128)
    var weights = try TransformerLanguageModel.initialize(configuration: configuration, seed: 3)
    for (name, tensor) in weights where !name.contains("norm") && !name.hasSuffix(".bias") {
        weights[name] = Tensor(shape: tensor.shape, values: tensor.floats.map { $0 * 20 })
    }
    let directory = try Fixtures.temporaryDirectory()
    try TransformerLanguageModel(configuration: configuration, weights: weights).save(to: directory)
    return directory
}

/// Fixed token sequences below a vocabulary of 32.
private let tinySequences: [[Int]] = (0..<4).map { s in (0..<12).map { ($0 * 7 + 3 + s * 5) % 32 } }

final class ActivationTraceTests: XCTestCase {
    private func handMadeTrace() -> ActivationTrace {
        ActivationTrace(
            layers: [.init(layer: 0, experts: 4, expertBytes: 100), .init(layer: 2, experts: 4, expertBytes: 100)],
            expertsPerToken: 2, hiddenSize: 3, hiddenLayer: 1, sequenceCount: 2,
            tokens: [
                .init(
                    sequence: 0, position: 0, id: 7, experts: [[1, 3], [0, 2]], probabilities: [[0.6, 0.3], [0.5, 0.25]],
                    hidden: [1, -2, 0.5]),
                .init(
                    sequence: 0, position: 1, id: 9, experts: [[3, 1], [2, 0]], probabilities: [[0.7, 0.1], [0.4, 0.4]], hidden: [0, 3, -1]),
                .init(
                    sequence: 1, position: 0, id: 2, experts: [[0, 2], [1, 3]], probabilities: [[0.9, 0.05], [0.8, 0.1]], hidden: [2, 2, 2])
            ])
    }

    func testRoundTripThroughFile() throws {
        let trace = handMadeTrace()
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("routing.trace")
        try trace.write(to: url)
        let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
        XCTAssertEqual(size, 44 + 16 * 2 + 3 * (12 + 8 * 2 * 2 + 4 * 3))
        XCTAssertEqual(try ActivationTrace.read(url), trace)
    }

    func testReadsAVersionOneTraceAsTakenAfterLayerZero() throws {
        var bytes = [UInt8](handMadeTrace().encoded())
        bytes[8] = 1
        bytes.removeSubrange(40..<44)
        let old = try ActivationTrace.decode(Data(bytes), path: "old.trace")
        XCTAssertEqual(old.hiddenLayer, 0)
        XCTAssertEqual(old.tokens, handMadeTrace().tokens)
        bytes[8] = 3
        XCTAssertThrowsError(try ActivationTrace.decode(Data(bytes), path: "old.trace")) {
            XCTAssertTrue("\($0)".contains("version 3"), "\($0)")
        }
    }

    /// Found by fuzzing (`scripts/fuzz.sh trace`): sizes from the file that no integer holds
    /// are errors, not traps.
    func testSizesBeyondWhatAFileHoldsAreErrors() throws {
        var bytes = [UInt8](handMadeTrace().encoded())
        for index in 52..<60 { bytes[index] = 0xFF }  // layer 0's expert bytes: 2⁶⁴ − 1
        XCTAssertThrowsError(try ActivationTrace.decode(Data(bytes), path: "huge.trace")) {
            XCTAssertTrue("\($0)".contains("experts of 18446744073709551615 bytes"), "\($0)")
        }
        bytes = [UInt8](handMadeTrace().encoded())
        for index in 48..<52 { bytes[index] = 0xFF }  // layer 0's experts: 2³² − 1
        XCTAssertThrowsError(try ActivationTrace.decode(Data(bytes), path: "huge.trace")) {
            XCTAssertTrue("\($0)".contains("4294967295 experts"), "\($0)")
        }
        bytes = [UInt8](handMadeTrace().encoded())
        for index in 32..<40 { bytes[index] = 0xFF }  // 2⁶⁴ − 1 records
        XCTAssertThrowsError(try ActivationTrace.decode(Data(bytes), path: "huge.trace")) {
            XCTAssertTrue("\($0)".contains("truncated"), "\($0)")
        }
    }

    func testTruncatedTraceNamesTheFile() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("cut.trace")
        try handMadeTrace().encoded().dropLast(5).write(to: url)
        XCTAssertThrowsError(try ActivationTrace.read(url)) { error in
            guard case .malformed(let path, let reason) = error as? ActivationTraceError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertTrue(reason.hasPrefix("truncated"), reason)
            XCTAssertTrue("\(error)".contains("cut.trace"))
        }
        try Data("CHRTRACE".utf8).write(to: url)
        XCTAssertThrowsError(try ActivationTrace.read(url)) { XCTAssertTrue("\($0)".contains("header"), "\($0)") }
        var bad = handMadeTrace().encoded()
        bad[0] = UInt8(ascii: "X")
        try bad.write(to: url)
        XCTAssertThrowsError(try ActivationTrace.read(url)) { XCTAssertTrue("\($0)".contains("magic"), "\($0)") }
    }

    func testTracesATinyChronosModelWithItsBlockZeroHiddenState() throws {
        let model = try ModelRegistry.load(directory: tinyChronosModel())
        let trace = try ActivationTracer.trace(model, sequences: tinySequences, hiddenLayer: 0)
        XCTAssertThrowsError(try ActivationTracer.trace(model, sequences: tinySequences, hiddenLayer: 2)) {
            XCTAssertEqual($0 as? ActivationTracerError, .noSuchLayer(2, layers: 2))
        }
        XCTAssertEqual(trace.layers.map(\.layer), [0, 1])
        XCTAssertEqual(trace.hiddenSize, 16)
        XCTAssertEqual(trace.tokens.count, 4 * 12)
        for token in trace.tokens {
            XCTAssertEqual(token.experts.map(\.count), [2, 2])
            for p in token.probabilities { XCTAssertGreaterThanOrEqual(p[0], p[1]) }
        }
        let hidden = try XCTUnwrap(
            model.forward(
                tinySequences[1], cache: model.makeCache(),
                options: ForwardOptions(hiddenLayers: [0])
            ).hidden[0])
        XCTAssertEqual(trace.tokens[12 + 5].hidden, Array(hidden.floats[(5 * 16)..<(6 * 16)]))
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("tiny.trace")
        try trace.write(to: url)
        XCTAssertEqual(try ActivationTrace.read(url), trace)
    }

    func testTracesAHuggingFaceModelWithTheHiddenStateAfterTheLayerAskedFor() throws {
        let model = try ModelRegistry.load(directory: Fixtures.url("hf-tiny/mixtral"))
        let ids = (0..<9).map { ($0 * 37 + 11) % 256 }
        let trace = try ActivationTracer.trace(model, sequences: [ids], hiddenLayer: 1)
        XCTAssertEqual(trace.hiddenSize, 64)
        let cache = model.makeCache(), log = ForwardLog()
        cache.observer = log
        _ = try model.forward(ids, cache: cache)
        let hidden = try XCTUnwrap(log.hidden[1])
        XCTAssertEqual(hidden.shape, [9, 64])
        XCTAssertEqual(trace.tokens[4].hidden, Array(hidden.floats[(4 * 64)..<(5 * 64)]))
        XCTAssertNotEqual(trace.tokens[4].hidden, trace.tokens[5].hidden)
    }
}

final class LouvainTests: XCTestCase {
    /// Two triangles {0,1,2} and {3,4,5} joined by the edge 2–3, every weight 1: m = 7, each
    /// side has in_c = 2·3 = 6 and tot_c = 2+2+3 = 7, so Q = 2·(6/14 − (7/14)²) = 5/14.
    func testFindsTwoTrianglesWithTheirModularity() {
        let edges: [(Int, Int, Double)] = [(0, 1, 1), (1, 2, 1), (0, 2, 1), (3, 4, 1), (4, 5, 1), (3, 5, 1), (2, 3, 1)]
        let graph = WeightedGraph(nodeCount: 6, edges: edges)
        for seed: UInt64 in [0, 1, 2, 42, 12345] {
            let result = Louvain.run(graph, seed: seed)
            XCTAssertEqual(result.communities, [0, 0, 0, 1, 1, 1], "seed \(seed)")
            XCTAssertEqual(result.modularity, 5.0 / 14.0, accuracy: 1e-12)
        }
        XCTAssertEqual(graph.modularity([0, 0, 0, 0, 0, 0]), 0, accuracy: 1e-12)
    }

    func testSameSeedGivesTheSamePlan() throws {
        let model = try ModelRegistry.load(directory: tinyChronosModel())
        let trace = try ActivationTracer.trace(model, sequences: tinySequences, hiddenLayer: 0)
        let first = ExpertClustering.cluster(trace, seed: 7, maxExperts: 4)
        let second = ExpertClustering.cluster(trace, seed: 7, maxExperts: 4)
        XCTAssertEqual(first.clusters, second.clusters)
        XCTAssertEqual(first.modularity, second.modularity)
        XCTAssertEqual(ExpertClustering.planJSON(first.clusters), ExpertClustering.planJSON(second.clusters))
        XCTAssertTrue(first.clusters.allSatisfy { !$0.isEmpty && $0.count <= 4 })
    }
}

final class ExpertClusteringTests: XCTestCase {
    func testReadCostCountsOneContiguousRunPerCluster() {
        let trace = ActivationTrace(
            layers: [.init(layer: 0, experts: 4, expertBytes: 10)], expertsPerToken: 2, hiddenSize: 0, sequenceCount: 1,
            tokens: [.init(sequence: 0, position: 0, id: 0, experts: [[0, 3]], probabilities: [[0.5, 0.4]])])
        let perLayer = ExpertClustering.readCost(trace, clusters: ExpertClustering.perLayer(trace))
        XCTAssertEqual(perLayer, .init(tokens: 1, reads: 1, bytes: 40))
        let key = { ExpertKey(layer: 0, expert: $0) }
        XCTAssertEqual(
            ExpertClustering.readCost(trace, clusters: [[key(0), key(3)], [key(1), key(2)]]), .init(tokens: 1, reads: 1, bytes: 20))
        XCTAssertEqual(
            ExpertClustering.readCost(trace, clusters: [[key(0), key(1)], [key(2), key(3)]]), .init(tokens: 1, reads: 2, bytes: 20))
    }

    func testWrittenPlanPacksATinyModelIntoACacheThatLoads() throws {
        let directory = try tinyChronosModel()
        let model = try ModelRegistry.load(directory: directory)
        let trace = try ActivationTracer.trace(model, sequences: tinySequences, hiddenLayer: 0)
        let outcome = ExpertClustering.cluster(trace, seed: 1, maxExperts: 3)
        let planURL = directory.appendingPathComponent("clusters.json")
        try ExpertClustering.planJSON(outcome.clusters).write(to: planURL)
        let plan = try ClusterPlan.read(planURL, for: model.summary)
        XCTAssertEqual(plan.clusters, outcome.clusters)
        let manifest = try ExpertCachePacker.pack(directory: directory, model: model, plan: plan)
        XCTAssertEqual(manifest.files.count, outcome.clusters.count)
        XCTAssertEqual(manifest.experts.count, 12)
        let cache = try ExpertCache.open(modelDirectory: directory)
        try cache.verifyFiles()
    }
}
