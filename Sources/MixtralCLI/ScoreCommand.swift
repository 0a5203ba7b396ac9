import ArgumentParser
import Foundation
import Mixtral

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Write the logits of every prompt position as a float32 .npy [positions, vocab].")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions

    @Option(name: .long, help: "Output file (numpy .npy, format 1.0). Written only when scoring succeeds.")
    var logitsOut: String

    @Option(name: .long, help: ArgumentHelp(
        "Evaluate the first N tokens in one batch and every later token in its own step, as generation "
            + "does (a prompt, then one token at a time). Default: all tokens in one batch.",
        valueName: "N"))
    var batchTokens: Int?

    func run() throws { try runOnRanks(score) }

    /// Split over several ranks, every rank runs the same steps on rank 0's prompt; rank 0
    /// writes the file.
    private func score() throws {
        let bundle = try modelOptions.load(splitOverRanks: true)
        let communicator = bundle.model.communicator
        let prompt = try promptOptions.tokens(bundle)
        let start = Date()
        let cache = bundle.model.makeCache()
        let firstBatch = min(max(batchTokens ?? prompt.count, 1), prompt.count)
        // Same arithmetic as generation: the batched kernels for the prompt, the one-token
        // kernels after it.
        var logits = try bundle.model.forward(Array(prompt[..<firstBatch]), cache: cache, allLogits: true)
        for token in prompt[firstBatch...] {
            logits += try bundle.model.forward([token], cache: cache, allLogits: true)
        }
        let seconds = Date().timeIntervalSince(start)
        guard communicator.rank == 0 else { return }
        try NPY.write(logits, shape: [prompt.count, bundle.model.config.vocabSize], to: logitsOut)
        log(String(format: "wrote %@: %d positions x %d, %.1f tokens/s", logitsOut, prompt.count,
                   bundle.model.config.vocabSize, Double(prompt.count) / max(seconds, 1e-9)))
        if let summary = streamingSummary(bundle.model, since: ExpertStreamingStats(), tokens: prompt.count) { log(summary) }
    }
}
