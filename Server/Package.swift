// swift-tools-version: 6.0
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its folder: the checkout's, whatever it is called.
let core = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().lastPathComponent

// The OpenAI-compatible HTTP server, a package of its own so that the core and `chronos`
// build without its HTTP dependencies.
let package = Package(
    name: "ChronosServer",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ChronosServer", targets: ["ChronosServer"]),
        .executable(name: "chronos-server", targets: ["chronos-server"])
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .target(
            name: "ChronosServer",
            dependencies: [
                .product(name: "ChronosBench", package: core),
                .product(name: "ChronosEngine", package: core),
                .product(name: "ChronosModel", package: core),
                .product(name: "ChronosFormats", package: core),
                .product(name: "ChronosStorage", package: core),
                .product(name: "ChronosTensor", package: core),
                .product(name: "ChronosTraining", package: core),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus")
            ],
            // The web UI: plain HTML, CSS and JavaScript, served as they are.
            resources: [.copy("Web")]),
        .executableTarget(
            name: "chronos-server",
            dependencies: [
                "ChronosServer",
                .product(name: "ChronosEngine", package: core),
                .product(name: "ChronosFormats", package: core),
                .product(name: "ChronosOptions", package: core),
                .product(name: "ChronosStorage", package: core),
                .product(name: "ChronosTensor", package: core),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ]),
        .testTarget(
            name: "ChronosServerTests",
            dependencies: [
                "ChronosServer",
                .product(name: "ChronosEngine", package: core),
                .product(name: "ChronosFormats", package: core),
                .product(name: "ChronosTensor", package: core),
                .product(name: "HummingbirdTesting", package: "hummingbird")
            ])
    ]
)
