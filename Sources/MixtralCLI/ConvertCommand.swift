import ArgumentParser
import Foundation
import Mixtral

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert Mistral's original layout to a Hugging Face folder, or a Hugging Face folder to GGUF.",
        discussion: """
        IN with params.json + consolidated*.safetensors (Mistral's original layout): written as a \
        Hugging Face folder, as the model card's convert.py does (Hugging Face names; q/k permuted \
        from Mistral's interleaved RoPE layout to the half-split layout). IN with config.json and OUT \
        ending in .gguf: written as a llama.cpp GGUF file of --type. Nothing existing is overwritten.
        """)

    @Argument(help: "Folder with params.json and consolidated*.safetensors.")
    var input: String
    @Argument(help: "Output folder (created), or a .gguf file.")
    var output: String
    @Option(name: .long, help: "GGUF weight type: f32, f16, bf16, q8_0 or q4_0 (and q4_k, q5_k, q6_k).")
    var type = "bf16"

    func run() throws {
        if output.hasSuffix(".gguf") {
            guard FileManager.default.fileExists(atPath: input + "/config.json") else {
                throw CLIError("\(input) has no config.json: expected a Hugging Face folder")
            }
            try writeGGUF(input: input, output: output, type: try parseWeightType(type, allowed: GGUFConversion.writableTypes))
            return
        }
        guard FileManager.default.fileExists(atPath: input + "/params.json") else {
            throw CLIError("\(input) has no params.json: expected Mistral's original layout")
        }
        try MistralConsolidatedConverter.convert(from: input, to: output) { log($0) }
        log("wrote \(output)")
    }
}
