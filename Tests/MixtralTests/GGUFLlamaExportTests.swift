import Foundation
import Testing
@testable import Mixtral
import MixtralKernels

/// Export of a Hugging Face Mixtral to GGUF, against llama.cpp's own files for the same
/// model: convert_hf_to_gguf.py (F32) and llama-quantize --pure (Q8_0, Q4_0).
@Suite("GGUF llama export")
struct GGUFLlamaExportTests {
    /// Exports the tiny HF checkpoint (tiny-mixtral-hf.expected.gguf) with `type`.
    func export(_ type: WeightType, to path: String) throws -> GGUFFile {
        let converted = try GGUFFixtures.open("tiny-mixtral-hf.gguf")
        let checkpoint = try GGUFFixtures.open("tiny-mixtral-hf.expected.gguf")
        let h = try GGUFLlamaHyperparameters(file: converted)
        let tokenizer = converted.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.map { (key: $0, value: converted.metadata[$0]!) }
        var progress: [Int] = []
        try writeLlamaGGUF(path: path, hyperparameters: h,
                           options: GGUFLlamaExportOptions(weightType: type, name: "Hf", extraMetadata: tokenizer),
                           tensor: { try checkpoint.floats($0) }, progress: { done, _ in progress.append(done) })
        #expect(progress == Array(1...converted.tensorNames.count))
        return try GGUFFile(path: path)
    }

    @Test(arguments: [(WeightType.f32, "tiny-mixtral-hf.gguf"), (.q8_0, "tiny-mixtral-hf-q8_0.gguf"),
                      (.q4_0, "tiny-mixtral-hf-q4_0.gguf")])
    func exportMatchesLlamaCpp(_ type: WeightType, _ referenceName: String) throws {
        let path = TemporaryGGUF.directory.appendingPathComponent("export-\(type.rawValue).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let exported = try export(type, to: path)
        let reference = try GGUFFixtures.open(referenceName)

        // The same tensors, types, dimensions and bytes.
        #expect(Set(exported.tensorNames) == Set(reference.tensorNames))
        for name in reference.tensorNames {
            let mine = try exported.tensorInfo(name), theirs = try reference.tensorInfo(name)
            #expect(mine.type == theirs.type, "\(name)")
            #expect(mine.dimensions == theirs.dimensions, "\(name)")
            if !(try exported.data(name)).elementsEqual(try reference.data(name)) {
                Issue.record("\(name) (\(theirs.type)): data differs from llama.cpp's")
            }
        }
        // The model and tokenizer metadata llama.cpp reads, with the same types and values.
        for key in reference.metadataKeys where key.hasPrefix("llama.") || key.hasPrefix("tokenizer.")
            || key == "general.architecture" || key == "general.file_type" || key == "general.quantization_version" {
            #expect(exported.metadata[key] == reference.metadata[key], "\(key)")
        }
        #expect(try GGUFLlamaHyperparameters(file: exported) == GGUFLlamaHyperparameters(file: reference))
    }

    @Test func impossibleTypesAndWrongSizesAreTypedErrors() throws {
        let converted = try GGUFFixtures.open("tiny-mixtral-hf.gguf")
        let h = try GGUFLlamaHyperparameters(file: converted)
        let path = TemporaryGGUF.directory.appendingPathComponent("export-bad.gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // K-quants need rows that are multiples of 256; this model's rows are 64 or 32.
        #expect(throws: GGUFError.self) {
            try writeLlamaGGUF(path: path, hyperparameters: h, options: GGUFLlamaExportOptions(weightType: .q4_K, name: "x"),
                               tensor: { _ in [] })
        }
        // Wrong number of values for a tensor.
        #expect(throws: GGUFError.self) {
            try writeLlamaGGUF(path: path, hyperparameters: h, options: GGUFLlamaExportOptions(weightType: .f32, name: "x"),
                               tensor: { _ in [1, 2, 3] })
        }
    }
}
