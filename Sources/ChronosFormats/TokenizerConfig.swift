import Foundation

/// The parts of a Hugging Face `tokenizer_config.json` that generation needs: the chat template
/// and the spellings of the BOS, EOS and padding tokens.
public struct TokenizerConfig: Sendable {
    /// The Jinja chat template (the one named `default` when the file lists several).
    public var chatTemplate: String?
    /// The spelling of the beginning-of-sequence token.
    public var bosToken: String?
    /// The spelling of the end-of-sequence token, where generation stops.
    public var eosToken: String?
    /// The spelling of the padding token.
    public var padToken: String?
    /// The file this configuration was read from, for error messages.
    public var file: String

    /// A configuration given in code.
    public init(
        chatTemplate: String? = nil, bosToken: String? = nil, eosToken: String? = nil, padToken: String? = nil,
        file: String = ModelDirectory.Name.tokenizerConfig
    ) {
        self.chatTemplate = chatTemplate
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.file = file
    }

    /// Reads `tokenizer_config.json` at `url`.
    public init(contentsOf url: URL) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .inaccessibleFile(file: url.path, reason: FileSystemError.reason(error))
        }
        try self.init(data: data, file: url.path)
    }

    /// Reads the contents of a `tokenizer_config.json`; `file` names it in errors.
    public init(data: Data, file: String = ModelDirectory.Name.tokenizerConfig) throws(TokenizerError) {
        let contents: Contents
        do {
            contents = try JSONDecoder().decode(Contents.self, from: data)
        } catch {
            throw TokenizerError.wrapping(error, file: file)
        }
        self.init(
            chatTemplate: contents.chatTemplate?.text, bosToken: contents.bosToken?.content,
            eosToken: contents.eosToken?.content, padToken: contents.padToken?.content, file: file)
    }

    /// The file's layout: tokens are spelled as strings or as `AddedToken` objects, and the chat
    /// template is a string or a list of named templates.
    private struct Contents: Decodable {
        var chatTemplate: Template?
        var bosToken: Token?
        var eosToken: Token?
        var padToken: Token?

        enum CodingKeys: String, CodingKey {
            case chatTemplate = "chat_template"
            case bosToken = "bos_token"
            case eosToken = "eos_token"
            case padToken = "pad_token"
        }

        struct Token: Decodable {
            var content: String

            private enum CodingKeys: String, CodingKey { case content }

            init(from decoder: any Decoder) throws {
                if let spelling = try? decoder.singleValueContainer().decode(String.self) {
                    content = spelling
                } else {
                    content = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .content)
                }
            }
        }

        struct Template: Decodable {
            var text: String?

            private struct Named: Decodable {
                var name: String
                var template: String
            }

            init(from decoder: any Decoder) throws {
                if let text = try? decoder.singleValueContainer().decode(String.self) {
                    self.text = text
                } else {
                    text = try decoder.singleValueContainer().decode([Named].self).first { $0.name == "default" }?.template
                }
            }
        }
    }
}

/// The ids of the tokens that frame and pad sequences, where the configuration names them.
public struct SpecialTokenIds: Equatable, Sendable {
    /// Beginning of sequence.
    public var bos: Int?
    /// End of sequence: generation stops here.
    public var eos: Int?
    /// Padding.
    public var pad: Int?

    /// Ids given directly.
    public init(bos: Int? = nil, eos: Int? = nil, pad: Int? = nil) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
    }

    /// The ids in `tokenizer` of the tokens that `config` names.
    public init(config: TokenizerConfig, tokenizer: Tokenizer) throws(TokenizerError) {
        func id(_ spelling: String?) throws(TokenizerError) -> Int? {
            guard let spelling else { return nil }
            guard let id = tokenizer.id(forToken: spelling) else { throw .unknownToken(spelling, file: config.file) }
            return id
        }
        bos = try id(config.bosToken)
        eos = try id(config.eosToken)
        pad = try id(config.padToken)
    }
}
