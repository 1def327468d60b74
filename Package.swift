// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Chronos",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ChronosTensor", targets: ["ChronosTensor"]),
        .library(name: "ChronosFormats", targets: ["ChronosFormats"]),
        .library(name: "ChronosModel", targets: ["ChronosModel"]),
        .library(name: "ChronosStorage", targets: ["ChronosStorage"]),
        .library(name: "ChronosEngine", targets: ["ChronosEngine"]),
        .library(name: "ChronosTraining", targets: ["ChronosTraining"]),
        .library(name: "ChronosRouting", targets: ["ChronosRouting"]),
        .library(name: "ChronosBench", targets: ["ChronosBench"]),
        .library(name: "ChronosOptions", targets: ["ChronosOptions"]),
        .executable(name: "chronos", targets: ["chronos"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation`: the libraries' DocC documentation.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0")
    ],
    targets: [
        // The instruction-set kernels: one build carries every variant, chosen at run time.
        .target(name: "CChronosKernels"),
        .target(name: "ChronosTensor", dependencies: ["CChronosKernels"]),
        .target(name: "ChronosFormats", dependencies: ["ChronosTensor"]),
        .target(name: "ChronosModel", dependencies: ["ChronosTensor", "ChronosFormats"]),
        // The PyTorch module `chronos export --to transformers` writes beside a checkpoint.
        .target(
            name: "ChronosStorage", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel"],
            resources: [.copy("Resources/modeling_chronos.py")]),
        .target(
            name: "ChronosEngine", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosRouting"]),
        .target(
            name: "ChronosTraining", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosRouting"]),
        .target(name: "ChronosRouting", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel"]),
        // The benchmark harness: baselines measured in alternation, their bounds and reports.
        .target(
            name: "ChronosBench",
            dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosEngine", "ChronosTraining"]),
        // The command-line options `chronos` and `chronos-server` share.
        .target(
            name: "ChronosOptions",
            dependencies: [
                "ChronosTensor", "ChronosStorage", "ChronosEngine", .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .executableTarget(
            name: "chronos",
            dependencies: [
                "ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosEngine", "ChronosTraining",
                "ChronosRouting", "ChronosBench", "ChronosOptions", .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .target(name: "ChronosTestSupport", dependencies: ["ChronosTensor", "ChronosModel"], path: "Tests/ChronosTestSupport"),
        .testTarget(
            name: "ChronosTensorTests", dependencies: ["ChronosTensor", "ChronosTestSupport"]),
        .testTarget(
            name: "ChronosFormatsTests", dependencies: ["ChronosFormats", "ChronosTestSupport"]),
        .testTarget(
            name: "ChronosModelTests", dependencies: ["ChronosModel", "ChronosTestSupport"]),
        .testTarget(
            name: "ChronosTrainingTests", dependencies: ["ChronosTraining", "ChronosTestSupport"]),
        .testTarget(
            name: "ChronosStorageTests", dependencies: ["ChronosStorage", "ChronosEngine", "ChronosRouting", "ChronosTestSupport"]),
        .testTarget(
            name: "ChronosRoutingTests", dependencies: ["ChronosRouting", "ChronosStorage", "ChronosTraining", "ChronosTestSupport"]),
        .testTarget(
            name: "ChronosEngineTests", dependencies: ["ChronosEngine", "ChronosTestSupport"]),
        // The command-line tool's own tests: its help, as the generated command reference records it.
        .testTarget(name: "ChronosCLITests", dependencies: ["chronos"]),
        .testTarget(
            name: "ChronosBenchTests",
            dependencies: ["ChronosBench", "ChronosEngine", "ChronosModel", "ChronosStorage", "ChronosTensor", "ChronosTestSupport"])
    ]
)

// The libFuzzer targets (`scripts/fuzz.sh`), only when asked for: they need the sanitizer
// flags the script passes to every module, and libFuzzer's driver without its `main`.
if Context.environment["CHRONOS_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "ChronosFuzz", dependencies: ["ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosRouting", "ChronosTraining"],
            path: "Fuzz/ChronosFuzz"))
    package.products.append(.executable(name: "chronos-fuzz", targets: ["ChronosFuzz"]))
}
