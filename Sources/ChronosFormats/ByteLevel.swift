/// The GPT-2 byte-level alphabet: each of the 256 byte values is written as one printable
/// Unicode character, so that any byte string is a string of vocabulary characters and a
/// vocabulary never needs an unknown token.
///
/// Bytes that are printable in Latin-1 (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves; the
/// other 68 (controls, space, DEL, NBSP, soft hyphen) take U+0100, U+0101, … in byte order, which
/// is why a space is written `Ġ` (U+0120) and a newline `Ċ` (U+010A).
public enum ByteLevel {
    /// The character that stands for each byte value, indexed by the byte.
    public static let characters: [Unicode.Scalar] = {
        var characters = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if standsForItself(UInt8(byte)) {
                characters[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                characters[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return characters
    }()

    /// The byte each alphabet character stands for, indexed by scalar value (U+0000…U+0143), or -1.
    static let bytesByScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in characters.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// Writes `bytes` in the byte-level alphabet, as vocabulary tokens spell them.
    public static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var text = String.UnicodeScalarView()
        for byte in bytes { text.append(characters[Int(byte)]) }
        return String(text)
    }

    /// The bytes a vocabulary token stands for; a token with any character outside the alphabet
    /// (some added tokens) stands for its own UTF-8, as in the Hugging Face byte-level decoder.
    public static func decode(_ token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            let value = Int(scalar.value)
            guard value < bytesByScalar.count, bytesByScalar[value] >= 0 else { return Array(token.utf8) }
            bytes.append(UInt8(bytesByScalar[value]))
        }
        return bytes
    }

    private static func standsForItself(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }
}
