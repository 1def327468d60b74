import ChronosFormats
import ChronosServer
import Foundation
import Testing

/// The shipped model's directory, found from this file.
let shippedModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../models/austen-moe")
    .standardizedFileURL

@Suite struct RequestValidatorTests {
    let validator: RequestValidator

    init() throws {
        let directory = ModelDirectory(shippedModel)
        let tokenizer = try #require(try directory.loadTokenizer())
        validator = RequestValidator(
            modelID: "austen-moe", tokenizer: tokenizer,
            chatTemplate: try ChatTemplate(config: TokenizerConfig(contentsOf: directory.tokenizerConfig)),
            context: 64, maxTokensLimit: 100)
    }

    /// The error `body` gets from the completions endpoint (or the chat endpoint).
    private func error(_ body: String, chat: Bool = false) -> APIError? {
        do {
            _ = chat ? try validator.chat(Data(body.utf8)) : try validator.completion(Data(body.utf8))
            return nil
        } catch {
            return error
        }
    }

    @Test func aCompletionRequestBecomesAJob() throws {
        let job = try validator.completion(
            Data(
                #"{"model":"austen-moe","prompt":"It is a truth","max_tokens":5,"temperature":0,"top_k":3,"top_p":0.9,"min_p":0.1,"seed":-7,"stop":"\n","stream":true,"stream_options":{"include_usage":true},"ignore_eos":true}"#
                    .utf8))
        #expect(job.endpoint == .completion)
        #expect(job.promptIds == (try validator.tokenizer.encodeEveryByte("It is a truth")))
        #expect(job.maxTokens == 5)
        #expect(job.sampling.temperature == 0 && job.sampling.topK == 3 && job.sampling.topP == 0.9 && job.sampling.minP == 0.1)
        #expect(job.sampling.seed == UInt64(bitPattern: -7))
        #expect(job.stop == ["\n"])
        #expect(job.stream && job.includeUsage && job.ignoreEOS)
    }

    @Test func aChatRequestIsRenderedByTheTemplate() throws {
        let job = try validator.chat(
            Data(#"{"model":"austen-moe","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"stop":["a","b"]}"#.utf8))
        let rendered = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        #expect(job.promptIds == (try validator.tokenizer.encodeEveryByte(rendered)))
        #expect(job.maxTokens == 100, "a request naming no max_tokens gets the server's limit")
        #expect(job.stop == ["a", "b"])
        #expect(!job.stream)
    }

    @Test func malformedBodiesNameWhatIsWrong() {
        #expect(error("{\"model\":")?.message.hasPrefix("the request body is not valid JSON") == true)
        #expect(error("[1]")?.message == "the request body must be a JSON object")
        #expect(error("[1]")?.param == nil)
        #expect(error(#"{"model":"austen-moe"}"#)?.param == "prompt")
        #expect(error(#"{"prompt":"x"}"#)?.param == "model")
        #expect(error(#"{"model":"austen-moe","prompt":"x","max_tokens":"5"}"#)?.param == "max_tokens")
        #expect(error(#"{"model":"austen-moe","prompt":"x","max_tokens":2.5}"#)?.param == "max_tokens")
        #expect(error(#"{"model":"austen-moe","prompt":"x","max_tokens":1e30}"#)?.param == "max_tokens")
        #expect(error(#"{"model":"austen-moe","prompt":"x","seed":0.5}"#)?.param == "seed")
        #expect(error(#"{"model":"austen-moe","prompt":"x","temperature":true}"#)?.param == "temperature")
        #expect(error(#"{"model":"austen-moe","prompt":"x","stop":5}"#)?.param == "stop")
        #expect(error(#"{"model":"austen-moe","prompt":{"a":1}}"#)?.param == "prompt")
        #expect(error(#"{"model":"austen-moe","messages":[{"role":"user","content":3}]}"#, chat: true)?.param == "messages[0].content")
        #expect(error(#"{"model":"austen-moe","messages":[{"content":"x"}]}"#, chat: true)?.param == "messages[0].role")
    }

    @Test func valuesOutOfRangeAreRefusedWithTheirField() {
        let cases: [(String, String)] = [
            (#""max_tokens":-1"#, "max_tokens"), (#""max_tokens":0"#, "max_tokens"), (#""max_tokens":101"#, "max_tokens"),
            (#""max_tokens":99999999999999"#, "max_tokens"), (#""temperature":2.5"#, "temperature"), (#""temperature":-1"#, "temperature"),
            (#""top_p":0"#, "top_p"), (#""top_p":1.5"#, "top_p"), (#""top_k":-2"#, "top_k"), (#""min_p":2"#, "min_p"), (#""n":2"#, "n"),
            (#""stop":[""]"#, "stop"), (#""stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]"#, "stop"),
            (#""logprobs":6"#, "logprobs"), (#""logprobs":-1"#, "logprobs"), (#""echo":true"#, "echo"),
            (#""presence_penalty":0.5"#, "presence_penalty"),
            (#""stream_options":{"include_usage":true}"#, "stream_options")
        ]
        for (field, param) in cases {
            let refused = error(#"{"model":"austen-moe","prompt":"x","# + field + "}")
            #expect(refused?.param == param, "\(field)")
            #expect(refused?.status == .badRequest, "\(field)")
            #expect(refused?.message.contains(param) == true, "\(field): \(refused?.message ?? "")")
        }
    }

    @Test func logprobsAreAskedForAsEachEndpointNamesThem() throws {
        let completion = try validator.completion(Data(#"{"model":"austen-moe","prompt":"x","logprobs":3}"#.utf8))
        #expect(completion.topLogprobs == 3)
        #expect(try validator.completion(Data(#"{"model":"austen-moe","prompt":"x"}"#.utf8)).topLogprobs == nil)
        let message = #""model":"austen-moe","messages":[{"role":"user","content":"x"}]"#
        #expect(try validator.chat(Data(("{" + message + #","logprobs":true,"top_logprobs":4}"#).utf8)).topLogprobs == 4)
        #expect(try validator.chat(Data(("{" + message + #","logprobs":true}"#).utf8)).topLogprobs == 0)
        #expect(try validator.chat(Data(("{" + message + #","logprobs":false}"#).utf8)).topLogprobs == nil)
        #expect(error("{" + message + #","top_logprobs":2}"#, chat: true)?.param == "top_logprobs")
        #expect(error("{" + message + #","logprobs":true,"top_logprobs":21}"#, chat: true)?.param == "top_logprobs")
    }

    @Test func anUnknownModelIsNotFound() {
        let refused = error(#"{"model":"gpt-4","prompt":"x"}"#)
        #expect(refused?.status == .notFound)
        #expect(refused?.param == "model")
        #expect(refused?.code == "model_not_found")
    }

    @Test func aPromptLongerThanTheContextIsRefused() {
        let long = String(repeating: "It is a truth universally acknowledged. ", count: 20)
        let refused = error(#"{"model":"austen-moe","prompt":"\#(long)"}"#)
        #expect(refused?.param == "prompt")
        #expect(refused?.code == "context_length_exceeded")
        #expect(error(#"{"model":"austen-moe","prompt":[1, 99999]}"#)?.param == "prompt")
        #expect(error(#"{"model":"austen-moe","prompt":["a","b"]}"#)?.param == "prompt")
    }

    @Test func chatMessagesAreChecked() {
        #expect(error(#"{"model":"austen-moe","messages":[]}"#, chat: true)?.param == "messages")
        #expect(
            error(#"{"model":"austen-moe","messages":[{"role":"user","content":"a"},{"role":"tool","content":"b"}]}"#, chat: true)?.param
                == "messages[1].role")
        #expect(
            error(#"{"model":"austen-moe","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, chat: true)?.param
                == "messages[0].content[0]")
        #expect(error(#"{"model":"austen-moe","messages":[{"role":"user","content":"a"}],"tools":[]}"#, chat: true)?.param == "tools")
        #expect(
            error(#"{"model":"austen-moe","messages":[{"role":"user","content":"a"}],"max_completion_tokens":0}"#, chat: true)?.param
                == "max_completion_tokens")
    }

    @Test func anErrorIsOpenAIsObject() {
        let refused = APIError.invalid("max_tokens", "max_tokens -1 is invalid: expected 1 to 100")
        #expect(
            refused.body
                == #"{"error":{"code":null,"message":"max_tokens -1 is invalid: expected 1 to 100","param":"max_tokens","type":"invalid_request_error"}}"#
        )
    }
}
