// swift-tools-version: 6.0
import PackageDescription

// Kernels need FMA and F16C to be fast on x86-64; every target is compiled for Haswell there.
#if arch(x86_64)
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let cpuFlags: [SwiftSetting] = []
#endif

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
        .executable(name: "chronos", targets: ["chronos"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "ChronosTensor", swiftSettings: cpuFlags),
        .target(name: "ChronosFormats", dependencies: ["ChronosTensor"], swiftSettings: cpuFlags),
        .target(name: "ChronosModel", dependencies: ["ChronosTensor", "ChronosFormats"], swiftSettings: cpuFlags),
        .target(name: "ChronosStorage", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel"], swiftSettings: cpuFlags),
        .target(name: "ChronosEngine", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosRouting"],
                swiftSettings: cpuFlags),
        .target(name: "ChronosTraining", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosRouting"],
                swiftSettings: cpuFlags),
        .target(name: "ChronosRouting", dependencies: ["ChronosTensor", "ChronosFormats", "ChronosModel"], swiftSettings: cpuFlags),
        .executableTarget(
            name: "chronos",
            dependencies: [
                "ChronosTensor", "ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosEngine", "ChronosTraining",
                "ChronosRouting", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: cpuFlags),
        .target(name: "ChronosTestSupport", dependencies: ["ChronosTensor"], path: "Tests/ChronosTestSupport", swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosTensorTests", dependencies: ["ChronosTensor", "ChronosTestSupport"], swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosFormatsTests", dependencies: ["ChronosFormats", "ChronosTestSupport"], swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosModelTests", dependencies: ["ChronosModel", "ChronosTestSupport"], swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosTrainingTests", dependencies: ["ChronosTraining", "ChronosTestSupport"], swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosStorageTests", dependencies: ["ChronosStorage", "ChronosEngine", "ChronosRouting", "ChronosTestSupport"],
            swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosRoutingTests", dependencies: ["ChronosRouting", "ChronosStorage", "ChronosTraining", "ChronosTestSupport"],
            swiftSettings: cpuFlags),
        .testTarget(
            name: "ChronosEngineTests", dependencies: ["ChronosEngine", "ChronosTestSupport"], swiftSettings: cpuFlags),
    ]
)

// The libFuzzer targets (`scripts/fuzz.sh`), only when asked for: they need the sanitizer
// flags the script passes to every module, and libFuzzer's driver without its `main`.
if Context.environment["CHRONOS_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "ChronosFuzz", dependencies: ["ChronosFormats", "ChronosModel", "ChronosStorage", "ChronosRouting", "ChronosTraining"],
        path: "Fuzz/ChronosFuzz", swiftSettings: cpuFlags))
    package.products.append(.executable(name: "chronos-fuzz", targets: ["ChronosFuzz"]))
}
