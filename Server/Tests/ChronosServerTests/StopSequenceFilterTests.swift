import ChronosServer
import Testing

@Suite struct StopSequenceFilterTests {
    /// Feeds `pieces` through a filter for `stops` and returns what it lets out, piece by piece.
    private func run(_ pieces: [String], stops: [String]) -> (sent: [String], stopped: Bool) {
        var filter = StopSequenceFilter(stops: stops)
        var sent = pieces.map { filter.append($0) }
        sent.append(filter.finish())
        return (sent, filter.isStopped)
    }

    @Test func withoutStopsEverythingPassesAtOnce() {
        let (sent, stopped) = run(["It is", " a truth"], stops: [])
        #expect(sent == ["It is", " a truth", ""])
        #expect(!stopped)
    }

    @Test func aStopSplitOverPiecesNeverLeaks() {
        let (sent, stopped) = run(["Mr. Dar", "cy\n", "\nEliza", "beth"], stops: ["\n\n"])
        #expect(sent.joined() == "Mr. Darcy")
        #expect(sent[1] == "cy", "the newline that may begin the stop is held back")
        #expect(stopped)
    }

    @Test func aHeldBackPrefixIsReleasedWhenTheTextGoesElsewhere() {
        let (sent, stopped) = run(["said Mr", ". Bennet", " and"], stops: ["Mrs."])
        #expect(sent == ["said ", "Mr. Bennet", " and", ""])
        #expect(!stopped)
    }

    @Test func theEarliestOfSeveralStopsWins() {
        let (sent, _) = run(["one two three"], stops: ["three", "two"])
        #expect(sent.joined() == "one ")
    }

    @Test func aStopInsideOnePieceCutsIt() {
        let (sent, stopped) = run(["Emma.END of", " more"], stops: ["END"])
        #expect(sent == ["Emma.", "", ""])
        #expect(stopped)
    }

    @Test func heldBackTextIsSentWhenTheGenerationEnds() {
        let (sent, stopped) = run(["Pride and", " Prej"], stops: ["Prejudice and"])
        #expect(sent == ["Pride and", " ", "Prej"])
        #expect(!stopped)
    }
}

@Suite struct ServerSentEventsTests {
    @Test func anEventIsOneDataLineAndABlankLine() {
        let event = ServerSentEvents.event(["text": "a\nb \"quoted\" \u{1}", "n": 3, "x": nil])
        #expect(event == "data: {\"n\":3,\"text\":\"a\\nb \\\"quoted\\\" \\u0001\",\"x\":null}\n\n")
        #expect(ServerSentEvents.done == "data: [DONE]\n\n")
    }

    @Test func chatChunksCarryADeltaAndNullsWhereOpenAIHasThem() {
        let header = AnswerHeader(endpoint: .chat, model: "austen-moe")
        let first = AnswerJSON.chunk(.chat, header: header, text: "", role: true, includeUsage: true)
        guard case .object(let chunk) = first, case .array(let choices) = chunk["choices"], case .object(let choice) = choices.first else {
            Issue.record("a chunk is an object with a choice")
            return
        }
        #expect(chunk["object"] == "chat.completion.chunk")
        #expect(chunk["usage"] == .null)
        #expect(choice["delta"] == ["role": "assistant", "content": ""])
        #expect(choice["finish_reason"] == .null)
        let last = AnswerJSON.chunk(.chat, header: header, text: nil, finishReason: .length, includeUsage: false)
        #expect(last.text.contains("\"delta\":{}"))
        #expect(last.text.contains("\"finish_reason\":\"length\""))
        #expect(!last.text.contains("usage"))
        let usage = AnswerJSON.usageChunk(.chat, header: header, usage: Usage(promptTokens: 5, completionTokens: 7))
        #expect(usage.text.contains("\"choices\":[]"))
        #expect(usage.text.contains("\"usage\":{\"completion_tokens\":7,\"prompt_tokens\":5,\"total_tokens\":12}"))
    }

    @Test func aWholeCompletionHasTextFinishReasonAndUsage() {
        let header = AnswerHeader(endpoint: .completion, model: "austen-moe")
        let text = AnswerJSON.whole(
            .completion, header: header, text: "Emma", finishReason: .stop, usage: Usage(promptTokens: 1, completionTokens: 2)
        )
        .text
        #expect(text.hasPrefix("{\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"logprobs\":null,\"text\":\"Emma\"}]"))
        #expect(text.contains("\"object\":\"text_completion\""))
        #expect(header.id.hasPrefix("cmpl-"))
    }
}
