import Foundation

/// Why a tokenizer, its configuration or its chat template could not be used.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read or written.
    case inaccessibleFile(file: String, reason: String)
    /// The file is not JSON, or lacks a field of the expected shape.
    case malformedFile(file: String, reason: String)
    /// The file is well formed but asks for something this tokenizer does not implement.
    case unsupported(file: String, feature: String)
    /// A token id that is neither in the vocabulary nor an added token.
    case unknownTokenId(Int)
    /// A token named by a configuration file that the tokenizer does not know.
    case unknownToken(String, file: String)
    /// A chat template that this renderer cannot reproduce faithfully.
    case unrenderableChatTemplate(reason: String)
    /// A byte of the text that the vocabulary has no token for, with no unknown token to stand in.
    case unencodableByte(UInt8, offset: Int)

    /// A one-line explanation that names the file at fault.
    public var description: String {
        switch self {
        case .inaccessibleFile(let file, let reason): "\(file): cannot access file: \(reason)"
        case .malformedFile(let file, let reason): "\(file): malformed file: \(reason)"
        case .unsupported(let file, let feature): "\(file): unsupported tokenizer feature: \(feature)"
        case .unknownTokenId(let id): "unknown token id \(id)"
        case .unknownToken(let token, let file): "\(file): token \(token.debugDescription) is not in the vocabulary"
        case .unrenderableChatTemplate(let reason): "cannot render chat template: \(reason)"
        case .unencodableByte(let byte, let offset):
            "the text's byte \(offset) (0x\(String(byte, radix: 16, uppercase: true))) has no token in the vocabulary and the tokenizer has no unk_token; remove it from the text"
        }
    }
}

/// Thrown while decoding a file section whose `type` (or option) is valid JSON but not implemented;
/// the loader turns it into `TokenizerError.unsupported` with the file name.
struct UnsupportedFeature: Error {
    let feature: String
    init(_ feature: String) { self.feature = feature }
}

extension TokenizerError {
    /// Wraps an error raised while decoding `file` as the matching tokenizer error.
    static func wrapping(_ error: any Error, file: String) -> TokenizerError {
        switch error {
        case let error as TokenizerError: return error
        case let error as UnsupportedFeature: return .unsupported(file: file, feature: error.feature)
        case let error as DecodingError: return .malformedFile(file: file, reason: describe(error))
        default: return .malformedFile(file: file, reason: "\(error)")
        }
    }

    /// The decoding error as a JSON path and what went wrong there.
    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "top level" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \"\(key.stringValue)\" at \(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(context.debugDescription) at \(path(context))"
        @unknown default: return "\(error)"
        }
    }
}
