/// Why gzip data could not be decompressed.
public enum GzipError: Error, Equatable, CustomStringConvertible {
    /// The data is not in the gzip format (RFC 1952) or its DEFLATE stream (RFC 1951) is invalid.
    case malformed(String)
    /// The data ends before the stream does.
    case truncated
    /// The decompressed bytes do not match the CRC-32 or length the member records.
    case checksumMismatch

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .malformed(let reason): "invalid gzip data: \(reason)"
        case .truncated: "gzip data ends early"
        case .checksumMismatch: "gzip data is corrupt: the CRC-32 or length does not match"
        }
    }
}

/// Decompression of gzip files (RFC 1952) with a DEFLATE decoder (RFC 1951) written in the
/// manner of zlib's reference inflater: canonical Huffman codes decoded a bit at a time, so the code stays short
/// and needs no system library. Concatenated members are decompressed one after another, as
/// `gzip -d` does, and each member's CRC-32 and length are checked.
public enum Gzip {
    /// Whether `bytes` start with the gzip magic number 1f 8b.
    public static func isCompressed<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        var iterator = bytes.makeIterator()
        return iterator.next() == 0x1F && iterator.next() == 0x8B
    }

    /// The decompressed contents of the gzip data `bytes`.
    public static func decompress(_ bytes: [UInt8]) throws(GzipError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count * 4)
        var position = 0
        repeat {
            position = try member(bytes, at: position, into: &output)
            // Zero padding after the last member is tolerated, as gzip does.
        } while position < bytes.count && bytes[position...].contains(where: { $0 != 0 })
        return output
    }

    /// Decompresses the member starting at `start`; returns the position after it.
    private static func member(_ bytes: [UInt8], at start: Int, into output: inout [UInt8]) throws(GzipError) -> Int {
        guard bytes.count - start >= 18 else { throw .truncated }
        guard bytes[start] == 0x1F, bytes[start + 1] == 0x8B else { throw .malformed("no gzip magic number") }
        guard bytes[start + 2] == 8 else { throw .malformed("compression method \(bytes[start + 2]) is not DEFLATE") }
        let flags = bytes[start + 3]
        var position = start + 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard position + 2 <= bytes.count else { throw .truncated }
            position += 2 + (Int(bytes[position]) | Int(bytes[position + 1]) << 8)
        }
        for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            while position < bytes.count && bytes[position] != 0 { position += 1 }
            position += 1
        }
        if flags & 0x02 != 0 { position += 2 }  // FHCRC
        guard position <= bytes.count else { throw .truncated }
        let first = output.count
        var inflater = Inflater(bytes, start: position)
        try inflater.inflate(into: &output)
        position = inflater.bytePosition
        guard position + 8 <= bytes.count else { throw .truncated }
        func word(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        let produced = output[first...]
        guard word(position) == CRC32.checksum(produced), word(position + 4) == UInt32(truncatingIfNeeded: produced.count) else {
            throw .checksumMismatch
        }
        return position + 8
    }
}

/// The CRC-32 of gzip and zlib (polynomial 0xEDB88320, reflected).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for byte in bytes { c = t[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        }
        return c ^ 0xFFFF_FFFF
    }
}

/// A canonical Huffman code: how many codes have each length, and the symbols in code order.
private struct Huffman {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int]

    /// The code whose symbol `s` has code length `lengths[s]` (0 = unused); fails on an
    /// over-subscribed set of lengths.
    init(lengths: ArraySlice<Int>) throws(GzipError) {
        symbols = [Int](repeating: 0, count: lengths.count)
        for length in lengths { counts[length] += 1 }
        var left = 1
        for length in 1..<16 {
            left = left << 1 - counts[length]
            guard left >= 0 else { throw .malformed("over-subscribed Huffman code") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for length in 1..<15 { offsets[length + 1] = offsets[length] + counts[length] }
        for (symbol, length) in lengths.enumerated() where length != 0 {
            symbols[offsets[length]] = symbol
            offsets[length] += 1
        }
    }
}

/// A DEFLATE decoder over a byte array, reading bits least-significant first.
private struct Inflater {
    let bytes: [UInt8]
    var position: Int
    var bitBuffer: UInt64 = 0
    var bitCount = 0

    init(_ bytes: [UInt8], start: Int) {
        self.bytes = bytes
        position = start
    }

    /// The position of the first byte after the stream (whole bytes only).
    var bytePosition: Int { position - bitCount / 8 }

    static let lengthBase = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258
    ]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
        4097, 6145, 8193, 12289, 16385, 24577
    ]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    /// The order in which code-length code lengths are stored in a dynamic block header.
    static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    static let fixedLiterals: Huffman = try! Huffman(
        lengths: ([Int](repeating: 8, count: 144) + [Int](repeating: 9, count: 112)
            + [Int](repeating: 7, count: 24) + [Int](repeating: 8, count: 8))[...])
    static let fixedDistances: Huffman = try! Huffman(lengths: [Int](repeating: 5, count: 30)[...])

    /// `count` bits (at most 32) as an integer, first bit lowest.
    mutating func bits(_ count: Int) throws(GzipError) -> Int {
        while bitCount < count {
            guard position < bytes.count else { throw .truncated }
            bitBuffer |= UInt64(bytes[position]) << UInt64(bitCount)
            position += 1
            bitCount += 8
        }
        let value = Int(bitBuffer & ((1 << UInt64(count)) - 1))
        bitBuffer >>= UInt64(count)
        bitCount -= count
        return value
    }

    /// The next symbol of `code`.
    mutating func decode(_ code: Huffman) throws(GzipError) -> Int {
        var value = 0, first = 0, index = 0
        for length in 1..<16 {
            value |= try bits(1)
            let count = code.counts[length]
            if value - count < first { return code.symbols[index + value - first] }
            index += count
            first = (first + count) << 1
            value <<= 1
        }
        throw .malformed("invalid Huffman code")
    }

    mutating func inflate(into output: inout [UInt8]) throws(GzipError) {
        var last = false
        while !last {
            last = try bits(1) == 1
            switch try bits(2) {
            case 0: try stored(into: &output)
            case 1: try codes(Self.fixedLiterals, Self.fixedDistances, into: &output)
            case 2:
                let (literals, distances) = try dynamicCodes()
                try codes(literals, distances, into: &output)
            default: throw .malformed("block type 3 is reserved")
            }
        }
        // The stream ends mid-byte; the rest of that byte is padding.
        bitBuffer = 0
        bitCount -= bitCount % 8
    }

    /// A stored block: byte-aligned LEN, its one's complement, then LEN raw bytes.
    mutating func stored(into output: inout [UInt8]) throws(GzipError) {
        _ = try bits(bitCount % 8)
        let length = try bits(16), complement = try bits(16)
        guard length == ~complement & 0xFFFF else { throw .malformed("stored block length does not match its complement") }
        // Whole bytes still in the bit buffer come first.
        var remaining = length
        while remaining > 0 && bitCount >= 8 {
            try output.append(UInt8(bits(8)))
            remaining -= 1
        }
        guard position + remaining <= bytes.count else { throw .truncated }
        output.append(contentsOf: bytes[position..<position + remaining])
        position += remaining
    }

    /// Literal/length and distance codes of a dynamic block header.
    mutating func dynamicCodes() throws(GzipError) -> (Huffman, Huffman) {
        let literalCount = try bits(5) + 257, distanceCount = try bits(5) + 1, codeLengthCount = try bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else { throw .malformed("too many length or distance codes") }
        var codeLengthLengths = [Int](repeating: 0, count: 19)
        for i in 0..<codeLengthCount { codeLengthLengths[Self.codeLengthOrder[i]] = try bits(3) }
        let codeLengths = try Huffman(lengths: codeLengthLengths[...])
        var lengths: [Int] = []
        lengths.reserveCapacity(literalCount + distanceCount)
        while lengths.count < literalCount + distanceCount {
            let symbol = try decode(codeLengths)
            switch symbol {
            case 0..<16: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw .malformed("repeat with no previous length") }
                lengths += try [Int](repeating: previous, count: 3 + bits(2))
            case 17: lengths += try [Int](repeating: 0, count: 3 + bits(3))
            default: lengths += try [Int](repeating: 0, count: 11 + bits(7))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw .malformed("code lengths overrun the header") }
        guard lengths[256] != 0 else { throw .malformed("no end-of-block code") }
        return (try Huffman(lengths: lengths[..<literalCount]), try Huffman(lengths: lengths[literalCount...]))
    }

    /// Literals and back-references until the end-of-block symbol.
    mutating func codes(_ literals: Huffman, _ distances: Huffman, into output: inout [UInt8]) throws(GzipError) {
        while true {
            let symbol = try decode(literals)
            if symbol < 256 {
                output.append(UInt8(symbol))
                continue
            }
            if symbol == 256 { return }
            let lengthIndex = symbol - 257
            guard lengthIndex < 29 else { throw .malformed("invalid length symbol \(symbol)") }
            let length = try Self.lengthBase[lengthIndex] + bits(Self.lengthExtra[lengthIndex])
            let distanceSymbol = try decode(distances)
            guard distanceSymbol < 30 else { throw .malformed("invalid distance symbol \(distanceSymbol)") }
            let distance = try Self.distanceBase[distanceSymbol] + bits(Self.distanceExtra[distanceSymbol])
            guard distance <= output.count else { throw .malformed("distance \(distance) reaches before the start") }
            // Byte by byte: a copy may overlap the bytes it produces.
            let from = output.count - distance
            for i in 0..<length { output.append(output[from + i]) }
        }
    }
}
