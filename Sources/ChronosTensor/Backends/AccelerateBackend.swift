#if canImport(Accelerate)
    import Accelerate
#endif

/// Apple's Accelerate framework (`cblas_sgemm` on the AMX units), on Apple platforms only.
public struct AccelerateBackend: ComputeBackend {
    /// "accelerate".
    public var name: String { "accelerate" }

    static func probe() -> BackendStatus {
        #if canImport(Accelerate)
            BackendStatus(name: "accelerate", backend: AccelerateBackend(), reason: "Accelerate.framework")
        #else
            BackendStatus(name: "accelerate", backend: nil, reason: "only on Apple platforms")
        #endif
    }

    /// Calls Accelerate's `cblas_sgemm` in row-major order.
    public func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        #if canImport(Accelerate)
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #else
            preconditionFailure("Accelerate is only available on Apple platforms")
        #endif
    }
}
