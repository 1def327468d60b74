import Foundation

/// Unicode normalisation applied to text before it is split (the `normalizer` section of
/// `tokenizer.json`): null, one of `NFC`, `NFD`, `NFKC`, `NFKD`, or a `Sequence` of them.
struct Normalizer: Sendable {
    /// A Unicode normalisation form.
    enum Form: String, Sendable {
        case nfc = "NFC"
        case nfd = "NFD"
        case nfkc = "NFKC"
        case nfkd = "NFKD"

        /// The smallest UTF-8 byte that can start a scalar this form may change: NFC leaves every
        /// scalar below U+0300 alone (lead bytes below 0xCC) unless a combining mark follows it.
        var firstAffectedByte: UInt8 { self == .nfc ? 0xCC : 0x80 }

        func apply(_ text: String) -> String {
            switch self {
            case .nfc: text.precomposedStringWithCanonicalMapping
            case .nfd: text.decomposedStringWithCanonicalMapping
            case .nfkc: text.precomposedStringWithCompatibilityMapping
            case .nfkd: text.decomposedStringWithCompatibilityMapping
            }
        }
    }

    /// The forms applied in order; empty for no normalisation.
    let forms: [Form]

    /// The normalised UTF-8 of `text`, or nil when normalising leaves it unchanged.
    ///
    /// ASCII scalars neither change nor combine with what comes before them, so a text splits
    /// before each of them into chunks that normalise independently; only a chunk holding a
    /// scalar the form may change (with the ASCII scalar before it, which a combining mark may
    /// join) goes through Foundation, and pure ASCII text is never copied.
    func normalize(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var result: [UInt8]?
        for form in forms {
            if let current = result {
                result = current.withUnsafeBufferPointer { Self.apply(form, to: $0) } ?? current
            } else {
                result = Self.apply(form, to: text)
            }
        }
        return result
    }

    private static func apply(_ form: Form, to text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let threshold = form.firstAffectedByte
        var output: [UInt8]?
        var copied = 0
        var index = 0
        while index < text.count {
            guard text[index] >= 0x80 else {
                index += 1
                continue
            }
            let runStart = index
            var affected = false
            while index < text.count, text[index] >= 0x80 {
                affected = affected || text[index] >= threshold
                index += 1
            }
            guard affected else { continue }
            let chunkStart = max(runStart - 1, copied)
            var normalized = output ?? []
            normalized.append(contentsOf: UnsafeBufferPointer(rebasing: text[copied..<chunkStart]))
            let chunk = String(decoding: UnsafeBufferPointer(rebasing: text[chunkStart..<index]), as: UTF8.self)
            normalized.append(contentsOf: form.apply(chunk).utf8)
            output = normalized
            copied = index
        }
        guard var output else { return nil }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: text[copied...]))
        return output
    }
}

extension Normalizer: Codable {
    private enum CodingKeys: String, CodingKey {
        case type, normalizers
    }

    init(from decoder: any Decoder) throws {
        forms = try Self.decodeForms(from: decoder)
    }

    private static func decodeForms(from decoder: any Decoder) throws -> [Form] {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let type = try container.decode(String.self, forKey: .type)
        if type == "Sequence" {
            var list = try container.nestedUnkeyedContainer(forKey: .normalizers)
            var forms: [Form] = []
            while !list.isAtEnd { forms += try decodeForms(from: list.superDecoder()) }
            return forms
        }
        guard let form = Form(rawValue: type) else { throw UnsupportedFeature("normalizer type \(type)") }
        return [form]
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        guard forms.count == 1 else {
            try container.encode("Sequence", forKey: .type)
            var list = container.nestedUnkeyedContainer(forKey: .normalizers)
            for form in forms {
                var step = list.nestedContainer(keyedBy: CodingKeys.self)
                try step.encode(form.rawValue, forKey: .type)
            }
            return
        }
        try container.encode(forms[0].rawValue, forKey: .type)
    }
}
