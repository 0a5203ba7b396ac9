import ArgumentParser
import Foundation
import Mixtral

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file, computed like llama.cpp's llama-perplexity.",
        discussion: """
        The text is tokenized and cut into chunks of --ctx tokens; each chunk starts with BOS and \
        the negative log-likelihood is averaged over the second half of every chunk. \
        --save-logits keeps the scored logits of a (higher-precision) run as .npy; --kl-reference \
        compares a run with such a file: mean KL divergence and top-1 agreement.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: [.long, .customShort("f")], help: "UTF-8 text file.")
    var file: String
    @Option(name: [.long, .customShort("c")], help: "Tokens per chunk.")
    var ctx = 512
    @Option(name: .long, help: "Score at most this many chunks (default: all).")
    var chunks: Int?
    @Option(name: .long, help: "Write the scored logits [positions, vocab] as float32 .npy.")
    var saveLogits: String?
    @Option(name: .long, help: "A --save-logits file of a reference run on the same text and --ctx.")
    var klReference: String?

    func run() throws { try runOnRanks(score) }

    /// Split over several ranks, rank 0 reads and tokenizes the text and broadcasts the
    /// tokens; every rank runs the same chunks, and only rank 0 reads the reference, saves
    /// and prints.
    private func score() throws {
        guard ctx >= 4 else { throw CLIError("--ctx must be at least 4 (half of each chunk is context), not \(ctx)") }
        if let chunks, chunks < 1 { throw CLIError("--chunks must be at least 1, not \(chunks)") }
        let bundle = try modelOptions.load(splitOverRanks: true)
        let communicator = bundle.model.communicator
        let isRoot = communicator.rank == 0
        guard let tokenizer = bundle.tokenizer else { throw CLIError("\(bundle.path) has no tokenizer") }
        var tokens: [Int] = []
        if isRoot {
            guard let data = try readRegularFile(file), let text = String(data: data, encoding: .utf8) else {
                throw CLIError("cannot read \(file) as UTF-8 text")
            }
            tokens = try tokenizer.encode(text, addSpecialTokens: false)
        }
        tokens = communicator.broadcast(ids: tokens)
        if let chunks, !chunks.multipliedReportingOverflow(by: ctx).overflow { tokens = Array(tokens.prefix(chunks * ctx)) }
        let vocab = bundle.model.config.vocabSize
        let perChunk = ctx - 1 - ctx / 2
        var saved: [Float] = []
        let reference = try klReference.flatMap { path -> [Float]? in
            guard isRoot else { return nil }
            let (values, shape) = try NPY.read(path: path)
            guard shape.count == 2, shape[1] == vocab else { throw CLIError("\(path): expected [positions, \(vocab)] logits, found \(shape)") }
            return values
        }
        if let reference, reference.count < (tokens.count / ctx) * perChunk * vocab {
            throw CLIError("\(klReference ?? ""): holds fewer positions than this text and --ctx score")
        }
        log("\(tokens.count) tokens, \(tokens.count / ctx) chunks of \(ctx)")
        let start = Date()
        let result = try bundle.model.perplexity(
            tokens: tokens, context: ctx, bos: tokenizer.bosTokenID,
            reference: reference.map { values in { chunk in Array(values[(chunk * perChunk * vocab)..<((chunk + 1) * perChunk * vocab)]) } },
            onChunk: { _, logits in if saveLogits != nil && isRoot { saved += logits } },
            progress: { done, total in log(String(format: "[%d/%d] %.1f s", done, total, Date().timeIntervalSince(start))) })
        guard isRoot else { return }
        if let saveLogits { try NPY.write(saved, shape: [saved.count / vocab, vocab], to: saveLogits) }
        print(String(format: "perplexity: %.4f ± %.4f over %d tokens (%d chunks of %d)", result.perplexity, result.perplexityError,
                     result.scoredTokens, result.chunks, ctx))
        if let kl = result.meanKL, let agreement = result.top1Agreement {
            print(String(format: "mean KL divergence from the reference: %.6f; top-1 agreement %.2f%%", kl, agreement * 100))
        }
        if let summary = streamingSummary(bundle.model, since: ExpertStreamingStats(), tokens: result.chunks * ctx) { log(summary) }
    }
}
