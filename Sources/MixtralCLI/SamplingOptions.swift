import ArgumentParser
import Mixtral

/// Generation settings shared by `generate` and `chat`; unset ones keep the model's
/// defaults (generation_config.json over transformers' own).
struct SamplingOptions: ParsableArguments {
    @Option(name: [.long, .customShort("n")], help: "Tokens to generate (default: generation_config.json's max_new_tokens, else 20).")
    var maxNewTokens: Int?
    @Option(name: [.long, .customLong("temp")], help: "Sampling temperature; 0 means greedy.")
    var temperature: Float?
    @Option(name: .long, help: "Keep the K most likely tokens when sampling (0: all; transformers' default 50).")
    var topK: Int?
    @Option(name: .long, help: "Nucleus sampling: keep the most likely tokens up to probability P.")
    var topP: Float?
    @Option(name: .long, help: "Drop tokens less likely than P times the most likely one.")
    var minP: Float?
    @Option(name: .long, help: "Penalise tokens already present (1 = off; transformers' definition).")
    var repetitionPenalty: Float?
    @Option(name: .long, help: "OpenAI's presence penalty, -2...2: subtracted once from each token already generated (0 = off).")
    var presencePenalty: Float?
    @Option(name: .long, help: "OpenAI's frequency penalty, -2...2: subtracted per time a token was generated (0 = off).")
    var frequencyPenalty: Float?
    @Option(name: [.long, .customShort("s")], help: "Random seed for sampling; the same seed gives the same text.")
    var seed: UInt64?
    @Option(name: .long, help: "Stop when the generated text contains this string (repeatable); the text printed ends before it, as OpenAI's API does.")
    var stop: [String] = []
    @Flag(name: .long, help: "Sample even if the model's defaults are greedy.")
    var doSample = false
    @Flag(name: .long, help: "Greedy decoding even if the model's defaults sample.")
    var greedy = false
    @Flag(name: .long, help: "Do not stop at end-of-sequence tokens (for benchmarks and comparisons).")
    var ignoreEos = false
    @Option(name: .long, help: ArgumentHelp("Generate only text that this GBNF grammar (llama.cpp's notation) matches; the end-of-sequence token only once the text is a whole match.", valueName: "file"))
    var grammar: String?
    @Option(name: .long, help: ArgumentHelp("Generate only JSON that this JSON Schema describes (turned into a grammar, as llama.cpp's --json-schema-file; properties in the schema's order).", valueName: "file"))
    var jsonSchema: String?
    @Option(name: [.long, .customShort("c")], help: "Context length limit (default: the model's max_position_embeddings).")
    var ctx: Int?

    func validate() throws {
        if doSample && greedy { throw ValidationError("--do-sample and --greedy contradict each other") }
        if let ctx, ctx < 1 { throw ValidationError("--ctx must be at least 1") }
        if grammar != nil && jsonSchema != nil { throw ValidationError("--grammar and --json-schema both constrain the output; give one") }
    }

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
        if let presencePenalty { options.presencePenalty = presencePenalty }
        if let frequencyPenalty { options.frequencyPenalty = frequencyPenalty }
        if let seed { options.seed = seed }
        options.stopStrings = stop
        if ignoreEos { options.eosTokenIDs = [] }
        if let (flag, path) = grammar.map({ ("--grammar", $0) }) ?? jsonSchema.map({ ("--json-schema", $0) }) {
            guard let data = try readRegularFile(path), let text = String(data: data, encoding: .utf8) else {
                throw CLIError("\(flag): cannot read \(path) as UTF-8 text")
            }
            guard let tokenizer = bundle.tokenizer else { throw CLIError("\(flag) needs the model's tokenizer") }
            do {
                let parsed: Grammar
                if flag == "--grammar" {
                    parsed = try Grammar(gbnf: text)
                } else {
                    let schema: JSONValue
                    do {
                        schema = try JSONValue.parse(text)
                    } catch {
                        throw CLIError("\(flag) \(path): not JSON: \(error)")
                    }
                    parsed = try JSONSchemaGrammar.grammar(schema)
                }
                let vocabulary = TokenVocabulary(tokenizer: tokenizer, vocabularySize: bundle.model.config.vocabSize)
                options.grammar = try GrammarConstraint(grammar: parsed, vocabulary: vocabulary, eosTokenIDs: bundle.defaults.eosTokenIDs)
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("\(flag) \(path): \(error)")
            }
        }
        if let problem = options.validationError() { throw CLIError(problem) }
        return options
    }
}
