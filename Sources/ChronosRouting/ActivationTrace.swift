import ChronosFormats
import ChronosModel
import Foundation

/// The routing of a model over some text: for every token and MoE layer, the router's top-k
/// experts with their probabilities, and optionally the hidden state after one decoder layer
/// (what the intent classifier and the lookahead head trained from the trace read).
///
/// On disk (`chronos trace --out FILE`) a trace is one binary file, every number little-endian,
/// written atomically:
///
///     offset  size  field
///     0       8     magic "CHRTRACE"
///     8       4     version (u32, currently 2)
///     12      4     flags (u32): bit 0 set when every record carries a hidden state
///     16      4     M, MoE layers recorded (u32)
///     20      4     k, experts per token (u32)
///     24      4     H, hidden width of the stored hidden state (u32; 0 when omitted)
///     28      4     S, sequences (u32)
///     32      8     T, token records (u64)
///     40      4     L, the decoder layer after which the hidden state is taken (u32)
///     44      16·M  per MoE layer: decoder layer index (u32), experts in that layer (u32),
///                   bytes of one expert as the model stores it (u64)
///     then    T × R token records, R = 12 + 8·M·k + 4·H bytes each:
///             sequence index (u32), position in the sequence (u32), token id (u32);
///             per MoE layer in header order: k expert indices (u32, descending probability),
///             then their k router probabilities (f32);
///             H floats (f32) of the hidden state after layer L when flag bit 0 is set.
///
/// The file size must be exactly 44 + 16·M + T·R; the reader rejects anything else. Version 1
/// files (no L, a 40-byte header, the hidden state after layer 0) are still read.
public struct ActivationTrace: Sendable, Equatable {
    /// One MoE layer of the traced model.
    public struct Layer: Sendable, Equatable {
        /// Decoder layer index.
        public var layer: Int
        /// Routed experts in the layer.
        public var experts: Int
        /// Bytes of one expert's weights as the model stores them.
        public var expertBytes: Int

        /// A layer with every field given.
        public init(layer: Int, experts: Int, expertBytes: Int) {
            self.layer = layer
            self.experts = experts
            self.expertBytes = expertBytes
        }
    }

    /// One token's routing.
    public struct Token: Sendable, Equatable {
        /// Which traced sequence the token belongs to.
        public var sequence: Int
        /// Its position in that sequence.
        public var position: Int
        /// Its token id.
        public var id: Int
        /// Per MoE layer (in `layers` order), the k selected experts in descending probability.
        public var experts: [[Int]]
        /// Per MoE layer, the router probabilities of those experts.
        public var probabilities: [[Float]]
        /// The hidden state after decoder layer `hiddenLayer` (`hiddenSize` floats), empty when
        /// the trace has none.
        public var hidden: [Float]

        /// A token record with every field given.
        public init(sequence: Int, position: Int, id: Int, experts: [[Int]], probabilities: [[Float]], hidden: [Float] = []) {
            self.sequence = sequence
            self.position = position
            self.id = id
            self.experts = experts
            self.probabilities = probabilities
            self.hidden = hidden
        }
    }

    /// The file's first eight bytes.
    public static let magic = Array("CHRTRACE".utf8)
    /// The layout version this code writes and reads.
    public static let currentVersion: UInt32 = 2
    /// Bytes before the per-layer table.
    static let fixedHeaderBytes = 44
    /// Bytes before the per-layer table in a version-1 file, which lacks the hidden layer.
    static let versionOneHeaderBytes = 40

    /// The MoE layers, in record order.
    public var layers: [Layer]
    /// Experts selected per token per layer.
    public var expertsPerToken: Int
    /// Width of each token's hidden state; 0 when the trace omits it.
    public var hiddenSize: Int
    /// The decoder layer after which each token's hidden state is taken.
    public var hiddenLayer: Int
    /// Sequences traced.
    public var sequenceCount: Int
    /// The token records, sequence by sequence, in position order.
    public var tokens: [Token]

    /// A trace with every field given.
    public init(layers: [Layer], expertsPerToken: Int, hiddenSize: Int, hiddenLayer: Int = 0, sequenceCount: Int, tokens: [Token]) {
        self.layers = layers
        self.expertsPerToken = expertsPerToken
        self.hiddenSize = hiddenSize
        self.hiddenLayer = hiddenLayer
        self.sequenceCount = sequenceCount
        self.tokens = tokens
    }

    /// Whether the records carry a hidden state.
    public var hasHidden: Bool { hiddenSize > 0 }

    /// The token records grouped by sequence, each group in position order, runs of
    /// consecutive positions only (a gap starts a new group).
    public func sequences() -> [[Token]] {
        var groups: [[Token]] = []
        for token in tokens.sorted(by: { ($0.sequence, $0.position) < ($1.sequence, $1.position) }) {
            if let last = groups.last?.last, last.sequence == token.sequence, last.position + 1 == token.position {
                groups[groups.count - 1].append(token)
            } else {
                groups.append([token])
            }
        }
        return groups
    }

    /// Bytes of one token record.
    var recordBytes: Int { 12 + 8 * layers.count * expertsPerToken + 4 * hiddenSize }

    /// The encoded file.
    public func encoded() -> Data {
        var out = Data()
        out.reserveCapacity(Self.fixedHeaderBytes + 16 * layers.count + tokens.count * recordBytes)
        out.append(contentsOf: Self.magic)
        Self.append(&out, Self.currentVersion)
        Self.append(&out, UInt32(hasHidden ? 1 : 0))
        Self.append(&out, UInt32(layers.count))
        Self.append(&out, UInt32(expertsPerToken))
        Self.append(&out, UInt32(hiddenSize))
        Self.append(&out, UInt32(sequenceCount))
        Self.append(&out, UInt64(tokens.count))
        Self.append(&out, UInt32(hiddenLayer))
        for layer in layers {
            Self.append(&out, UInt32(layer.layer))
            Self.append(&out, UInt32(layer.experts))
            Self.append(&out, UInt64(layer.expertBytes))
        }
        for token in tokens {
            precondition(
                token.experts.count == layers.count && token.probabilities.count == layers.count,
                "a token record has one entry per MoE layer")
            precondition(token.hidden.count == hiddenSize, "a token record has hiddenSize floats")
            Self.append(&out, UInt32(token.sequence))
            Self.append(&out, UInt32(token.position))
            Self.append(&out, UInt32(token.id))
            for (experts, probabilities) in zip(token.experts, token.probabilities) {
                precondition(
                    experts.count == expertsPerToken && probabilities.count == expertsPerToken,
                    "a token record has k experts per layer")
                for expert in experts { Self.append(&out, UInt32(expert)) }
                for p in probabilities { Self.append(&out, p.bitPattern) }
            }
            for value in token.hidden { Self.append(&out, value.bitPattern) }
        }
        return out
    }

    /// Writes the trace to `url` atomically.
    public func write(to url: URL) throws {
        try AtomicFile.write(encoded(), to: url)
    }

    /// Reads and validates the trace at `url`.
    public static func read(_ url: URL) throws -> ActivationTrace {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ActivationTraceError.unreadable(path: url.path, reason: FileSystemError.reason(error))
        }
        return try decode(data, path: url.path)
    }

    /// Decodes and validates a trace; errors name `path`.
    public static func decode(_ data: Data, path: String) throws -> ActivationTrace {
        let bytes = [UInt8](data)
        func fail(_ reason: String) -> ActivationTraceError { .malformed(path: path, reason: reason) }
        guard bytes.count >= versionOneHeaderBytes else { throw fail("\(bytes.count) bytes is shorter than the header") }
        guard Array(bytes[0..<8]) == magic else { throw fail("it does not start with the magic \"CHRTRACE\"") }
        var cursor = 8
        func u32() -> Int {
            defer { cursor += 4 }
            return Int(load(bytes, cursor, as: UInt32.self))
        }
        func u64() -> UInt64 {
            defer { cursor += 8 }
            return load(bytes, cursor, as: UInt64.self)
        }
        func f32() -> Float {
            defer { cursor += 4 }
            return Float(bitPattern: load(bytes, cursor, as: UInt32.self))
        }
        let version = u32()
        guard version == 1 || version == Int(currentVersion) else {
            throw fail("version \(version) is not a supported version (1 or \(currentVersion))")
        }
        let flags = u32(), layerCount = u32(), k = u32(), hidden = u32(), sequences = u32()
        let tokenCount = u64()
        let headerBytes = version == 1 ? versionOneHeaderBytes : fixedHeaderBytes
        guard bytes.count >= headerBytes else { throw fail("\(bytes.count) bytes is shorter than the \(headerBytes)-byte header") }
        let hiddenLayer = version == 1 ? 0 : u32()
        guard flags & ~1 == 0 else { throw fail("unknown flags \(flags)") }
        guard (flags & 1 == 1) == (hidden > 0) else { throw fail("the hidden-state flag disagrees with the hidden width \(hidden)") }
        guard k > 0 || layerCount == 0 else { throw fail("experts per token is 0") }
        let tableEnd = headerBytes + 16 * layerCount
        guard bytes.count >= tableEnd else {
            throw fail("truncated: \(bytes.count) bytes, but the layer table of \(layerCount) layers ends at byte \(tableEnd)")
        }
        var layers: [Layer] = []
        for _ in 0..<layerCount {
            let layer = u32(), experts = u32(), expertBytes = u64()
            guard layer < ConfigurationLimits.layers.upperBound else {
                throw fail("layer index \(layer) is beyond the \(ConfigurationLimits.layers.upperBound) layers a model may have")
            }
            guard ConfigurationLimits.experts.contains(experts), k <= experts else {
                throw fail(
                    "layer \(layer) has \(experts) experts for \(k) per token (at most \(ConfigurationLimits.experts.upperBound) experts)")
            }
            guard let bytes = Int(exactly: expertBytes) else { throw fail("layer \(layer) has experts of \(expertBytes) bytes") }
            layers.append(Layer(layer: layer, experts: experts, expertBytes: bytes))
        }
        // The sizes come from the file, so every product and sum is checked: one that overflows
        // 64 bits names more bytes than any file holds.
        func product(_ a: UInt64, _ b: UInt64) -> UInt64 { a.multipliedReportingOverflow(by: b).overflow ? .max : a * b }
        func sum(_ a: UInt64, _ b: UInt64) -> UInt64 { a.addingReportingOverflow(b).overflow ? .max : a + b }
        let recordBytes = sum(sum(12, product(8 * UInt64(layerCount), UInt64(k))), 4 * UInt64(hidden))
        let expected = sum(product(tokenCount, recordBytes), UInt64(tableEnd))
        guard UInt64(bytes.count) == expected else {
            let kind = UInt64(bytes.count) < expected ? "truncated" : "too long"
            throw fail(
                "\(kind): \(bytes.count) bytes, but \(tokenCount) records of \(recordBytes) bytes after a \(tableEnd)-byte header need \(expected)"
            )
        }
        var tokens: [Token] = []
        tokens.reserveCapacity(Int(tokenCount))
        for index in 0..<Int(tokenCount) {
            let sequence = u32(), position = u32(), id = u32()
            guard sequence < sequences else { throw fail("record \(index) names sequence \(sequence) of \(sequences)") }
            var experts: [[Int]] = [], probabilities: [[Float]] = []
            for layer in layers {
                let chosen = (0..<k).map { _ in u32() }
                guard chosen.allSatisfy({ $0 < layer.experts }) else {
                    throw fail("record \(index) names an expert beyond the \(layer.experts) of layer \(layer.layer)")
                }
                experts.append(chosen)
                probabilities.append((0..<k).map { _ in f32() })
            }
            let state = (0..<hidden).map { _ in f32() }
            tokens.append(
                Token(sequence: sequence, position: position, id: id, experts: experts, probabilities: probabilities, hidden: state))
        }
        return ActivationTrace(
            layers: layers, expertsPerToken: k, hiddenSize: hidden, hiddenLayer: hiddenLayer, sequenceCount: sequences,
            tokens: tokens)
    }

    private static func append<T: FixedWidthInteger>(_ data: inout Data, _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    private static func load<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as: T.Type) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}

/// Why an activation trace could not be read.
public enum ActivationTraceError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read at all.
    case unreadable(path: String, reason: String)
    /// The file is not a well-formed trace.
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read activation trace \(path): \(reason)"
        case .malformed(let path, let reason): "\(path) is not a valid activation trace: \(reason)"
        }
    }
}
