import ChronosFormats
import ChronosModel
import ChronosTestSupport
import Foundation
import XCTest

@testable import ChronosStorage

final class ExpertCachePackingTests: XCTestCase {
    func testPackWritesValidClusterFilesAndACompleteManifest() throws {
        for directory in [
            try StorageFixtures.chronosModel(), try StorageFixtures.huggingFaceModel("mixtral"),
            try StorageFixtures.huggingFaceModel("qwen2_moe")
        ] {
            let model = try ModelRegistry.load(directory: directory)
            let manifest = try ExpertCachePacker.pack(directory: directory, model: model)
            let cache = try ExpertCache.open(modelDirectory: directory)
            try cache.validate(against: model)
            try cache.verifyFiles()
            XCTAssertEqual(manifest.files.count, model.summary.expertsPerLayer.filter { $0 > 0 }.count, "one cluster per MoE layer")
            XCTAssertEqual(manifest.experts.count, model.summary.expertsPerLayer.reduce(0, +))
            XCTAssertEqual(manifest.dtype, "f32")
            XCTAssertEqual(manifest.modelType, model.summary.modelType)

            // Every expert's bytes in its cluster file equal the checkpoint's, tensor by tensor.
            let checkpoint = try SafetensorsCheckpoint(directory: directory)
            for entry in manifest.experts {
                let file = try SafetensorsFile(url: cache.fileURLs[entry.file])
                XCTAssertEqual(file.metadata["chronos"], "expert-cluster")
                for tensor in entry.tensors {
                    XCTAssertEqual(
                        try file.tensor(named: tensor.name).floats, try checkpoint.tensor(named: tensor.source).floats,
                        "\(directory.lastPathComponent) \(tensor.name)")
                }
            }
        }
    }

    func testCustomClusterPlanIsFollowedAndChecked() throws {
        let directory = try StorageFixtures.chronosModel()
        let model = try ModelRegistry.load(directory: directory)
        let planURL = directory.appendingPathComponent("clusters.json")
        // Experts that fire together across layers share a file; every pair exactly once.
        let pairs = [[[0, 0], [1, 0], [0, 1]], [[1, 1], [0, 2], [0, 3], [0, 4], [0, 5]], [[1, 2], [1, 3], [1, 4], [1, 5]]]
        try JSONEncoder().encode(pairs).write(to: planURL)
        let plan = try ClusterPlan.read(planURL, for: model.summary)
        let manifest = try ExpertCachePacker.pack(directory: directory, model: model, plan: plan)
        XCTAssertEqual(manifest.files.count, 3)
        XCTAssertEqual(
            manifest.experts.filter { $0.file == 0 }.map(\.key),
            [ExpertKey(layer: 0, expert: 0), ExpertKey(layer: 1, expert: 0), ExpertKey(layer: 0, expert: 1)])
        try ExpertCache.open(modelDirectory: directory).validate(against: model)

        try JSONEncoder().encode([[[0, 0], [0, 0]]]).write(to: planURL)
        XCTAssertThrowsError(try ClusterPlan.read(planURL, for: model.summary)) { error in
            guard case ExpertCacheError.invalidClusterPlan(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("more than once"), reason)
        }
        try JSONEncoder().encode([[[0, 0]]]).write(to: planURL)
        XCTAssertThrowsError(try ClusterPlan.read(planURL, for: model.summary)) { error in
            XCTAssertTrue("\(error)".contains("in no cluster"), "\(error)")
        }
    }

    func testInterruptedPackLeavesNoCacheThatLoads() throws {
        let directory = try StorageFixtures.chronosModel()
        let model = try ModelRegistry.load(directory: directory)
        struct Interrupted: Error {}
        XCTAssertThrowsError(
            try ExpertCachePacker.pack(
                directory: directory, model: model, plan: nil, progress: nil,
                afterFile: { if $0 == 0 { throw Interrupted() } }))
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory)) { error in
            XCTAssertEqual(error as? ExpertCacheError, .notPacked(directory: directory.path))
        }

        // A crash (no cleanup) leaves a partial folder, which is never read and the next pack removes.
        let partial = directory.appendingPathComponent("expert_cache.partial-crashed")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: partial.appendingPathComponent(ExpertCacheManifest.fileName))
        XCTAssertThrowsError(try ExpertCache.open(modelDirectory: directory))
        try StorageFixtures.pack(directory)
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path))
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory))

        // Re-packing over a good cache replaces it whole; an interrupted re-pack keeps the old one.
        XCTAssertThrowsError(
            try ExpertCachePacker.pack(
                directory: directory, model: model, plan: nil, progress: nil,
                afterFile: { _ in throw Interrupted() }))
        XCTAssertNoThrow(try ExpertCache.open(modelDirectory: directory).verifyFiles())
    }
}
