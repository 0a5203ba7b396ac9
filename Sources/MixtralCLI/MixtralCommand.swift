import ArgumentParser
import Foundation
import Mixtral
import MixtralKernels

@main
struct MixtralCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixtral",
        abstract: "Run Mixtral, Mistral and Llama models on the CPU, exactly as transformers computes them.",
        subcommands: [GenerateCommand.self, ChatCommand.self, ServeCommand.self, ScoreCommand.self, TokenizeCommand.self, DetokenizeCommand.self, PerplexityCommand.self, BenchCommand.self],
        defaultSubcommand: GenerateCommand.self)
}

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model folder (Hugging Face layout: config.json, *.safetensors, tokenizer files).")
    var model: String

    @Option(name: .long, help: "Worker threads (default: one per core).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Activations in prompt (prefill) products with bf16 weights: fp32 (exact, as transformers in fp32) or bf16 (as llama.cpp; faster with AVX512-BF16).",
        valueName: "fp32|bf16"))
    var precision: String = "fp32"

    func load() throws -> ModelBundle {
        if let threads, threads < 1 { throw CLIError("--threads must be at least 1") }
        guard let activationPrecision = ActivationPrecision(rawValue: precision) else {
            throw CLIError("--precision must be fp32 or bf16, not '\(precision)'")
        }
        let start = Date()
        let bundle = try ModelBundle.load(path: model, threads: threads)
        bundle.model.precision = activationPrecision
        let c = bundle.model.config
        log(String(format: "loaded %@ (%@, %d layers, hidden %d, %@) in %.2f s", model, c.architecture.rawValue,
                   c.numLayers, c.hiddenSize, c.isMoE ? "\(c.numExperts) experts top-\(c.numExpertsPerToken)" : "dense",
                   Date().timeIntervalSince(start)))
        return bundle
    }
}

/// The prompt, as text or as token ids.
struct PromptOptions: ParsableArguments {
    @Option(name: .long, help: "Prompt text.")
    var prompt: String?

    @Argument(help: "Prompt text (alternative to --prompt).")
    var text: String?

    @Option(name: .long, help: "Prompt as comma-separated token ids (no tokenizer, no BOS added), e.g. 1,2,3.")
    var ids: String?

    func tokens(_ bundle: ModelBundle) throws -> [Int] {
        let texts = [prompt, text].compactMap { $0 }
        if let ids {
            guard texts.isEmpty else { throw CLIError("give the prompt either as text or as --ids, not both") }
            return try parseIDs(ids)
        }
        guard texts.count == 1, let text = texts.first else {
            throw CLIError(texts.isEmpty ? "no prompt: give --prompt TEXT, a TEXT argument, or --ids" : "give the prompt text once (--prompt or argument)")
        }
        guard let tokenizer = bundle.tokenizer else {
            throw CLIError("\(bundle.path) has no tokenizer (tokenizer.json or tokenizer.model); give the prompt as --ids")
        }
        return try tokenizer.encode(text, addSpecialTokens: true)
    }
}

func parseIDs(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var ids: [Int] = []
    for part in parts {
        guard let id = Int(part) else { throw CLIError("--ids: '\(part)' is not an integer (expected e.g. 1,2,3)") }
        ids.append(id)
    }
    return ids
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Diagnostics go to standard error so standard output stays the result.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
