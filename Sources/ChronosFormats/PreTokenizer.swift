/// Splits normalised text into the words that byte-level BPE encodes one at a time (the
/// `pre_tokenizer` section of `tokenizer.json`).
///
/// Supported: a `ByteLevel` step alone (GPT-2; with `use_regex` it splits by the GPT-2 pattern),
/// or a `Sequence` of `Split` steps with a known pattern (`behavior` Isolated) ending in
/// `ByteLevel` with `use_regex` false (Qwen2, Llama-3, GLM-4.5, DeepSeek-V3, gpt-oss). Anything
/// else is refused when loading.
struct PreTokenizer: Sendable {
    /// The steps in file order, kept so that the tokenizer can be written back.
    let steps: [PreTokenizerStep]
    /// The patterns applied one after another, each splitting the pieces of the previous one.
    let patterns: [SplitPattern]
    /// Whether a space is put before text that does not start with one (`add_prefix_space`).
    let addPrefixSpace: Bool

    init(steps: [PreTokenizerStep]) throws(UnsupportedFeature) {
        guard case .byteLevel(let addPrefixSpace, let useRegex) = steps.last else {
            throw UnsupportedFeature("pre_tokenizer without a final ByteLevel step (byte-level BPE needs one)")
        }
        var patterns: [SplitPattern] = []
        for step in steps.dropLast() {
            switch step {
            case .split(let pattern): patterns.append(pattern)
            case .byteLevel: throw UnsupportedFeature("pre_tokenizer with ByteLevel before its last step")
            }
        }
        if addPrefixSpace && !patterns.isEmpty {
            throw UnsupportedFeature("pre_tokenizer ByteLevel add_prefix_space after a Split step")
        }
        if useRegex { patterns.append(.gpt2) }
        self.steps = steps
        self.patterns = patterns
        self.addPrefixSpace = addPrefixSpace
    }

    /// Calls `body` with the byte range of each word of `text`, in order.
    func forEachWord(in text: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        split(text, 0..<text.count, level: 0, body)
    }

    private func split(
        _ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, level: Int, _ body: (Range<Int>) -> Void
    ) {
        guard level < patterns.count else {
            if !range.isEmpty { body(range) }
            return
        }
        // Each match is a piece, and so is each stretch between matches (`Isolated`).
        let pattern = patterns[level]
        var gapStart = range.lowerBound, position = range.lowerBound
        while position < range.upperBound {
            guard let end = pattern.matchEnd(in: text, at: position, to: range.upperBound) else {
                position = text.scalar(at: position).next
                continue
            }
            if gapStart < position { split(text, gapStart..<position, level: level + 1, body) }
            split(text, position..<end, level: level + 1, body)
            (gapStart, position) = (end, end)
        }
        if gapStart < range.upperBound { split(text, gapStart..<range.upperBound, level: level + 1, body) }
    }
}

/// One step of a `pre_tokenizer` section.
enum PreTokenizerStep: Sendable {
    /// `{"type": "Split", "pattern": {"Regex": …}, "behavior": "Isolated", "invert": false}`.
    case split(SplitPattern)
    /// `{"type": "ByteLevel", "add_prefix_space": …, "use_regex": …}`: maps bytes to the
    /// byte-level alphabet, after an optional split by the GPT-2 pattern.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
}

extension PreTokenizer: Codable {
    private enum CodingKeys: String, CodingKey {
        case type, pretokenizers, pattern, behavior, invert
        case addPrefixSpace = "add_prefix_space"
        case trimOffsets = "trim_offsets"
        case useRegex = "use_regex"
    }

    private enum PatternKeys: String, CodingKey {
        case regex = "Regex"
        case string = "String"
    }

    init(from decoder: any Decoder) throws {
        try self.init(steps: Self.decodeSteps(from: decoder))
    }

    private static func decodeSteps(from decoder: any Decoder) throws -> [PreTokenizerStep] {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "Sequence":
            var list = try container.nestedUnkeyedContainer(forKey: .pretokenizers)
            var steps: [PreTokenizerStep] = []
            while !list.isAtEnd { steps += try decodeSteps(from: list.superDecoder()) }
            return steps
        case "ByteLevel":
            return [
                .byteLevel(
                    addPrefixSpace: try container.decodeIfPresent(Bool.self, forKey: .addPrefixSpace) ?? true,
                    useRegex: try container.decodeIfPresent(Bool.self, forKey: .useRegex) ?? true)
            ]
        case "Split":
            let behavior = try container.decode(String.self, forKey: .behavior)
            guard behavior == "Isolated" else { throw UnsupportedFeature("Split behavior \(behavior)") }
            guard try container.decodeIfPresent(Bool.self, forKey: .invert) != true else {
                throw UnsupportedFeature("Split with invert true")
            }
            let pattern = try container.nestedContainer(keyedBy: PatternKeys.self, forKey: .pattern)
            guard let regex = try pattern.decodeIfPresent(String.self, forKey: .regex) else {
                throw UnsupportedFeature("Split with a String pattern")
            }
            guard let known = SplitPattern(regex: regex) else {
                throw UnsupportedFeature("Split regex /\(regex)/ (known: the GPT-2, Llama-3, Qwen2, DeepSeek-V3 and o200k patterns)")
            }
            return [.split(known)]
        case let type:
            throw UnsupportedFeature("pre_tokenizer type \(type)")
        }
    }

    func encode(to encoder: any Encoder) throws {
        guard steps.count == 1 else {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode("Sequence", forKey: .type)
            var list = container.nestedUnkeyedContainer(forKey: .pretokenizers)
            for step in steps { try Self.encode(step, to: list.superEncoder()) }
            return
        }
        try Self.encode(steps[0], to: encoder)
    }

    private static func encode(_ step: PreTokenizerStep, to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch step {
        case .split(let pattern):
            try container.encode("Split", forKey: .type)
            var regex = container.nestedContainer(keyedBy: PatternKeys.self, forKey: .pattern)
            try regex.encode(pattern.regex, forKey: .regex)
            try container.encode("Isolated", forKey: .behavior)
            try container.encode(false, forKey: .invert)
        case .byteLevel(let addPrefixSpace, let useRegex):
            try container.encode("ByteLevel", forKey: .type)
            try container.encode(addPrefixSpace, forKey: .addPrefixSpace)
            try container.encode(true, forKey: .trimOffsets)
            try container.encode(useRegex, forKey: .useRegex)
        }
    }
}
