import ArgumentParser
import ChronosFormats
import ChronosModel
import ChronosStorage
import Foundation

/// The model directory a command runs: loading it, the shipped default, and its chat template.
enum ModelArgument {
    /// The model in `directory`, with every expert resident (read from the expert cache when the
    /// checkpoint was stripped of them).
    static func load(_ directory: String) throws -> any LanguageModel {
        try ModelLoader.load(directory: URL(fileURLWithPath: directory))
    }

    /// Where the model that ships with Chronos lives, relative to a checkout.
    static let shippedModelPath = "models/austen-moe"

    /// The shipped model's directory: under the current directory, else under a directory
    /// above the running executable (a `swift run` or `swift build` product inside the checkout).
    static func shippedModel() throws -> String {
        var candidates = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while executable.path != "/" {
            candidates.append(executable)
            executable.deleteLastPathComponent()
        }
        for base in candidates {
            let directory = ModelDirectory(base.appendingPathComponent(shippedModelPath))
            if directory.hasConfig { return directory.path }
        }
        throw ValidationError("the shipped model \(shippedModelPath) was not found from this directory; pass --model DIR")
    }

    /// The chat template of `directory`'s `tokenizer_config.json`, or of a GGUF file's metadata.
    static func chatTemplate(in directory: String) throws -> ChatTemplate {
        if GGUFFile.isGGUF(URL(fileURLWithPath: directory)) {
            return try ChatTemplate(config: TokenizerConfig(gguf: GGUFFile(url: URL(fileURLWithPath: directory))))
        }
        let url = ModelDirectory(path: directory).tokenizerConfig
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ValidationError("--chat needs \(url.path), which holds the chat template")
        }
        return try ChatTemplate(config: TokenizerConfig(contentsOf: url))
    }
}

/// Parses "1,5,9" into token ids.
func parseIds(_ text: String) throws -> [Int] {
    try text.split(separator: ",").map { part in
        guard let id = Int(part.trimmingCharacters(in: .whitespaces)) else {
            throw ValidationError("'\(part)' is not a token id (expected comma-separated integers)")
        }
        return id
    }
}
