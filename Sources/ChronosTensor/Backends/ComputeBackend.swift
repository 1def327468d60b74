import Foundation
import Synchronization

/// A provider of the heavy dense kernel (single-precision GEMM). Everything else runs on the
/// Swift kernels, which are as fast as C for the memory-bound work of decoding.
public protocol ComputeBackend: Sendable {
    /// Short name used on the command line and in `CHRONOS_BACKEND`.
    var name: String { get }
    /// Computes `C = alpha * op(A) * op(B) + beta * C` (row-major, leading dimensions in elements).
    func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int)
    /// Runs `body` with the backend's own threads, if it keeps any, limited to one: for work
    /// that is already spread over the pool's threads.
    func singleThreaded<T>(_ body: () throws -> T) rethrows -> T
}

extension ComputeBackend {
    /// Runs `body` as is: the backend uses only the pool's threads.
    public func singleThreaded<T>(_ body: () throws -> T) rethrows -> T { try body() }
}

/// The pure-Swift SIMD backend, available everywhere.
public struct SwiftBackend: ComputeBackend {
    /// Threads come from this pool.
    public let pool: ThreadPool
    /// A Swift backend running on `pool`.
    public init(pool: ThreadPool = .shared) { self.pool = pool }
    /// Always "swift".
    public var name: String { "swift" }
    /// Runs `SwiftGemm.sgemm` on the pool.
    public func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        SwiftGemm.sgemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, pool: pool)
    }
}

/// What the probe found about one backend.
public struct BackendStatus: Sendable {
    /// Backend name ("swift", "openblas", "accelerate").
    public let name: String
    /// The loaded backend, or nil when it cannot be used here.
    public let backend: (any ComputeBackend)?
    /// Why it is or is not available (library path, platform).
    public let reason: String
    /// Whether it can be used.
    public var isAvailable: Bool { backend != nil }
}

/// Errors from choosing a backend.
public enum BackendError: Error, CustomStringConvertible {
    /// The requested name is not a known backend.
    case unknown(String)
    /// The requested backend exists but cannot be loaded here.
    case unavailable(String, reason: String)

    /// A message naming the backend and, when known, why it cannot be used.
    public var description: String {
        switch self {
        case .unknown(let name): "unknown backend '\(name)' (known: \(Backends.priority.joined(separator: ", ")))"
        case .unavailable(let name, let reason): "backend '\(name)' is not available: \(reason)"
        }
    }
}

/// Probes the backends once, picks the best available by priority, and lets the user
/// override the choice (`CHRONOS_BACKEND` or the CLI's `--backend`).
public enum Backends {
    /// Names from most to least preferred.
    public static let priority = ["accelerate", "openblas", "swift"]

    /// Every known backend with whether it loaded and why.
    public static let statuses: [BackendStatus] = [
        AccelerateBackend.probe(),
        OpenBLASBackend.probe(),
        BackendStatus(name: "swift", backend: SwiftBackend(), reason: "built in")
    ]

    private static let selection = Mutex<(any ComputeBackend)?>(nil)

    /// The backend in use: the one chosen by `select`, else `CHRONOS_BACKEND`, else the first
    /// available by priority (also where `CHRONOS_BACKEND` names none that can be used, which
    /// `checkEnvironment` refuses before a command starts).
    public static var current: any ComputeBackend {
        if let chosen = selection.withLock({ $0 }) { return chosen }
        let chosen = (try? environmentBackend()) ?? nil ?? statuses.first { $0.isAvailable }?.backend ?? SwiftBackend()
        selection.withLock { $0 = chosen }
        return chosen
    }

    /// The backend `CHRONOS_BACKEND` names, or nil when it is unset; throws when it names an
    /// unknown backend or one not available here.
    public static func environmentBackend(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (
        any ComputeBackend
    )? {
        guard let requested = environment["CHRONOS_BACKEND"], !requested.isEmpty else { return nil }
        do {
            return try backend(named: requested)
        } catch {
            throw InvalidSetting(
                name: "CHRONOS_BACKEND", value: "'\(requested)'",
                expected: "one of \(statuses.filter(\.isAvailable).map(\.name).joined(separator: ", ")) (\(error))")
        }
    }

    /// Makes `name` the backend in use, or throws why it cannot be.
    @discardableResult
    public static func select(_ name: String) throws -> any ComputeBackend {
        let chosen = try backend(named: name)
        selection.withLock { $0 = chosen }
        return chosen
    }

    /// The backend called `name`, or an error saying why it cannot be used.
    public static func backend(named name: String) throws -> any ComputeBackend {
        guard let status = statuses.first(where: { $0.name == name.lowercased() }) else { throw BackendError.unknown(name) }
        guard let backend = status.backend else { throw BackendError.unavailable(status.name, reason: status.reason) }
        return backend
    }
}
