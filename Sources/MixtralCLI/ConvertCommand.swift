import ArgumentParser
import Foundation
import Mixtral

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert Mistral's original checkpoint layout (params.json + consolidated*.safetensors) to a Hugging Face folder.",
        discussion: """
        As the model card's convert.py: tensors get Hugging Face names and q/k are permuted from \
        Mistral's interleaved RoPE layout to the half-split layout. OUT must not already hold a model.
        """)

    @Argument(help: "Folder with params.json and consolidated*.safetensors.")
    var input: String
    @Argument(help: "Output folder (created).")
    var output: String

    func run() throws {
        guard FileManager.default.fileExists(atPath: input + "/params.json") else {
            throw CLIError("\(input) has no params.json: expected Mistral's original layout")
        }
        try MistralConsolidatedConverter.convert(from: input, to: output) { log($0) }
        log("wrote \(output)")
    }
}
