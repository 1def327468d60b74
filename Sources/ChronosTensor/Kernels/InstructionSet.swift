import CChronosKernels
import Foundation

/// The instruction sets Chronos has kernels for. On x86-64 the AVX2, AVX-512 and AVX512-BF16
/// kernels are all in every build and the widest the processor supports is used; `sse2` and
/// `neon` are the portable Swift SIMD kernels, which the compiler emits for the architecture's
/// baseline vector unit.
public enum InstructionSet: String, CaseIterable, Sendable, CustomStringConvertible {
    /// x86-64's baseline: the Swift kernels at 128-bit width.
    case sse2
    /// arm64's baseline: the Swift kernels on NEON.
    case neon
    /// AVX2 with FMA and F16C: 8 f32 lanes.
    case avx2
    /// AVX-512 F/BW/VL/DQ: 16 f32 lanes, masked tails.
    case avx512
    /// AVX-512 with the bf16 dot product: bf16 weights multiply bf16-rounded activations.
    case avx512bf16

    /// The name `CHRONOS_ISA` takes.
    public var description: String { rawValue }

    /// Whether this processor (and its operating system) can run the set.
    public var isSupported: Bool {
        switch self {
        case .sse2:
            #if arch(x86_64)
                return true
            #else
                return false
            #endif
        case .neon:
            #if arch(arm64)
                return true
            #else
                return false
            #endif
        case .avx2, .avx512, .avx512bf16:
            return chronos_isa_supported(code) != 0
        }
    }

    /// Every set this processor can run, narrowest first.
    public static let supported: [InstructionSet] = allCases.filter(\.isSupported)

    /// The widest set this processor can run.
    public static let best: InstructionSet = supported.last ?? .sse2

    /// The set in use: `CHRONOS_ISA` where it names a supported set, else the widest
    /// (`checkEnvironment` refuses other values of `CHRONOS_ISA` before a command starts).
    public static let current: InstructionSet = (try? environmentSet()) ?? nil ?? best

    /// The set `CHRONOS_ISA` names, or nil when it is unset; throws when it names an unknown
    /// set or one this processor lacks.
    public static func environmentSet(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(InvalidSetting)
        -> InstructionSet?
    {
        guard let name = environment["CHRONOS_ISA"], !name.isEmpty else { return nil }
        guard let set = InstructionSet(rawValue: name.lowercased()), set.isSupported else {
            throw InvalidSetting(
                name: "CHRONOS_ISA", value: "'\(name)'",
                expected: "one of \(supported.map(\.rawValue).joined(separator: ", ")) on this processor")
        }
        return set
    }

    /// Whether activations are rounded to bf16 when they multiply bf16 weights (the bf16 dot
    /// product takes both operands in bf16), in decoding and in batches alike, as llama.cpp
    /// does on such processors.
    public var roundsActivationsToBF16: Bool { kernels?.round_bf16 != nil }

    /// Whether the set's vectors multiply-add at full width: true for all but the AVX-512 sets
    /// on processors whose 512-bit multiply-adds run no faster than two 256-bit ones (timed
    /// once, about a millisecond).
    public var hasFullWidthFMA: Bool {
        switch self {
        case .avx512, .avx512bf16: Self.avx512FMAIsFullWidth
        default: true
        }
    }

    private static let avx512FMAIsFullWidth: Bool = {
        guard let wide = InstructionSet.avx512.kernels, let narrow = InstructionSet.avx2.kernels else { return false }
        func rate(_ peak: @convention(c) (Int) -> Double) -> Double {
            var best = 0.0
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                let operations = peak(20_000)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                best = max(best, operations / max(seconds, 1e-9))
            }
            return best
        }
        return rate(wide.fma_peak) > 1.3 * rate(narrow.fma_peak)
    }()

    /// Runs `iterations` rounds of independent multiply-adds at the set's full width and
    /// returns the floating-point operations done; nil for the portable sets.
    public func runFMAPeak(iterations: Int) -> Double? {
        kernels.map { $0.fma_peak(iterations) }
    }

    /// As `runFMAPeak` with the bf16 dot product; nil where the set has none.
    public func runBF16DotPeak(iterations: Int) -> Double? {
        kernels?.bf16_dot_peak.map { $0(iterations) }
    }

    /// Runs `iterations` rounds of AVX512-VNNI int8 dot products and returns the integer
    /// operations done; nil where the processor lacks them.
    public static func runInt8DotPeak(iterations: Int) -> Double? {
        let operations = chronos_int8_dot_peak(iterations)
        return operations > 0 ? operations : nil
    }

    /// The C kernels of the set, or nil for the portable Swift kernels.
    var kernels: chronos_kernels? {
        switch self {
        case .sse2, .neon: nil
        case .avx2: Self.table.avx2
        case .avx512: Self.table.avx512
        case .avx512bf16: Self.table.avx512bf16
        }
    }

    private var code: chronos_isa {
        switch self {
        case .sse2, .neon: chronos_isa(rawValue: 0)
        case .avx2: CHRONOS_ISA_AVX2
        case .avx512: CHRONOS_ISA_AVX512
        case .avx512bf16: CHRONOS_ISA_AVX512BF16
        }
    }

    /// The C tables, looked up once; a set the processor lacks has none, so it is never called.
    private struct Tables: @unchecked Sendable {
        let avx2, avx512, avx512bf16: chronos_kernels?
        init() {
            func table(_ set: InstructionSet) -> chronos_kernels? {
                set.isSupported ? chronos_kernels_for(set.code)?.pointee : nil
            }
            avx2 = table(.avx2)
            avx512 = table(.avx512)
            avx512bf16 = table(.avx512bf16)
        }
    }
    private static let table = Tables()
}

/// The current set's vector kernels, looked up once: they run per key in attention, where a
/// lookup per call would cost as much as the work.
enum VectorKernels {
    static let dot = InstructionSet.current.kernels?.dot
    static let axpy = InstructionSet.current.kernels?.axpy
}

extension DType {
    /// The kernels' code for a float type.
    var kernelCode: Int32 {
        switch self {
        case .f16: Int32(CHRONOS_F16.rawValue)
        case .bf16: Int32(CHRONOS_BF16.rawValue)
        default: Int32(CHRONOS_F32.rawValue)
        }
    }
}
