// swift-tools-version: 6.0
// A package that depends on Chronos by URL and version, as a user's package would. SwiftPM
// refuses a versioned dependency whose targets use unsafe flags, so this builds only while no
// Chronos library target needs them. `scripts/check_versioned_dependency.sh` clones Chronos,
// tags the clone and builds this package against it.
import PackageDescription

let repository = Context.environment["CHRONOS_REPOSITORY"] ?? "https://example.invalid/chronos.git"
let version = Context.environment["CHRONOS_VERSION"] ?? "1.0.0"

let package = Package(
    name: "ChronosConsumer",
    platforms: [.macOS(.v15)],
    dependencies: [.package(url: repository, from: Version(stringLiteral: version))],
    targets: [
        .executableTarget(
            name: "ChronosConsumer",
            dependencies: [.product(name: "ChronosTensor", package: "chronos"), .product(name: "ChronosModel", package: "chronos")])
    ]
)
