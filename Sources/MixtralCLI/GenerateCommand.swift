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

    @Option(name: .long, help: "Tokens to generate (default: generation_config.json's max_new_tokens, else 20).")
    var maxNewTokens: Int?
    @Option(name: .long, help: "Sampling temperature; 0 means greedy.")
    var temperature: Float?
    @Option(name: .long, help: "Keep the K most likely tokens when sampling (0: all).")
    var topK: Int?
    @Option(name: .long, help: "Nucleus sampling: keep the most likely tokens up to probability P.")
    var topP: Float?
    @Option(name: .long, help: "Drop tokens less likely than P times the most likely one.")
    var minP: Float?
    @Option(name: .long, help: "Penalise tokens already present (1 = off; transformers' definition).")
    var repetitionPenalty: Float?
    @Option(name: .long, help: "Random seed for sampling; the same seed gives the same text.")
    var seed: UInt64?
    @Option(name: .long, help: "Stop when the generated text contains this string (repeatable).")
    var stop: [String] = []
    @Flag(name: .long, help: "Sample even if the model's defaults are greedy.")
    var doSample = false
    @Flag(name: .long, help: "Greedy decoding even if the model's defaults sample.")
    var greedy = false
    @Flag(name: .long, help: "Do not stop at end-of-sequence tokens (for benchmarks and comparisons).")
    var ignoreEos = false
    @Option(name: .long, help: "Context length limit (default: the model's max_position_embeddings).")
    var ctx: Int?
    @Flag(name: .long, help: "Print one JSON object (ids, text, speeds) instead of streaming text.")
    var json = false

    func options(_ bundle: ModelBundle) throws -> GenerationOptions {
        var options = bundle.defaults
        if let maxNewTokens { options.maxNewTokens = maxNewTokens }
        if let temperature {
            if temperature == 0 { options.doSample = false } else { options.doSample = true; options.temperature = temperature }
        }
        if doSample { options.doSample = true }
        if greedy { options.doSample = false }
        if let topK { options.topK = topK }
        if let topP { options.topP = topP }
        if let minP { options.minP = minP }
        if let repetitionPenalty { options.repetitionPenalty = repetitionPenalty }
        if let seed { options.seed = seed }
        options.stopStrings = stop
        if ignoreEos { options.eosTokenIDs = [] }
        if let problem = options.validationError() { throw CLIError(problem) }
        return options
    }

    func run() throws {
        if doSample && greedy { throw CLIError("--do-sample and --greedy contradict each other") }
        if let ctx, ctx < 1 { throw CLIError("--ctx must be at least 1") }
        let bundle = try modelOptions.load()
        let prompt = try promptOptions.tokens(bundle)
        let options = try options(bundle)
        let tokenizer = bundle.tokenizer
        let decode = tokenizer.map { t in { (ids: [Int]) in t.decode(ids, skipSpecialTokens: true) } }
        let cache = bundle.model.makeCache(maxPositions: ctx)
        if prompt.count + options.maxNewTokens > cache.maxPositions {
            log("warning: prompt (\(prompt.count)) + max new tokens (\(options.maxNewTokens)) exceed the context (\(cache.maxPositions)); generation stops at the limit")
        }
        var streamed = ""
        /// Prints what decode(all ids) adds to what was printed; holds back a trailing
        /// U+FFFD, which may be half a UTF-8 character completed by the next token.
        func stream(_ text: String, final: Bool) {
            guard !json, text.utf8.starts(with: streamed.utf8), final || !text.hasSuffix("\u{FFFD}") else { return }
            printFlush(String(decoding: text.utf8.dropFirst(streamed.utf8.count), as: UTF8.self))
            streamed = text
        }
        if let decode { stream(decode(prompt), final: false) }
        var sequence = prompt
        let result = try bundle.model.generate(prompt: prompt, options: options, cache: cache, decode: decode) { id in
            sequence.append(id)
            if let decode { stream(decode(sequence), final: false) }
            return sequence.count < cache.maxPositions
        }
        let text = decode?(result.promptIDs + result.generatedIDs)
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
        } else if let text {
            stream(text, final: true)
            print()
        } else {
            print((result.promptIDs + result.generatedIDs).map(String.init).joined(separator: " "))
        }
        log(String(format: "prompt: %d tokens, %.1f tokens/s; generated: %d tokens, %.1f tokens/s (%@)",
                   result.promptIDs.count, result.promptTokensPerSecond, result.generatedIDs.count,
                   result.generatedTokensPerSecond, result.stopReason.rawValue))
    }
}

func printFlush(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
