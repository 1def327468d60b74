import Foundation

/// How many bytes of routed experts may be in memory: a byte count, or a fraction of the
/// bytes of all experts (`--expert-budget 300MB`, `--expert-budget 0.3`, `--expert-budget 30%`).
public enum ExpertBudget: Sendable, Equatable, CustomStringConvertible {
    /// An absolute number of bytes.
    case bytes(Int)
    /// A fraction in (0, 1] of all expert bytes.
    case fraction(Double)

    /// Parses `0.3`, `30%`, `300MB`, `1.5GiB`, `4096` (a plain number above 1 is bytes);
    /// units are B, KB/MB/GB (powers of 1000) and KiB/MiB/GiB (powers of 1024), any case.
    public init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        if trimmed.hasSuffix("%") {
            guard let percent = Double(trimmed.dropLast()), percent > 0, percent <= 100 else { return nil }
            self = .fraction(percent / 100)
            return
        }
        let units: [(String, Double)] = [
            ("kib", 1024), ("mib", 1_048_576), ("gib", 1_073_741_824), ("kb", 1e3), ("mb", 1e6),
            ("gb", 1e9), ("k", 1e3), ("m", 1e6), ("g", 1e9), ("b", 1)
        ]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)),
                let bytes = Self.byteCount(value * scale)
            else { return nil }
            self = .bytes(bytes)
            return
        }
        guard let value = Double(trimmed), value > 0 else { return nil }
        if value <= 1 {
            self = .fraction(value)
        } else {
            guard let bytes = Self.byteCount(value) else { return nil }
            self = .bytes(bytes)
        }
    }

    /// The most bytes a budget may name: 1 PB, beyond any machine's memory and far from `Int.max`.
    public static let largestByteCount = 1_000_000_000_000_000

    /// `value` as a whole number of bytes when it is at least one and at most `largestByteCount`
    /// (nil for NaN and infinities, which no integer holds).
    private static func byteCount(_ value: Double) -> Int? {
        guard value >= 1, value <= Double(largestByteCount) else { return nil }
        return Int(value.rounded(.down))
    }

    /// The budget in bytes when all experts occupy `total` bytes (at most `total`).
    public func bytes(ofTotal total: Int) -> Int {
        switch self {
        case .bytes(let n): min(n, total)
        case .fraction(let f): min(total, Int((Double(total) * f).rounded()))
        }
    }

    /// `300000000 B` or `30%`.
    public var description: String {
        switch self {
        case .bytes(let n): "\(n) B"
        case .fraction(let f): "\((f * 1000).rounded() / 10)%"
        }
    }
}
