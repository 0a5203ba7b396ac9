import ArgumentParser
import Foundation
import Mixtral

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt, like transformers' generate().",
        discussion: """
        Prints the prompt and its continuation as transformers' decode(outputs[0], skip_special_tokens=True).
        Greedy by default (as transformers for Mixtral) unless the model's generation_config.json samples.
        --temperature above 0 or --do-sample turns sampling on (with top-k 50 unless set, as transformers);
        --temperature 0 or --greedy forces greedy decoding. Speeds are printed to standard error.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions

    @OptionGroup var sampling: SamplingOptions
    @Flag(name: .long, help: "Print one JSON object (ids, text, speeds) instead of streaming text.")
    var json = false

    func run() throws { try runOnRanks(generate) }

    /// Split over several ranks (`mpiexec -n N`), every rank runs the same steps: rank 0's
    /// prompt, rank 0's tokens (see `LanguageModel.generate`); only rank 0 prints.
    private func generate() throws {
        let bundle = try modelOptions.load(splitOverRanks: true)
        let communicator = bundle.model.communicator
        let prompt = try promptOptions.tokens(bundle)
        let isRoot = communicator.rank == 0
        let options = try sampling.options(bundle)
        let tokenizer = bundle.tokenizer
        let cache = bundle.model.makeCache(maxPositions: sampling.ctx)
        if options.maxNewTokens > cache.maxPositions - prompt.count {  // (no overflow for huge values)
            log("warning: prompt (\(prompt.count)) + max new tokens (\(options.maxNewTokens)) exceed the context (\(cache.maxPositions)); generation stops at the limit")
        }
        // The prompt's text, then each token's released text (the generated text's deltas
        // continue the prompt's decode, see StopStringFilter).
        if !json, isRoot, let tokenizer {
            var promptText = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
            printFlush(promptText.append(contentsOf: prompt))
        }
        let streamingAtStart = bundle.model.expertStreamingStats
        let result = try bundle.model.generate(prompt: prompt, options: options, cache: cache, tokenizer: tokenizer) { token in
            if isRoot && !json && !token.text.isEmpty { printFlush(token.text) }
            return true
        }
        guard isRoot else { return }
        let text = tokenizer?.decode(result.promptIDs + result.generatedIDs, skipSpecialTokens: true)
        if json {
            let object: [String: Any] = [
                "prompt_ids": result.promptIDs,
                "generated_ids": result.generatedIDs,
                "text": text ?? NSNull(),
                "stop_reason": result.stopReason.rawValue,
                "seed": result.seed,
                "prompt_tokens": result.promptIDs.count,
                "generated_tokens": result.generatedIDs.count,
                "prompt_seconds": result.promptSeconds,
                "generation_seconds": result.decodeSeconds,
                "prompt_tokens_per_second": result.promptTokensPerSecond,
                "generated_tokens_per_second": result.generatedTokensPerSecond,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else if tokenizer != nil {
            printFlush("\n")  // unbuffered, so the text ends before the statistics on stderr
        } else {
            print((result.promptIDs + result.generatedIDs).map(String.init).joined(separator: " "))
        }
        log(String(format: "prompt: %d tokens, %.1f tokens/s; generated: %d tokens, %.1f tokens/s (%@)",
                   result.promptIDs.count, result.promptTokensPerSecond, result.generatedIDs.count,
                   result.generatedTokensPerSecond, result.stopReason.rawValue))
        if let summary = streamingSummary(bundle.model, since: streamingAtStart,
                                          tokens: result.promptIDs.count + result.generatedIDs.count) {
            log(summary)
        }
    }
}

func printFlush(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
