import ChronosFormats
import Foundation
import XCTest

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The SVG line charts: well-formed XML that any viewer reads, every point inside the plot, round ticks.
final class SVGChartTests: XCTestCase {
    /// The elements, their attributes and the text of `<text>` and `<title>` elements of a parsed document.
    private final class Elements: NSObject, XMLParserDelegate {
        var elements: [(name: String, attributes: [String: String])] = []
        var texts: [String] = []
        private var text = ""

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            elements.append((name, attributes))
            text = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text" || name == "title" { texts.append(text) }
            text = ""
        }
    }

    private func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> Elements {
        let parser = XMLParser(data: Data(svg.utf8))
        let elements = Elements()
        parser.delegate = elements
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))", file: file, line: line)
        return elements
    }

    private let sweep = SVGChart(
        title: "Decode speed <wait> & more", x: SVGChart.Axis("expert budget", unit: "% of expert bytes"),
        y: SVGChart.Axis("decode", unit: "tokens/s"),
        series: [
            SVGChart.Series("resident", [10, 20, 30, 50, 75, 100].map { SVGChart.Point($0, 1050) }),
            SVGChart.Series("lru", [SVGChart.Point(10, 120), SVGChart.Point(30, 195), SVGChart.Point(100, 880)]),
            SVGChart.Series("chronos \"scored\"", [SVGChart.Point(10, 143), SVGChart.Point(30, 204), SVGChart.Point(100, 670)])
        ])

    func testDocumentIsWellFormedXMLWithTitleAxesAndLegend() throws {
        let svg = sweep.svg
        let parsed = parse(svg)
        XCTAssertEqual(parsed.elements.first?.name, "svg")
        XCTAssertEqual(parsed.elements.first?.attributes["xmlns"], "http://www.w3.org/2000/svg")
        XCTAssertTrue(parsed.texts.contains("Decode speed <wait> & more"), "the title, unescaped by the parser")
        XCTAssertTrue(parsed.texts.contains("expert budget (% of expert bytes)"))
        XCTAssertTrue(parsed.texts.contains("decode (tokens/s)"))
        for name in ["resident", "lru", "chronos \"scored\""] {
            XCTAssertEqual(parsed.texts.filter { $0 == name }.count, 2, "\(name): a legend entry and a tooltip")
        }
        XCTAssertEqual(parsed.elements.filter { $0.name == "polyline" }.count, 3)
        XCTAssertEqual(parsed.elements.filter { $0.name == "circle" }.count, 12)
        XCTAssertTrue(parsed.texts.contains("0") && parsed.texts.contains("100") && parsed.texts.contains("1250"), "\(parsed.texts)")
    }

    func testEveryPointIsDrawnInsideThePlotAreaInOrder() throws {
        let area = sweep.plotArea
        let parsed = parse(sweep.svg)
        let circles = parsed.elements.filter { $0.name == "circle" }.map { (Double($0.attributes["cx"]!)!, Double($0.attributes["cy"]!)!) }
        XCTAssertFalse(circles.isEmpty)
        for (x, y) in circles { XCTAssertTrue(area.contains(x: x, y: y), "(\(x), \(y)) outside \(area)") }
        let low = sweep.position(SVGChart.Point(10, 120)), high = sweep.position(SVGChart.Point(100, 880))
        XCTAssertLessThan(low.x, high.x, "larger x is further right")
        XCTAssertGreaterThan(low.y, high.y, "larger y is higher up")
        let origin = sweep.position(SVGChart.Point(sweep.xTicks.first!, sweep.yTicks.first!))
        XCTAssertEqual(origin.x, area.x, accuracy: 1e-9)
        XCTAssertEqual(origin.y, area.y + area.height, accuracy: 1e-9)
        let corner = sweep.position(SVGChart.Point(sweep.xTicks.last!, sweep.yTicks.last!))
        XCTAssertEqual(corner.x, area.x + area.width, accuracy: 1e-9)
        XCTAssertEqual(corner.y, area.y, accuracy: 1e-9)
        XCTAssertLessThanOrEqual(area.x + area.width, sweep.width, "the legend and the plot fit the chart")
    }

    func testTicksAreRoundAndCoverTheData() {
        XCTAssertEqual(sweep.xTicks, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(sweep.yTicks, [0, 250, 500, 750, 1000, 1250])
        let loss = SVGChart(
            title: "loss", x: SVGChart.Axis("step", unit: ""), y: SVGChart.Axis("loss", unit: "nats/token", fromZero: false),
            series: [SVGChart.Series("loss", [SVGChart.Point(1, 8.76), SVGChart.Point(700, 4.03)])])
        XCTAssertEqual(loss.yTicks, [4, 5, 6, 7, 8, 9])
        XCTAssertEqual(loss.xTicks, [0, 200, 400, 600, 800])
        let flat = SVGChart(
            title: "flat", x: SVGChart.Axis("x", unit: "", fromZero: false), y: SVGChart.Axis("y", unit: "", fromZero: false),
            series: [SVGChart.Series("one point", [SVGChart.Point(3, 0.25)])])
        XCTAssertGreaterThan(flat.xTicks.count, 1)
        XCTAssertLessThan(flat.yTicks.first!, 0.25)
        XCTAssertGreaterThan(flat.yTicks.last!, 0.25)
        XCTAssertTrue(flat.plotArea.contains(x: flat.position(SVGChart.Point(3, 0.25)).x, y: flat.position(SVGChart.Point(3, 0.25)).y))
    }

    func testEmptySeriesNonFinitePointsAndSeveralChartsStayWellFormed() {
        let gaps = SVGChart(
            title: "gaps\u{1}", x: SVGChart.Axis("x", unit: "s"), y: SVGChart.Axis("y", unit: "ms"),
            series: [SVGChart.Series("nan", [SVGChart.Point(1, .nan), SVGChart.Point(2, 3), SVGChart.Point(.infinity, 1)])])
        let empty = SVGChart(title: "empty", x: SVGChart.Axis("x", unit: ""), y: SVGChart.Axis("y", unit: ""), series: [])
        let svg = SVGChart.document([gaps, empty])
        XCTAssertFalse(svg.lowercased().contains("nan\""), "no coordinate is NaN")
        XCTAssertFalse(svg.contains("inf"))
        let parsed = parse(svg)
        XCTAssertEqual(parsed.elements.filter { $0.name == "svg" }.count, 3, "the document and one element per chart")
        XCTAssertEqual(parsed.elements.filter { $0.name == "circle" }.count, 1)
        XCTAssertTrue(parsed.texts.contains("gaps"))
        XCTAssertTrue(svg.contains("width=\"\(Int(gaps.width + empty.width))\""))
    }
}
