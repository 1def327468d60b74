import Foundation
import XCTest

@testable import ChronosFormats

final class NormalizerTests: XCTestCase {
    /// Texts where composition joins an ASCII letter with the mark after it, Hangul jamo become a
    /// syllable, singletons (Ångström sign, Ohm sign) change, and compatibility forms differ.
    static let texts = [
        "Cafe\u{301} re\u{301}sume\u{301}",
        "\u{301}leading mark, A\u{30A} and \u{212B} and \u{2126}",
        "\u{1100}\u{1161}\u{11A8} \u{AC00} plain ascii",
        "x\u{1E9B}\u{323}y \u{FB01}ne \u{FF21}\u{B2} \u{BD}",
        "caf\u{E9} only latin-1",
        "e\u{301}\u{301}\u{327}"
    ]

    func testChunkedNormalisationEqualsFoundationOnTheWholeText() {
        let cases: [(Normalizer.Form, (String) -> String)] = [
            (.nfc, { $0.precomposedStringWithCanonicalMapping }),
            (.nfd, { $0.decomposedStringWithCanonicalMapping }),
            (.nfkc, { $0.precomposedStringWithCompatibilityMapping }),
            (.nfkd, { $0.decomposedStringWithCompatibilityMapping })
        ]
        for (form, whole) in cases {
            for text in Self.texts {
                XCTAssertEqual(normalize(text, Normalizer(forms: [form])), whole(text), "\(form) \(text.debugDescription)")
            }
        }
    }

    func testTextThatCannotChangeIsNotCopied() {
        let nfc = Normalizer(forms: [.nfc])
        var text = "plain ASCII, caf\u{E9} and \u{F1}: nothing at or above U+0300"
        XCTAssertNil(text.withUTF8 { nfc.normalize($0) })
        var composed = "\u{E9}\u{2019}"
        XCTAssertEqual(composed.withUTF8 { nfc.normalize($0) }, Array(composed.utf8))
    }

    func testSequenceAppliesFormsInOrder() {
        XCTAssertEqual(normalize("\u{FB01}e\u{301}", Normalizer(forms: [.nfkd, .nfc])), "fi\u{E9}")
    }

    private func normalize(_ text: String, _ normalizer: Normalizer) -> String {
        var text = text
        return text.withUTF8 { bytes in
            normalizer.normalize(bytes).map { String(decoding: $0, as: UTF8.self) } ?? String(decoding: bytes, as: UTF8.self)
        }
    }
}
