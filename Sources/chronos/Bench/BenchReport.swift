import Foundation

/// One measured figure of a benchmark, printed beside the bound it is compared with.
struct Measurement: Encodable {
    /// What was measured, e.g. "matvec f32 4096x4096".
    let name: String
    /// The measured value.
    let value: Double
    /// Unit of `value` and `bound`, e.g. "GB/s".
    let unit: String
    /// The figure this one is judged against (measured in the same run), if any.
    let bound: Double?
    /// What the bound is, e.g. "streaming read".
    let boundName: String?

    /// value / bound, when there is a bound.
    var ratio: Double? { bound.map { value / $0 } }

    enum CodingKeys: String, CodingKey { case name, value, unit, bound, boundName = "bound_name", ratio }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(value, forKey: .value)
        try c.encode(unit, forKey: .unit)
        try c.encodeIfPresent(bound, forKey: .bound)
        try c.encodeIfPresent(boundName, forKey: .boundName)
        try c.encodeIfPresent(ratio, forKey: .ratio)
    }
}

/// Collects measurements, printing each as soon as it is taken (unless writing JSON), and
/// renders the whole report at the end.
final class BenchReport {
    private(set) var measurements: [Measurement] = []
    private let json: Bool
    private var headerPrinted = false

    init(json: Bool) { self.json = json }

    /// Records a measurement and shows it.
    func add(_ m: Measurement) {
        measurements.append(m)
        if json { return }
        if !headerPrinted {
            print(Self.row("measurement", "value", "bound", "ratio"))
            headerPrinted = true
        }
        let value = String(format: "%.2f %@", m.value, m.unit)
        let bound = m.bound.map { String(format: "%.2f %@ (%@)", $0, m.unit, m.boundName ?? "") } ?? "-"
        let ratio = m.ratio.map { String(format: "%.2f×", $0) } ?? "-"
        print(Self.row(m.name, value, bound, ratio))
        fflush(nil)
    }

    /// Shows progress on standard error, so it never mixes into JSON output.
    func progress(_ text: String) {
        FileHandle.standardError.write(Data("… \(text)\n".utf8))
    }

    /// Prints the JSON object `{"context": …, "measurements": [...]}` when in JSON mode.
    func finish(context: [String: String]) throws {
        guard json else { return }
        struct Output: Encodable { let context: [String: String]; let measurements: [Measurement] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(Output(context: context, measurements: measurements))
        print(String(decoding: data, as: UTF8.self))
    }

    private static func row(_ a: String, _ b: String, _ c: String, _ d: String) -> String {
        a.padding(toLength: 42, withPad: " ", startingAt: 0) + b.padding(toLength: 17, withPad: " ", startingAt: 0)
            + c.padding(toLength: 42, withPad: " ", startingAt: 0) + d
    }
}
