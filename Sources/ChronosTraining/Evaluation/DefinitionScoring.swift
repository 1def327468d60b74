import Foundation

/// Scoring answers of the WordNet definitions task, whose answers read
/// `X (POS): DEFINITION.` and may go on ` For example: "…".`
public enum DefinitionScoring {
    /// The parts of speech an answer header names.
    public static let partsOfSpeech = ["noun", "verb", "adjective", "adverb"]

    /// The definition inside an answer: the text after a `X (POS): ` header (when there is
    /// one), before ` For example: `, without a final period.
    public static func definition(in answer: String) -> String {
        var text = Substring(answer.trimmingCharacters(in: .whitespacesAndNewlines))
        if let header = headerEnd(in: text) { text = text[header...] }
        if let example = text.range(of: " For example: ") { text = text[..<example.lowerBound] }
        text = Substring(text.trimmingCharacters(in: .whitespaces))
        if text.hasSuffix(".") { text = text.dropLast() }
        return String(text)
    }

    /// Whether `answer` starts with the header `X (POS): ` followed by some text, X being
    /// `word` (compared case-insensitively) or, when `word` is nil, any text.
    public static func hasAnswerFormat(_ answer: String, word: String?) -> Bool {
        let text = Substring(answer.trimmingCharacters(in: .whitespacesAndNewlines))
        guard let end = headerEnd(in: text), end < text.endIndex else { return false }
        guard let word else { return true }
        let opening = text[..<end].range(of: " (", options: .backwards)!.lowerBound
        return text[..<opening].lowercased() == word.lowercased()
    }

    /// Lower-case runs of letters and digits: the tokens F1 counts.
    public static func words(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }

    /// Token-level F1 of `prediction` against `reference` (as in SQuAD): with c the tokens the
    /// two share (as multisets), precision c/|prediction|, recall c/|reference|, F1 their
    /// harmonic mean; 1 when both are empty, 0 when only one is.
    public static func f1(prediction: String, reference: String) -> Double {
        let predicted = words(prediction), expected = words(reference)
        if predicted.isEmpty || expected.isEmpty { return predicted.isEmpty && expected.isEmpty ? 1 : 0 }
        var remaining: [String: Int] = [:]
        for word in expected { remaining[word, default: 0] += 1 }
        var common = 0
        for word in predicted where remaining[word, default: 0] > 0 {
            remaining[word]! -= 1
            common += 1
        }
        guard common > 0 else { return 0 }
        let precision = Double(common) / Double(predicted.count), recall = Double(common) / Double(expected.count)
        return 2 * precision * recall / (precision + recall)
    }

    /// F1 of the definition in a generated answer against a reference definition (or
    /// reference answer: its header and example are dropped the same way).
    public static func definitionF1(answer: String, reference: String) -> Double {
        f1(prediction: definition(in: answer), reference: definition(in: reference))
    }

    /// The index just after the earliest `word (POS): ` header.
    private static func headerEnd(in text: Substring) -> Substring.Index? {
        partsOfSpeech.compactMap { text.range(of: " (\($0)): ") }.filter { $0.lowerBound > text.startIndex }
            .min { $0.lowerBound < $1.lowerBound }?.upperBound
    }
}
