import ArgumentParser
import Foundation
import Mixtral
import MixtralKernels

/// A weight type named on the command line ("q8_0", "Q4_K", "bf16", ...).
func parseWeightType(_ text: String, allowed: [WeightType]) throws -> WeightType {
    guard let type = WeightType.allCases.first(where: { $0.rawValue.lowercased() == text.lowercased() }), allowed.contains(type) else {
        throw CLIError("unknown or unsupported type '\(text)' (choose one of \(allowed.map { $0.rawValue.lowercased() }.joined(separator: ", ")))")
    }
    return type
}

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a model (Hugging Face folder or GGUF file) as a GGUF file of another type, loadable by llama.cpp.",
        discussion: """
        Quantisation is llama.cpp's own (bit-identical blocks). A Hugging Face folder needs its \
        tokenizer.model for the GGUF vocabulary. OUT must not exist.
        """)

    @Argument(help: "Hugging Face model folder or GGUF file.")
    var input: String
    @Argument(help: "Output GGUF file.")
    var output: String
    @Option(name: .long, help: "f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k.")
    var type: String

    func run() throws {
        let weightType = try parseWeightType(type, allowed: GGUFConversion.writableTypes)
        try writeGGUF(input: input, output: output, type: weightType)
    }
}

func writeGGUF(input: String, output: String, type: WeightType) throws {
    let start = Date()
    var lastReport = Date.distantPast
    try GGUFConversion.write(input: input, output: output, type: type) { done, total in
        if done == total || Date().timeIntervalSince(lastReport) > 1 {
            lastReport = Date()
            log(String(format: "[%d/%d tensors] %.1f s", done, total, Date().timeIntervalSince(start)))
        }
    }
    log("wrote \(output) (\(type.rawValue))")
}
