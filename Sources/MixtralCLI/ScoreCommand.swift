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

    func run() throws {
        let bundle = try modelOptions.load()
        let prompt = try promptOptions.tokens(bundle)
        let start = Date()
        let logits = try bundle.model.forward(prompt, cache: bundle.model.makeCache(), allLogits: true)
        let seconds = Date().timeIntervalSince(start)
        try NPY.write(logits, shape: [prompt.count, bundle.model.config.vocabSize], to: logitsOut)
        log(String(format: "wrote %@: %d positions x %d, %.1f tokens/s", logitsOut, prompt.count,
                   bundle.model.config.vocabSize, Double(prompt.count) / max(seconds, 1e-9)))
    }
}
