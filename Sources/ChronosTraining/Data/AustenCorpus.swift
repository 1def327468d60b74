import ChronosFormats
import Foundation

/// Builds the Jane Austen pretraining corpus from plain-text novels: each novel is cut into
/// paragraph documents, and the last paragraphs of each are held out for evaluation.
///
/// From each `*.txt` file of the source directory, in file-name order: any Project Gutenberg
/// header and footer (the lines up to `*** START OF …` and from `*** END OF …`) is removed; the
/// text is split at blank lines into paragraphs; each paragraph's whitespace is collapsed to
/// single spaces; chapter and volume headings (`CHAPTER XII`, `Chapter 3`, `VOLUME I`) and
/// paragraphs with no letter or digit (`* * * * *`) are dropped. The last `heldOutFraction` of
/// each novel's paragraphs (rounded up) go to `heldout.jsonl`, the rest to `train.jsonl`, one
/// `{"text": …}` line per paragraph, in reading order.
public enum AustenCorpus {
    /// What a build wrote.
    public struct Summary: Equatable, Sendable {
        /// The source files used, in the order written.
        public var novels: [String]
        /// Paragraphs in `train.jsonl`.
        public var trainDocuments: Int
        /// Paragraphs in `heldout.jsonl`.
        public var heldOutDocuments: Int
        /// Size of `train.jsonl` in bytes.
        public var trainBytes: Int
        /// Size of `heldout.jsonl` in bytes.
        public var heldOutBytes: Int
    }

    /// Reads every `*.txt` novel in `source` and writes `train.jsonl` and `heldout.jsonl` into
    /// `destination` (created if needed), each atomically.
    public static func build(
        from source: URL, into destination: URL, heldOutFraction: Double = 0.05
    ) throws(PretrainingDataError) -> Summary {
        precondition((0..<1).contains(heldOutFraction), "the held-out fraction must be in [0, 1)")
        let novels: [URL]
        do {
            novels = try FileManager.default.contentsOfDirectory(at: source, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "txt" }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
        } catch {
            throw .inaccessibleFile(file: source.path, reason: FileSystemError.reason(error))
        }
        guard !novels.isEmpty else { throw .inaccessibleFile(file: source.path, reason: "no .txt files") }

        var train = Data(), heldOut = Data()
        var summary = Summary(
            novels: novels.map(\.lastPathComponent), trainDocuments: 0, heldOutDocuments: 0,
            trainBytes: 0, heldOutBytes: 0)
        for novel in novels {
            let text: String
            do {
                text = try String(contentsOf: novel, encoding: .utf8)
            } catch {
                throw .inaccessibleFile(file: novel.path, reason: FileSystemError.reason(error))
            }
            let documents = self.documents(of: text)
            // Rounded up, less a rounding error, so that 30 × 0.1 holds out 3 and not 4.
            let share = Double(documents.count) * heldOutFraction
            let heldOutCount = min(Int((share - 1e-9 * share).rounded(.up)), documents.count)
            for (index, document) in documents.enumerated() {
                if index < documents.count - heldOutCount {
                    train += jsonLine(document)
                    summary.trainDocuments += 1
                } else {
                    heldOut += jsonLine(document)
                    summary.heldOutDocuments += 1
                }
            }
        }
        for (name, data) in [("train.jsonl", train), ("heldout.jsonl", heldOut)] {
            let url = destination.appendingPathComponent(name)
            do {
                try AtomicFile.write(data, to: url)
            } catch {
                throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
            }
        }
        summary.trainBytes = train.count
        summary.heldOutBytes = heldOut.count
        return summary
    }

    /// The paragraph documents of one novel's text, in reading order.
    public static func documents(of text: String) -> [String] {
        var documents: [String] = []
        var paragraph: [Substring] = []
        func finishParagraph() {
            defer { paragraph.removeAll() }
            let document = paragraph.joined(separator: " ").split(whereSeparator: \.isWhitespace).joined(separator: " ")
            guard document.contains(where: { $0.isLetter || $0.isNumber }), !isHeading(document) else { return }
            documents.append(document)
        }
        for line in bodyLines(of: text) {
            if line.allSatisfy(\.isWhitespace) {
                finishParagraph()
            } else {
                paragraph.append(line)
            }
        }
        finishParagraph()
        return documents
    }

    /// The lines of `text` between the Project Gutenberg start and end markers, or all of them
    /// when it has none.
    static func bodyLines(of text: String) -> ArraySlice<Substring> {
        // Splitting on `isNewline` takes "\r\n", a single Character, as one line break.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        func isMarker(_ line: Substring, _ words: String) -> Bool {
            line.hasPrefix("***") && line.drop { $0 == "*" || $0 == " " }.uppercased().hasPrefix(words)
        }
        let start = lines.firstIndex { isMarker($0, "START OF") }.map { $0 + 1 } ?? 0
        let end = lines[start...].firstIndex { isMarker($0, "END OF") } ?? lines.count
        return lines[start..<end]
    }

    /// Whether a paragraph is a chapter or volume heading: the word and a Roman or Arabic numeral.
    static func isHeading(_ paragraph: String) -> Bool {
        let words = paragraph.split(separator: " ")
        guard words.count == 2, ["CHAPTER", "VOLUME"].contains(words[0].uppercased()) else { return false }
        let numeral = words[1].hasSuffix(".") ? words[1].dropLast() : words[1]
        return !numeral.isEmpty && numeral.allSatisfy { "IVXLC0123456789".contains($0) }
    }

    /// `{"text":…}` and a newline.
    static func jsonLine(_ text: String) -> Data {
        struct Line: Encodable { let text: String }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        // A struct of one string always encodes.
        return try! encoder.encode(Line(text: text)) + Data("\n".utf8)
    }
}
