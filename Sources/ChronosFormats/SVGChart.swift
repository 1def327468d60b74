import Foundation

/// A line chart written as a standalone SVG document: a title, two axes with ticks and labels in
/// their units, one line with point markers per named series, and a legend; readable in any
/// browser, with nothing to install.
public struct SVGChart: Sendable, Equatable {
    /// One axis: what it measures, its unit, and whether its range is stretched to include zero.
    public struct Axis: Sendable, Equatable {
        /// What the axis measures ("expert budget").
        public var label: String
        /// The unit of its values ("% of expert bytes"), shown in parentheses after the label.
        public var unit: String
        /// Whether the range always includes zero (rates and times), or fits the data alone.
        public var fromZero: Bool

        /// An axis measuring `label` in `unit`.
        public init(_ label: String, unit: String, fromZero: Bool = true) {
            self.label = label
            self.unit = unit
            self.fromZero = fromZero
        }

        /// The axis title as drawn: "label (unit)".
        public var title: String { unit.isEmpty ? label : "\(label) (\(unit))" }
    }

    /// One named line of the chart; points whose coordinates are not finite are left out.
    public struct Series: Sendable, Equatable {
        /// The name the legend shows.
        public var name: String
        /// The points in drawing order.
        public var points: [Point]

        /// A series called `name` through `points`.
        public init(_ name: String, _ points: [Point]) {
            self.name = name
            self.points = points
        }
    }

    /// A point in the data's units.
    public struct Point: Sendable, Equatable {
        /// Horizontal coordinate.
        public var x: Double
        /// Vertical coordinate.
        public var y: Double

        /// The point (`x`, `y`).
        public init(_ x: Double, _ y: Double) {
            self.x = x
            self.y = y
        }
    }

    /// A rectangle in the chart's pixel coordinates (y grows downwards).
    public struct Rect: Sendable, Equatable {
        /// Left edge.
        public var x: Double
        /// Top edge.
        public var y: Double
        /// Width.
        public var width: Double
        /// Height.
        public var height: Double

        /// Whether `point` lies inside or on the edge of the rectangle.
        public func contains(x px: Double, y py: Double) -> Bool {
            px >= x - 1e-9 && px <= x + width + 1e-9 && py >= y - 1e-9 && py <= y + height + 1e-9
        }
    }

    /// The title above the plot.
    public var title: String
    /// The horizontal axis.
    public var x: Axis
    /// The vertical axis.
    public var y: Axis
    /// The lines, drawn and listed in the legend in this order.
    public var series: [Series]
    /// Width of the whole chart in pixels.
    public var width: Double
    /// Height of the whole chart in pixels.
    public var height: Double

    /// A chart of `series` titled `title`, `width` × `height` pixels.
    public init(title: String, x: Axis, y: Axis, series: [Series], width: Double = 560, height: Double = 360) {
        self.title = title
        self.x = x
        self.y = y
        self.series = series
        self.width = width
        self.height = height
    }

    /// Colours of the series in turn (Okabe and Ito's palette, told apart with most colour vision).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

    private static let fontSize = 12.0
    private static let margin = (left: 64.0, top: 40.0, bottom: 48.0, right: 16.0)

    /// Width of the legend column to the right of the plot: a line sample and the longest name.
    private var legendWidth: Double {
        series.isEmpty ? 0 : 34 + Double(series.map(\.name.count).max() ?? 0) * Self.fontSize * 0.6
    }

    /// The rectangle the data is drawn in.
    public var plotArea: Rect {
        let m = Self.margin
        return Rect(
            x: m.left, y: m.top, width: max(1, width - m.left - m.right - legendWidth), height: max(1, height - m.top - m.bottom))
    }

    private var finitePoints: [Point] { series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite } }

    /// The tick values of the horizontal axis; its range runs from the first to the last.
    public var xTicks: [Double] { Self.ticks(finitePoints.map(\.x), fromZero: x.fromZero) }
    /// The tick values of the vertical axis; its range runs from the first to the last.
    public var yTicks: [Double] { Self.ticks(finitePoints.map(\.y), fromZero: y.fromZero) }

    /// Where `point` is drawn, in pixels: inside `plotArea` for every point of a series.
    public func position(_ point: Point) -> (x: Double, y: Double) {
        position(point, xRange: Self.range(xTicks), yRange: Self.range(yTicks))
    }

    private func position(_ point: Point, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>) -> (x: Double, y: Double) {
        let area = plotArea
        let fx = (point.x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound)
        let fy = (point.y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound)
        return (area.x + fx * area.width, area.y + area.height - fy * area.height)
    }

    /// The chart as a standalone SVG document.
    public var svg: String { Self.document([self]) }

    /// `charts` side by side in one SVG document, each at its own size.
    public static func document(_ charts: [SVGChart]) -> String {
        let width = charts.reduce(0) { $0 + $1.width }, height = charts.map(\.height).max() ?? 0
        var offset = 0.0
        var body = ""
        for chart in charts {
            body += chart.element(x: offset)
            offset += chart.width
        }
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(number(width))" height="\(number(height))" \
            viewBox="0 0 \(number(width)) \(number(height))" font-family="sans-serif" font-size="\(number(fontSize))">
            <rect width="100%" height="100%" fill="#ffffff"/>

            """ + body + "</svg>\n"
    }

    /// The chart as an `<svg>` element of its own size, `x` pixels from the document's left edge.
    private func element(x offset: Double) -> String {
        let area = plotArea, xs = xTicks, ys = yTicks
        let xRange = Self.range(xs), yRange = Self.range(ys)
        let xStep = xs.count > 1 ? xs[1] - xs[0] : 1, yStep = ys.count > 1 ? ys[1] - ys[0] : 1
        let escape = Self.escape, n = Self.number
        var lines = ["<svg x=\"\(n(offset))\" y=\"0\" width=\"\(n(width))\" height=\"\(n(height))\">"]
        lines.append(
            "<text x=\"\(n(area.x + area.width / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>"
        )
        for value in xs {
            let px = position(Point(value, yRange.lowerBound), xRange: xRange, yRange: yRange).x
            lines.append(
                "<line x1=\"\(n(px))\" y1=\"\(n(area.y))\" x2=\"\(n(px))\" y2=\"\(n(area.y + area.height + 4))\" stroke=\"#dddddd\"/>")
            lines.append(
                "<text x=\"\(n(px))\" y=\"\(n(area.y + area.height + 17))\" text-anchor=\"middle\">\(Self.label(value, step: xStep))</text>"
            )
        }
        for value in ys {
            let py = position(Point(xRange.lowerBound, value), xRange: xRange, yRange: yRange).y
            lines.append(
                "<line x1=\"\(n(area.x - 4))\" y1=\"\(n(py))\" x2=\"\(n(area.x + area.width))\" y2=\"\(n(py))\" stroke=\"#dddddd\"/>")
            lines.append("<text x=\"\(n(area.x - 7))\" y=\"\(n(py + 4))\" text-anchor=\"end\">\(Self.label(value, step: yStep))</text>")
        }
        lines.append(
            "<rect x=\"\(n(area.x))\" y=\"\(n(area.y))\" width=\"\(n(area.width))\" height=\"\(n(area.height))\" fill=\"none\" stroke=\"#333333\"/>"
        )
        lines.append(
            "<text x=\"\(n(area.x + area.width / 2))\" y=\"\(n(height - 10))\" text-anchor=\"middle\">\(escape(x.title))</text>")
        let yMiddle = area.y + area.height / 2
        lines.append(
            "<text x=\"16\" y=\"\(n(yMiddle))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(n(yMiddle)))\">\(escape(y.title))</text>"
        )
        for (index, line) in series.enumerated() {
            let colour = Self.palette[index % Self.palette.count]
            let points = line.points.filter { $0.x.isFinite && $0.y.isFinite }.map { position($0, xRange: xRange, yRange: yRange) }
            lines.append("<g stroke=\"\(colour)\" fill=\"\(colour)\"><title>\(escape(line.name))</title>")
            if points.count > 1 {
                let path = points.map { "\(n($0.x)),\(n($0.y))" }.joined(separator: " ")
                lines.append("<polyline points=\"\(path)\" fill=\"none\" stroke-width=\"2\"/>")
            }
            // Markers only where a line has few points: on a long curve they would hide it.
            if points.count <= 40 {
                for point in points { lines.append("<circle cx=\"\(n(point.x))\" cy=\"\(n(point.y))\" r=\"3\"/>") }
            }
            lines.append("</g>")
            let legendY = area.y + 8 + Double(index) * 18, legendX = area.x + area.width + 10
            lines.append(
                "<line x1=\"\(n(legendX))\" y1=\"\(n(legendY))\" x2=\"\(n(legendX + 18))\" y2=\"\(n(legendY))\" stroke=\"\(colour)\" stroke-width=\"2\"/>"
            )
            lines.append("<text x=\"\(n(legendX + 24))\" y=\"\(n(legendY + 4))\">\(escape(line.name))</text>")
        }
        lines.append("</svg>")
        return lines.joined(separator: "\n") + "\n"
    }

    /// About five evenly spaced round values (1, 2, 2.5 or 5 times a power of ten apart) from at
    /// or below the least of `values` to at or above the greatest.
    static func ticks(_ values: [Double], fromZero: Bool) -> [Double] {
        var low = values.min() ?? 0, high = values.max() ?? 1
        if fromZero {
            low = min(low, 0)
            high = max(high, 0)
        }
        if high - low < 1e-12 * max(1, abs(high)) {
            let pad = abs(high) > 0 ? abs(high) * 0.1 : 1
            (low, high) = fromZero && low == 0 ? (0, high + pad) : (low - pad, high + pad)
        }
        let rough = (high - low) / 5
        let power = pow(10, floor(log10(rough)))
        let step = [1, 2, 2.5, 5, 10].map { $0 * power }.first { $0 >= rough } ?? 10 * power
        let first = (low / step).rounded(.down), last = (high / step).rounded(.up)
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    private static func range(_ ticks: [Double]) -> ClosedRange<Double> { ticks[0]...ticks[ticks.count - 1] }

    /// A tick's label with as many decimals as its step needs (2.5 steps need one more).
    private static func label(_ value: Double, step: Double) -> String {
        var decimals = max(0, -Int(floor(log10(step) + 1e-9)))
        if abs(step / pow(10, floor(log10(step) + 1e-9)) - 2.5) < 1e-9 && step < 10 { decimals += 1 }
        let text = String(format: "%.\(decimals)f", value)
        return text.hasPrefix("-") && Double(text) == 0 ? String(text.dropFirst()) : text
    }

    /// A coordinate with at most two decimals and no trailing zeros.
    private static func number(_ value: Double) -> String {
        var text = String(format: "%.2f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }

    /// `text` with the five characters XML reserves replaced by their entities, and the control
    /// characters XML 1.0 does not allow left out.
    private static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text where !character.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" && $0 != "\n" }) {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
