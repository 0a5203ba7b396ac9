import Testing
@testable import Mixtral
@testable import MixtralServer

/// Request validation: every malformed field is a 400 naming the field, never a crash.
@Suite struct RequestParsingTests {
    func parameters(_ json: String, chat: Bool = false) throws(APIError) -> GenerationParameters {
        try GenerationParameters(RequestFields(body: Array(json.utf8)), defaults: GenerationOptions(),
                                 limits: ServerLimits(), vocabularySize: 1000, chat: chat)
    }

    func error(_ json: String, chat: Bool = false) -> APIError? {
        do {
            _ = try parameters(json, chat: chat)
            return nil
        } catch {
            return error
        }
    }

    @Test func invalidJSON() {
        for body in ["{", "[1]", "", "{\"a\": }", "nul"] {
            let failure = error(body)
            #expect(failure?.status == .badRequest && failure?.code == "invalid_json", "\(body)")
        }
    }

    @Test func wrongTypesNameTheField() {
        let cases = [("{\"max_tokens\": \"5\"}", "max_tokens"), ("{\"temperature\": \"hot\"}", "temperature"),
                     ("{\"stop\": 5}", "stop"), ("{\"stop\": [\"a\", 1]}", "stop"), ("{\"n\": 1.5}", "n"),
                     ("{\"stream\": \"yes\"}", "stream"), ("{\"seed\": \"1\"}", "seed"),
                     ("{\"stream_options\": []}", "stream_options"), ("{\"top_k\": true}", "top_k")]
        for (body, field) in cases {
            let failure = error(body)
            #expect(failure?.status == .badRequest, "\(body)")
            #expect(failure?.param == field, "\(body): \(String(describing: failure))")
        }
    }

    @Test func valuesOutOfRange() {
        for body in ["{\"temperature\": 3}", "{\"top_p\": 0}", "{\"top_p\": 1.5}", "{\"max_tokens\": 0}",
                     "{\"max_tokens\": 1000000}", "{\"n\": 0}", "{\"n\": 100}", "{\"logprobs\": 50}",
                     "{\"repetition_penalty\": 0}", "{\"min_p\": 2}", "{\"presence_penalty\": 2.5}",
                     "{\"frequency_penalty\": -3}", "{\"echo\": true}"] {
            #expect(error(body)?.status == .badRequest, "\(body)")
        }
        #expect(error("{\"top_logprobs\": 2}", chat: true)?.param == "top_logprobs")
    }

    /// logit_bias works; fields that would shape the answer and cannot be honoured are a 400
    /// naming them, not silently dropped.
    @Test func logitBiasAndUnsupportedFields() throws {
        let biased = try parameters(#"{"logit_bias": {"5": 100, "7": -100.0, "999": 0.5}}"#)
        #expect(biased.options.logitBias == [5: 100, 7: -100, 999: 0.5])
        var scores: [Float] = [0, 0, 0, 0, 0, 0, 0, 0]
        LogitBias(biased.options.logitBias).process(&scores, previous: [])
        #expect(scores[5] == 100 && scores[7] == -100 && scores[0] == 0)
        let refused = [(#"{"logit_bias": {"1000": 1}}"#, "logit_bias"), (#"{"logit_bias": {"-1": 1}}"#, "logit_bias"),
                       (#"{"logit_bias": {"a": 1}}"#, "logit_bias"), (#"{"logit_bias": {"1": 101}}"#, "logit_bias"),
                       (#"{"logit_bias": {"1": "x"}}"#, "logit_bias"), (#"{"logit_bias": [1]}"#, "logit_bias"),
                       (#"{"best_of": 3}"#, "best_of"),
                       (#"{"response_format": {"type": "xml"}}"#, "response_format"),
                       (#"{"response_format": {"type": "json_schema", "json_schema": {}}}"#, "response_format"),
                       (#"{"response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}}}"#, "response_format"),
                       (#"{"json_schema": {"type": "object", "patternProperties": {}}}"#, "json_schema"),
                       (#"{"grammar": "root ::= \"a\"", "json_schema": {}}"#, "json_schema"),
                       (#"{"tool_choice": "required"}"#, "tool_choice"),
                       (#"{"tool_choice": {"type": "function", "function": {"name": "f"}}}"#, "tool_choice"),
                       (#"{"tools": "f"}"#, "tools"),
                       (#"{"tools": [{"type": "function", "function": {"name": "a b"}}]}"#, "tools"),
                       (#"{"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}"#, "tool_choice"),
                       (#"{"tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": 1}"#, "parallel_tool_calls")]
        for (body, field) in refused {
            let failure = error(body, chat: true)
            #expect(failure?.status == .badRequest && failure?.param == field, "\(body): \(String(describing: failure))")
        }
        for body in [#"{"best_of": 1}"#, #"{"response_format": {"type": "text"}}"#, #"{"tool_choice": "auto"}"#] {
            #expect(error(body, chat: true) == nil, "\(body)")
        }
    }

    @Test func fieldsReachTheOptions() throws {
        let p = try parameters("""
            {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "seed": -1,
             "presence_penalty": 0.5, "frequency_penalty": -0.25,
             "stop": "END", "max_completion_tokens": 12, "n": 2, "stream": true,
             "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 3, "ignore_eos": true,
             "unknown_field": {"anything": [1, 2]}}
            """, chat: true)
        #expect(p.options.doSample && p.options.temperature == 0.7 && p.options.topP == 0.9 && p.options.topK == 20)
        #expect(p.options.minP == 0.05 && p.options.repetitionPenalty == 1.1 && p.options.seed == UInt64.max)
        #expect(p.options.presencePenalty == 0.5 && p.options.frequencyPenalty == -0.25)
        #expect(p.options.stopStrings == ["END"] && p.options.eosTokenIDs.isEmpty)
        #expect(p.maxTokens == 12 && p.choices == 2 && p.stream && p.includeUsage && p.topLogprobs == 3)
        let greedy = try parameters("{\"temperature\": 0, \"top_k\": -1, \"stop\": null}")
        #expect(!greedy.options.doSample && greedy.options.topK == 0 && greedy.options.stopStrings.isEmpty)
    }

    @Test func errorJSONHasOpenAIsShape() throws {
        let text = jsonText(APIError.modelNotFound("gpt-4").json)
        #expect(text == #"{"error":{"message":"The model 'gpt-4' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#)
        #expect(APIError(SchedulerError.queueFull(limit: 3)).status == .tooManyRequests)
        #expect(APIError(SchedulerError.contextOverflow(tokens: 10, limit: 8)).code == "context_length_exceeded")
    }
}
