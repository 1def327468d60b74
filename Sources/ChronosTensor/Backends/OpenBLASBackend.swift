import Foundation

/// OpenBLAS's `cblas_sgemm`, loaded at run time with `dlopen` when the shared library is on
/// the machine, so that building Chronos never requires it.
public struct OpenBLASBackend: ComputeBackend, @unchecked Sendable {
    typealias CblasSgemm =
        @convention(c) (
            Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
            UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
        ) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void

    /// The library file that was loaded.
    public let path: String
    let cblasSgemm: CblasSgemm
    let setThreads: SetThreads?

    /// Library names tried in order.
    static let candidates = [
        "libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.so",
        "/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
        "libopenblas.dylib", "/opt/homebrew/opt/openblas/lib/libopenblas.dylib"
    ]

    /// Tries each candidate library; on success sets OpenBLAS's thread count to the pool's.
    static func probe() -> BackendStatus {
        for path in candidates {
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let symbol = dlsym(handle, "cblas_sgemm") else {
                dlclose(handle)
                continue
            }
            let setThreads = dlsym(handle, "openblas_set_num_threads").map { unsafeBitCast($0, to: SetThreads.self) }
            setThreads?(Int32(ThreadPool.shared.threadCount))
            let backend = OpenBLASBackend(path: path, cblasSgemm: unsafeBitCast(symbol, to: CblasSgemm.self), setThreads: setThreads)
            return BackendStatus(name: "openblas", backend: backend, reason: "loaded \(path)")
        }
        return BackendStatus(
            name: "openblas", backend: nil,
            reason: "no OpenBLAS shared library found (tried \(candidates.prefix(2).joined(separator: ", ")), …)")
    }

    /// "openblas".
    public var name: String { "openblas" }

    /// Runs `body` with OpenBLAS's threads set to one, then back to the pool's width.
    public func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        setThreads?(1)
        defer { setThreads?(Int32(ThreadPool.shared.threadCount)) }
        return try body()
    }

    /// Calls `cblas_sgemm` in row-major order.
    public func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let rowMajor: Int32 = 101, noTrans: Int32 = 111, trans: Int32 = 112
        cblasSgemm(
            rowMajor, transA ? trans : noTrans, transB ? trans : noTrans, Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
