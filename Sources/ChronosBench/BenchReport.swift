import Foundation

/// One measured figure of a benchmark, printed beside the bound it is compared with.
public struct Measurement: Encodable, Equatable, Sendable {
    /// What was measured, e.g. "matvec f32 4096x4096".
    public let name: String
    /// The measured value.
    public let value: Double
    /// Unit of `value` and `bound`, e.g. "GB/s".
    public let unit: String
    /// The figure this one is judged against (measured in the same run), if any.
    public let bound: Double?
    /// What the bound is, e.g. "streaming read".
    public let boundName: String?

    /// A measurement, with the bound it is judged against when it has one.
    public init(name: String, value: Double, unit: String, bound: Double? = nil, boundName: String? = nil) {
        self.name = name
        self.value = value
        self.unit = unit
        self.bound = bound
        self.boundName = boundName
    }

    /// value / bound, when there is a bound.
    public var ratio: Double? { bound.map { value / $0 } }

    enum CodingKeys: String, CodingKey {
        case name, value, unit, bound
        case boundName = "bound_name"
        case ratio
    }

    /// Writes the fields under their JSON names, a missing bound as no key at all.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(value, forKey: .value)
        try c.encode(unit, forKey: .unit)
        try c.encodeIfPresent(bound, forKey: .bound)
        try c.encodeIfPresent(boundName, forKey: .boundName)
        try c.encodeIfPresent(ratio, forKey: .ratio)
    }
}

/// Collects a benchmark's measurements, handing each to `show` as a table row as soon as it is
/// taken (the table is for people; JSON mode passes no `show`), and renders the whole report as
/// JSON at the end.
public final class BenchReport {
    /// The measurements so far, in the order they were taken.
    public private(set) var measurements: [Measurement] = []
    private let show: ((String) -> Void)?
    private let onProgress: (String) -> Void
    private var headerShown = false

    /// A report that hands table lines to `show` (none when nil) and progress notes to `progress`.
    public init(show: ((String) -> Void)?, progress: @escaping (String) -> Void) {
        self.show = show
        self.onProgress = progress
    }

    /// Records a measurement and shows its row (after the header, the first time).
    public func add(_ m: Measurement) {
        measurements.append(m)
        guard let show else { return }
        if !headerShown {
            show(Self.header)
            headerShown = true
        }
        show(Self.row(m))
    }

    /// Passes a note on what the benchmark is doing now to the progress handler.
    public func progress(_ text: String) {
        onProgress(text)
    }

    /// The JSON object `{"context": …, "measurements": [...]}`, keys sorted.
    public func json(context: [String: String]) throws -> String {
        struct Output: Encodable {
            let context: [String: String]
            let measurements: [Measurement]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(Output(context: context, measurements: measurements))
        return String(decoding: data, as: UTF8.self)
    }

    /// The table's header line.
    public static let header = columns("measurement", "value", "bound", "ratio")

    /// The table line of one measurement: value and unit, bound and what it is, value / bound.
    public static func row(_ m: Measurement) -> String {
        let value = String(format: "%.2f %@", m.value, m.unit)
        let bound = m.bound.map { String(format: "%.2f %@ (%@)", $0, m.unit, m.boundName ?? "") } ?? "-"
        let ratio = m.ratio.map { String(format: "%.2f×", $0) } ?? "-"
        return columns(m.name, value, bound, ratio)
    }

    private static func columns(_ a: String, _ b: String, _ c: String, _ d: String) -> String {
        a.padding(toLength: 42, withPad: " ", startingAt: 0) + b.padding(toLength: 17, withPad: " ", startingAt: 0)
            + c.padding(toLength: 42, withPad: " ", startingAt: 0) + d
    }
}

/// A benchmark that could not run as asked.
public enum BenchError: Error, CustomStringConvertible, Equatable {
    /// The reason, in words.
    case failed(String)

    /// The reason.
    public var description: String {
        switch self {
        case .failed(let reason): reason
        }
    }
}
